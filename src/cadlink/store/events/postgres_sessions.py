"""Sessions in the PostgreSQL store: the algorithm of `duckdb_sessions.py`, in PostgreSQL SQL.

A session is a visitor's run of events with no gap longer than the timeout; the loader
recomputes the sessions of the visitors a batch touched, within one timeout of the new
events, widened to the sessions they overlap (see `duckdb_sessions.py` for why that suffices).

Dialect notes: DuckDB's `arg_min(x, seq)` (which skips NULL `x`) becomes a min over text
keyed by `seq` (see `_first`); `TRY_CAST` is the
`cadlink_try_float8` function from the schema; epoch milliseconds come from `extract(epoch …)`.
Parameters: `gap` (a `timedelta`), `lo`/`hi` (the bounds of all affected ranges, which let the
planner prune partitions) and `bounce_ms`.
"""

from __future__ import annotations

from cadlink.events import CONVERSION_EVENT_TYPES, ENGAGEMENT_EVENT_TYPES
from cadlink.store.events.duckdb_sessions import ATTRIBUTION_COLUMNS, BOUNCE_MAX_MS

__all__ = ["AFFECTED_SQL", "BOUNCE_MAX_MS", "BOUNDS_SQL", "DELETE_SQL", "INSERT_SQL"]


def _sql_list(values: frozenset[str]) -> str:
    # Constant, code-defined names only (never user input), so inlining is safe.
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


_CONVERSIONS = _sql_list(CONVERSION_EVENT_TYPES)


def _first(column: str, *, where: str = "", last: bool = False) -> str:
    """DuckDB's arg_min(column, seq) (arg_max with `last`), NULL values skipped.

    Sorting inside every aggregate (`array_agg(x ORDER BY …)[1]`) costs one sort per column
    per session; instead the value is prefixed with its zero-padded position in the visit, so
    a plain min/max over bytes (COLLATE "C") picks it, and the prefix is cut off again.
    A NULL value makes the concatenation NULL, which min/max skip, as arg_min does.
    """
    agg = "max" if last else "min"
    keyed = f"(lpad(seq::text, {_SEQ_DIGITS}, '0') || {column}) COLLATE \"C\""
    condition = f" FILTER (WHERE {where})" if where else ""
    return f"substr({agg}({keyed}){condition}, {_SEQ_DIGITS + 1})"


def _attributed(column: str) -> str:
    """The value of `column` (NULL included) at the session's attribution event: its first
    page view, else its first event (`duckdb_sessions.ATTRIBUTION_COLUMNS`). As `_first`,
    keyed by position, with a marker that keeps NULL ('-') apart from a value ('+…')."""
    later = f"CASE WHEN event_type = 'page_view' THEN 0 ELSE {_LATER} END"
    key = f"lpad((seq + {later})::text, 14, '0')"
    picked = f"substr(min(({key} || coalesce('+' || {column}, '-')) COLLATE \"C\"), 15)"
    return f"CASE WHEN left({picked}, 1) = '+' THEN substr({picked}, 2) END"


_SEQ_DIGITS = 12
_LATER = 1 << 40  # other events after every page view (`seq` stays below)
_FIRST_KNOWN = (  # the first value known in the visit (NULLs skipped)
    "device_type",
    "browser",
    "os",
    "screen_resolution",
    "country",
    "region",
    "city",
)

AFFECTED_SQL = """
INSERT INTO affected (site_id, visitor_id, lo, hi)
WITH touched AS (
    SELECT site_id, visitor_id, min(ts) AS lo, max(ts) AS hi
    FROM new_rows GROUP BY site_id, visitor_id
)
SELECT t.site_id, t.visitor_id,
       least(t.lo, coalesce(min(s.started_at), t.lo)) AS lo,
       greatest(t.hi, coalesce(max(s.ended_at), t.hi)) AS hi
FROM touched t
LEFT JOIN sessions s
  ON s.site_id = t.site_id AND s.visitor_id = t.visitor_id
 AND s.ended_at >= t.lo - %(gap)s AND s.started_at <= t.hi + %(gap)s
GROUP BY t.site_id, t.visitor_id, t.lo, t.hi
"""

BOUNDS_SQL = "SELECT min(lo) AS lo, max(hi) AS hi FROM affected"

DELETE_SQL = """
DELETE FROM sessions USING affected a
WHERE sessions.site_id = a.site_id AND sessions.visitor_id = a.visitor_id
  AND sessions.ended_at >= a.lo AND sessions.started_at <= a.hi
"""

_SESSION_COLUMNS = """
    site_id, session_key, visitor_id, user_id, client_session_id, started_at, ended_at,
    duration_s, page_views, events, landing_page, exit_page, referrer, referrer_domain, source,
    channel, utm_source, utm_medium, utm_campaign, utm_term, utm_content,
    device_type, browser, os, screen_resolution, country, region, city, is_bounce, converted,
    revenue
"""

_attribution = ",\n           ".join(
    [f"{_attributed(c)} AS {c}" for c in ATTRIBUTION_COLUMNS]
    + [f"{_first(c)} AS {c}" for c in _FIRST_KNOWN]
)

INSERT_SQL = f"""
INSERT INTO sessions ({_SESSION_COLUMNS})
WITH ev AS (
    SELECT e.site_id, e.visitor_id, e.ts, e.event_id, e.event_type, e.user_id, e.session_id,
           e.page_path, e.referrer, e.referrer_domain, e.source, e.channel,
           e.utm_source, e.utm_medium, e.utm_campaign, e.utm_term, e.utm_content,
           e.device_type, e.browser, e.os, e.screen_resolution, e.country, e.region, e.city,
           e.properties,
           row_number() OVER w AS seq,
           CASE WHEN lag(e.ts) OVER w IS NULL
                  OR e.ts - lag(e.ts) OVER w > %(gap)s THEN 1 ELSE 0 END AS is_start
    FROM analytics_events e
    JOIN affected a ON e.site_id = a.site_id AND e.visitor_id = a.visitor_id
     AND e.ts BETWEEN a.lo AND a.hi
    WHERE e.ts BETWEEN %(lo)s AND %(hi)s
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
           {_first("user_id", last=True)} AS user_id,
           {_first("session_id")} AS client_session_id,
           count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
           count(*) AS events,
           {_first("page_path", where="event_type = 'page_view'")} AS landing_page,
           {_first("page_path", where="event_type = 'page_view'", last=True)} AS exit_page,
           {_attribution},
           bool_or(event_type IN ({_sql_list(ENGAGEMENT_EVENT_TYPES)})) AS engaged,
           bool_or(event_type IN ({_CONVERSIONS})) AS converted,
           coalesce(sum(cadlink_try_float8(properties ->> 'revenue'))
                    FILTER (WHERE event_type IN ({_CONVERSIONS})), 0) AS revenue
    FROM numbered
    GROUP BY site_id, visitor_id, n
),
timed AS (
    SELECT *,
           floor(extract(epoch FROM started_at) * 1000)::bigint AS started_ms,
           floor(extract(epoch FROM ended_at) * 1000)::bigint
             - floor(extract(epoch FROM started_at) * 1000)::bigint AS duration_ms
    FROM grouped
)
SELECT site_id,
       visitor_id::text || '-' || started_ms::text AS session_key,
       visitor_id, user_id, client_session_id, started_at, ended_at,
       duration_ms::float8 / 1000.0 AS duration_s,
       page_views, events, landing_page, exit_page, referrer, referrer_domain, source, channel,
       utm_source, utm_medium, utm_campaign, utm_term, utm_content,
       device_type, browser, os, screen_resolution, country, region, city,
       (page_views <= 1 AND NOT engaged AND duration_ms < %(bounce_ms)s) AS is_bounce,
       converted, revenue
FROM timed
"""
