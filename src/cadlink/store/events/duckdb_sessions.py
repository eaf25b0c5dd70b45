"""Sessions as a pure function of events, recomputed for the visitors a batch touched.

A session is a visitor's run of events with no gap longer than the timeout. A new event can
only change sessions that end within one timeout before it or start within one timeout
after it, so the loader recomputes exactly those: find the touched visitors' time ranges,
widen each to the sessions overlapping it, delete those sessions and rebuild them from the
events. Late and out-of-order events therefore merge or split sessions correctly, and a
replayed batch rebuilds identical rows.

Most batches need no rescan of stored events: when a visitor's new events all come after the
end of every stored session near them (the usual case: events arrive roughly in order), the
new events are sessionized on their own and their first run is merged with the session that
ended within one timeout before it, from that session's row alone. Every session column
combines exactly (counts add, first/last values come from the earlier/later part, bounce and
conversion follow from the parts), so the result is the row a rebuild would give. Visitors
whose new events reach into or before a stored session take the rebuild path above.
"""

from __future__ import annotations

from cadlink.events import CONVERSION_EVENT_TYPES, ENGAGEMENT_EVENT_TYPES


def _sql_list(values: frozenset[str]) -> str:
    # Constant, code-defined names only (never user input), so inlining is safe.
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


_CONVERSIONS = _sql_list(CONVERSION_EVENT_TYPES)

DELETE_SQL = """
DELETE FROM sessions USING affected a
WHERE sessions.site_id = a.site_id AND sessions.visitor_id = a.visitor_id
  AND sessions.ended_at >= a.lo AND sessions.started_at <= a.hi
"""

# Where a session came from: all of it from one event, its first page view (the landing
# page's), else its first event, NULLs included. Taking each column's first non-NULL value
# mixed events: a session could say "Direct" with a referrer and UTM tags from a later page.
ATTRIBUTION_COLUMNS = (
    "referrer", "referrer_domain", "source", "channel",
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
)  # fmt: skip
# Page views first, then the rest, each in visit order (`seq` is below 2^40).
_ATTRIBUTION_KEY = "seq + CASE WHEN event_type = 'page_view' THEN 0 ELSE 1099511627776 END"
_ATTRIBUTION = ",\n       ".join(
    f"arg_min_null({c}, {_ATTRIBUTION_KEY}) AS {c}" for c in ATTRIBUTION_COLUMNS
)

# One row per session from events numbered into runs (`n`, one run per session of a visitor)
# in their order (`seq`): every sessions column but the derived ones, plus `engaged`.
_AGGREGATES = f"""
SELECT site_id, visitor_id, n,
       min(ts) AS started_at, max(ts) AS ended_at,
       arg_max(user_id, seq) FILTER (WHERE user_id IS NOT NULL) AS user_id,
       arg_min(session_id, seq) AS client_session_id,
       count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
       count(*) AS events,
       arg_min(page_path, seq) FILTER (WHERE event_type = 'page_view') AS landing_page,
       arg_max(page_path, seq) FILTER (WHERE event_type = 'page_view') AS exit_page,
       {{attribution}},
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
                FILTER (WHERE event_type IN ({_CONVERSIONS})), 0) AS revenue,
       arg_min(event_id, seq) AS first_event_id,
       arg_max(event_id, seq) AS last_event_id
FROM {{numbered}}
GROUP BY site_id, visitor_id, n
""".replace("{attribution}", _ATTRIBUTION)

# What a merge with a stored session changes (`FAST_SQL`): its end and what follows from
# it, its counts, its exit page and user on every merge; its first values (landing page,
# device, place...) only where the stored part had none and the new run has one, and its
# attribution only where the stored part had no page view and the new run has (`widen`).
# `started_at`, and with it `session_key`, stay the stored part's.
MERGED_COLUMNS = (
    "user_id", "ended_at", "duration_s", "page_views", "events", "exit_page", "is_bounce",
    "converted", "revenue", "last_event_id",
)  # fmt: skip
FIRST_COLUMNS = (
    "client_session_id", "landing_page", "referrer", "referrer_domain", "source", "channel",
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "device_type",
    "browser", "os", "screen_resolution", "country", "region", "city",
)  # fmt: skip

_SESSION_ROW = """
SELECT site_id,
       CAST(visitor_id AS VARCHAR) || '-' || CAST(epoch_ms(started_at) AS VARCHAR) AS session_key,
       visitor_id, user_id, client_session_id, started_at, ended_at,
       epoch_ms(ended_at - started_at) / 1000.0 AS duration_s,
       page_views, events, landing_page, exit_page, referrer, referrer_domain, source, channel,
       utm_source, utm_medium, utm_campaign, utm_term, utm_content,
       device_type, browser, os, screen_resolution, country, region, city,
       (page_views <= 1 AND NOT engaged
        AND epoch_ms(ended_at - started_at) < $bounce_ms) AS is_bounce,
       converted, revenue, last_event_id
FROM grouped
"""

# The rebuild: the affected visitors' stored events in their time ranges, numbered into runs
# with window functions, aggregated per run. The windows sort only the key columns (and the
# row id); the other columns join back by row id, so a large rebuild (a whole site, or a
# visitor with a long session) sorts a fifth of the data and needs a fraction of the memory.
INSERT_SQL = f"""
INSERT INTO sessions
WITH keys AS (
    SELECT e.rowid AS rid, e.site_id, e.visitor_id, e.ts, e.event_id
    FROM analytics_events e
    JOIN affected a ON e.site_id = a.site_id AND e.visitor_id = a.visitor_id
     AND e.ts BETWEEN a.lo AND a.hi
    WHERE e.ts BETWEEN $lo AND $hi
),
ordered AS (
    SELECT rid, site_id, visitor_id, ts, event_id,
           row_number() OVER w AS seq,
           CASE WHEN lag(ts) OVER w IS NULL
                  OR ts - lag(ts) OVER w > to_seconds($gap) THEN 1 ELSE 0 END AS is_start
    FROM keys
    WINDOW w AS (PARTITION BY site_id, visitor_id ORDER BY ts, event_id)
),
runs AS (
    SELECT rid, seq, sum(is_start) OVER (
        PARTITION BY site_id, visitor_id ORDER BY ts, event_id ROWS UNBOUNDED PRECEDING
    ) AS n
    FROM ordered
),
numbered AS (
    SELECT e.*, r.seq, r.n
    FROM analytics_events e JOIN runs r ON e.rowid = r.rid
    WHERE e.ts BETWEEN $lo AND $hi
),
grouped AS ({_AGGREGATES.replace("{numbered}", "numbered")})
{_SESSION_ROW}"""

# -- The incremental path (see the module docstring) ---------------------------------------

# The batch's rows to store are `staged_rows` (staging.py) less the rows to skip: repeats of
# an event id inside the batch (the earliest arrival stays) and ids already stored with an
# event time within `$window` of the row's. `{stored}` names the stored time ranges those
# windows fall in (scan_ranges.py), so DuckDB reads only their row groups. Deleting the
# (usually no) repeats costs a fraction of copying the batch into a new table.
DEDUP_SQL = """
DELETE FROM staged_rows WHERE i IN (
    SELECT s.i FROM staged_rows s
    WHERE EXISTS (
        SELECT 1 FROM analytics_events e
        WHERE {stored} AND e.site_id = s.site_id AND e.event_id = s.event_id
          AND e.ts >= s.ts - $window AND e.ts <= s.ts + $window
    )
    UNION ALL
    SELECT unnest(list(i ORDER BY received_at, i)[2:]) FROM staged_rows
    GROUP BY site_id, event_id HAVING count(*) > 1
)
"""

# The new rows numbered into runs for the session upkeep, as a narrow table: `seq`, a row's
# position in its visitor's (time, event id) order, and `n`, its run (a new run starts at a
# visitor's first event and after every gap longer than the timeout).
NUMBER_SQL = """
CREATE OR REPLACE TEMP TABLE new_runs AS
WITH ordered AS (
    SELECT i, site_id, visitor_id, row_number() OVER w AS seq,
           CASE WHEN lag(ts) OVER w IS NULL
                  OR ts - lag(ts) OVER w > to_seconds($gap) THEN 1 ELSE 0 END AS is_start
    FROM staged_rows
    WINDOW w AS (PARTITION BY site_id, visitor_id ORDER BY ts, event_id)
)
SELECT i, seq, sum(is_start) OVER (
    PARTITION BY site_id, visitor_id ORDER BY seq ROWS UNBOUNDED PRECEDING
) AS n
FROM ordered
"""

# The new events sessionized on their own.
RUNS_SQL = "CREATE OR REPLACE TEMP TABLE batch_runs AS" + _AGGREGATES.replace(
    "{numbered}", "(SELECT s.*, r.seq, r.n FROM staged_rows s JOIN new_runs r ON r.i = s.i)"
)

# Per visitor in the batch: its new events' span, whether a stored session near them does
# not end before their first event (`slow`: rebuild), and otherwise the one stored session
# that ended within a timeout before it (at most one can: two sessions are more than a
# timeout apart). Events are ordered by time, then id, so a stored session that ended at the
# very time of the first new event still precedes it when its last event id is smaller: a
# visitor whose events share one timestamp (a client without a clock, a load generator;
# server-assigned ids grow with arrival) stays on this path instead of rebuilding the whole
# session on every batch. A session stored without its last id (an older store) rebuilds.
# `$since` (the earliest span start less a timeout) lets DuckDB skip old row groups.
VISITORS_SQL = """
CREATE OR REPLACE TEMP TABLE batch_visitors AS
WITH touched AS (
    SELECT site_id, visitor_id, min(started_at) AS lo, max(ended_at) AS hi,
           arg_min(first_event_id, started_at) AS first_id,
           bool_or(revenue <> 0) AS has_revenue
    FROM batch_runs GROUP BY site_id, visitor_id
),
near AS (
    SELECT t.*, s.session_key, s.revenue,
           s.ended_at < t.lo OR (s.ended_at = t.lo AND s.last_event_id < t.first_id) AS before
    FROM touched t
    LEFT JOIN sessions s
      ON s.site_id = t.site_id AND s.visitor_id = t.visitor_id
     AND s.ended_at >= t.lo - to_seconds($gap) AND s.started_at <= t.hi + to_seconds($gap)
     AND s.ended_at >= $since
)
SELECT site_id, visitor_id, lo, hi,
       count(session_key) FILTER (WHERE NOT coalesce(before, false)) > 0
         OR (has_revenue AND coalesce(bool_or(revenue <> 0), false)) AS slow,
       any_value(session_key) FILTER (WHERE before) AS prev_key
FROM near
GROUP BY site_id, visitor_id, lo, hi, has_revenue
"""

# The session rows of the visitors on the incremental path: each run as it is, the first one
# merged with the stored session before it. All of that session's events precede the new
# ones, so its first values and the new run's last values win. Bounce: a merged session
# with at most one page view shorter than the limit had the same for its earlier part, so
# that part's `is_bounce` says whether it was engaged. Revenue is merged only when at most
# one part has any (VISITORS_SQL sends the rest to a rebuild), so the sum stays exact.
# `prev_key` is the stored session a row merges with (NULL: a new session).
FAST_SQL = (
    """
CREATE OR REPLACE TEMP TABLE fast_sessions AS
WITH grouped AS (
    SELECT r.site_id, r.visitor_id,
           coalesce(p.started_at, r.started_at) AS started_at,
           r.ended_at,
           coalesce(r.user_id, p.user_id) AS user_id,
           coalesce(p.client_session_id, r.client_session_id) AS client_session_id,
           r.page_views + coalesce(p.page_views, 0) AS page_views,
           r.events + coalesce(p.events, 0) AS events,
           coalesce(p.landing_page, r.landing_page) AS landing_page,
           coalesce(r.exit_page, p.exit_page) AS exit_page,
           {ATTR:referrer} AS referrer,
           {ATTR:referrer_domain} AS referrer_domain,
           {ATTR:source} AS source,
           {ATTR:channel} AS channel,
           {ATTR:utm_source} AS utm_source,
           {ATTR:utm_medium} AS utm_medium,
           {ATTR:utm_campaign} AS utm_campaign,
           {ATTR:utm_term} AS utm_term,
           {ATTR:utm_content} AS utm_content,
           coalesce(p.device_type, r.device_type) AS device_type,
           coalesce(p.browser, r.browser) AS browser,
           coalesce(p.os, r.os) AS os,
           coalesce(p.screen_resolution, r.screen_resolution) AS screen_resolution,
           coalesce(p.country, r.country) AS country,
           coalesce(p.region, r.region) AS region,
           coalesce(p.city, r.city) AS city,
           r.engaged OR NOT coalesce(p.is_bounce, true) AS engaged,
           r.converted OR coalesce(p.converted, false) AS converted,
           r.revenue + coalesce(p.revenue, 0) AS revenue,
           r.last_event_id,
           p.session_key AS prev_key,
           {WIDEN} AS widen
    FROM batch_runs r
    JOIN batch_visitors v ON v.site_id = r.site_id AND v.visitor_id = r.visitor_id
    LEFT JOIN sessions p
      ON r.started_at = v.lo AND p.site_id = v.site_id AND p.session_key = v.prev_key
     AND p.ended_at >= $since
    WHERE NOT v.slow
)"""
    + _SESSION_ROW.replace("FROM grouped", ", prev_key, widen FROM grouped")
).replace(
    "{WIDEN}",
    "p.session_key IS NOT NULL AND ("
    + " OR ".join(
        f"(p.{c} IS NULL AND r.{c} IS NOT NULL)"
        for c in FIRST_COLUMNS
        if c not in ATTRIBUTION_COLUMNS
    )
    + " OR (p.page_views = 0 AND r.page_views > 0))",
)
for _c in ATTRIBUTION_COLUMNS:  # the stored part's, unless only the new run has a page view
    FAST_SQL = FAST_SQL.replace(
        "{ATTR:" + _c + "}",
        f"CASE WHEN p.session_key IS NULL OR (p.page_views = 0 AND r.page_views > 0) "
        f"THEN r.{_c} ELSE p.{_c} END",
    )


# A merged session is updated in place, not deleted and inserted again: DuckDB logs and
# checkpoints an update as the changed column values, a re-insert as a whole new row plus a
# deletion. A session is merged again by about every event of its visitor, so this is most
# of the session upkeep's writing: updating the columns a merge changes instead of
# replacing the row took the loader from 32-35 to 27-30 µs an event (docs/benchmarks.md).
def _update(columns: tuple[str, ...], where: str) -> str:
    return (
        "UPDATE sessions SET "
        + ", ".join(f"{c} = f.{c}" for c in columns)
        + f"""
FROM fast_sessions f
WHERE {where} AND sessions.site_id = f.site_id
  AND sessions.session_key = f.prev_key AND sessions.ended_at >= $since
"""
    )


FAST_UPDATE_SQL = _update(MERGED_COLUMNS, "f.prev_key IS NOT NULL")
FAST_WIDEN_SQL = _update(FIRST_COLUMNS, "f.widen")

FAST_INSERT_SQL = (
    "INSERT INTO sessions SELECT * EXCLUDE (prev_key, widen) FROM fast_sessions "
    "WHERE prev_key IS NULL"
)

# The visitors that need a rebuild, widened to the sessions their new events overlap: the
# `affected` table INSERT_SQL reads.
SLOW_AFFECTED_SQL = """
CREATE OR REPLACE TEMP TABLE affected AS
SELECT t.site_id, t.visitor_id,
       least(t.lo, coalesce(min(s.started_at), t.lo)) AS lo,
       greatest(t.hi, coalesce(max(s.ended_at), t.hi)) AS hi
FROM batch_visitors t
LEFT JOIN sessions s
  ON s.site_id = t.site_id AND s.visitor_id = t.visitor_id
 AND s.ended_at >= t.lo - to_seconds($gap) AND s.started_at <= t.hi + to_seconds($gap)
 AND s.ended_at >= $since
WHERE t.slow
GROUP BY t.site_id, t.visitor_id, t.lo, t.hi
"""

BOUNCE_MAX_MS = 10_000  # a single-page visit shorter than 10 s without interaction is a bounce
