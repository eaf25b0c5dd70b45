"""Sessions as a pure function of events, recomputed for the visitors a batch touched.

A session is a visitor's run of events with no gap longer than the timeout. A new event can
only change sessions that end within one timeout before it or start within one timeout
after it, so the loader recomputes exactly those: find the touched visitors' time ranges,
widen each to the sessions overlapping it, delete those sessions and rebuild them from the
events. Late and out-of-order events therefore merge or split sessions correctly, and a
replayed batch rebuilds identical rows.
"""

from __future__ import annotations

from cadlink.events import CONVERSION_EVENT_TYPES, ENGAGEMENT_EVENT_TYPES


def _sql_list(values: frozenset[str]) -> str:
    # Constant, code-defined names only (never user input), so inlining is safe.
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


_CONVERSIONS = _sql_list(CONVERSION_EVENT_TYPES)

AFFECTED_SQL = """
CREATE OR REPLACE TEMP TABLE affected AS
WITH touched AS (
    SELECT site_id, visitor_id, min(ts) AS lo, max(ts) AS hi FROM new_rows GROUP BY ALL
)
SELECT t.site_id, t.visitor_id,
       least(t.lo, coalesce(min(s.started_at), t.lo)) AS lo,
       greatest(t.hi, coalesce(max(s.ended_at), t.hi)) AS hi
FROM touched t
LEFT JOIN sessions s
  ON s.site_id = t.site_id AND s.visitor_id = t.visitor_id
 AND s.ended_at >= t.lo - to_seconds($gap) AND s.started_at <= t.hi + to_seconds($gap)
GROUP BY t.site_id, t.visitor_id, t.lo, t.hi
"""

DELETE_SQL = """
DELETE FROM sessions USING affected a
WHERE sessions.site_id = a.site_id AND sessions.visitor_id = a.visitor_id
  AND sessions.ended_at >= a.lo AND sessions.started_at <= a.hi
"""

INSERT_SQL = f"""
INSERT INTO sessions
WITH ev AS (
    SELECT e.site_id, e.visitor_id, e.ts, e.event_id, e.event_type, e.user_id, e.session_id,
           e.page_path, e.referrer, e.referrer_domain, e.source, e.channel,
           e.utm_source, e.utm_medium, e.utm_campaign, e.utm_term, e.utm_content,
           e.device_type, e.browser, e.os, e.screen_resolution,
           e.country, e.region, e.city, e.properties,
           row_number() OVER w AS seq,
           CASE WHEN lag(e.ts) OVER w IS NULL
                  OR e.ts - lag(e.ts) OVER w > to_seconds($gap) THEN 1 ELSE 0 END AS is_start
    FROM analytics_events e
    JOIN affected a ON e.site_id = a.site_id AND e.visitor_id = a.visitor_id
     AND e.ts BETWEEN a.lo AND a.hi
    WHERE e.ts BETWEEN $lo AND $hi
    WINDOW w AS (PARTITION BY e.site_id, e.visitor_id ORDER BY e.ts, e.event_id)
),
numbered AS (
    SELECT *, sum(is_start) OVER (
        PARTITION BY site_id, visitor_id ORDER BY ts, event_id ROWS UNBOUNDED PRECEDING
    ) AS n
    FROM ev
),
grouped AS (
    SELECT site_id, visitor_id,
           min(ts) AS started_at, max(ts) AS ended_at,
           arg_max(user_id, seq) FILTER (WHERE user_id IS NOT NULL) AS user_id,
           arg_min(session_id, seq) AS client_session_id,
           count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
           count(*) AS events,
           arg_min(page_path, seq) FILTER (WHERE event_type = 'page_view') AS landing_page,
           arg_max(page_path, seq) FILTER (WHERE event_type = 'page_view') AS exit_page,
           arg_min(referrer, seq) AS referrer,
           arg_min(referrer_domain, seq) AS referrer_domain,
           arg_min(source, seq) AS source,
           arg_min(channel, seq) AS channel,
           arg_min(utm_source, seq) AS utm_source,
           arg_min(utm_medium, seq) AS utm_medium,
           arg_min(utm_campaign, seq) AS utm_campaign,
           arg_min(utm_term, seq) AS utm_term,
           arg_min(utm_content, seq) AS utm_content,
           arg_min(device_type, seq) AS device_type,
           arg_min(browser, seq) AS browser,
           arg_min(os, seq) AS os,
           arg_min(screen_resolution, seq) AS screen_resolution,
           arg_min(country, seq) AS country,
           arg_min(region, seq) AS region,
           arg_min(city, seq) AS city,
           bool_or(event_type IN ({_sql_list(ENGAGEMENT_EVENT_TYPES)})) AS engaged,
           bool_or(event_type IN ({_CONVERSIONS})) AS converted,
           coalesce(sum(TRY_CAST(json_extract_string(properties, '$.revenue') AS DOUBLE))
                    FILTER (WHERE event_type IN ({_CONVERSIONS})), 0) AS revenue
    FROM numbered
    GROUP BY site_id, visitor_id, n
)
SELECT site_id,
       CAST(visitor_id AS VARCHAR) || '-' || CAST(epoch_ms(started_at) AS VARCHAR) AS session_key,
       visitor_id, user_id, client_session_id, started_at, ended_at,
       epoch_ms(ended_at - started_at) / 1000.0 AS duration_s,
       page_views, events, landing_page, exit_page, referrer, referrer_domain, source, channel,
       utm_source, utm_medium, utm_campaign, utm_term, utm_content,
       device_type, browser, os, screen_resolution, country, region, city,
       (page_views <= 1 AND NOT engaged
        AND epoch_ms(ended_at - started_at) < $bounce_ms) AS is_bounce,
       converted, revenue
FROM grouped
"""

BOUNCE_MAX_MS = 10_000  # a single-page visit shorter than 10 s without interaction is a bounce
