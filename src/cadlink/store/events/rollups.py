"""Rollups maintained by the loader: per site, hour and visitor, the page views and events.

The dashboard's unfiltered visitors and page views (summary and time series) read this table
instead of the raw events: it has one row per visitor per hour they were active, a fraction of
the events, and exact distinct visitors over any range of whole hours (every zone whose offset
is a whole number of hours, DST included). Like sessions, it is a pure function of the events:
the loader recomputes the (site, hour, visitor) keys a batch touched from the stored events, so
late events and replays leave it exact. SQL here is shared by DuckDB and PostgreSQL; `{epoch_ms}`
and the parameter markers are filled in per engine.
"""

from __future__ import annotations

ROLLUP_DDL = """
CREATE TABLE IF NOT EXISTS rollup_visitor_hours (
    site_id {text} NOT NULL,
    hour_no BIGINT NOT NULL,
    visitor_id BIGINT NOT NULL,
    page_views INTEGER NOT NULL,
    events INTEGER NOT NULL
)
"""

PAGES_DDL = """
CREATE TABLE IF NOT EXISTS rollup_page_hours (
    site_id {text} NOT NULL,
    hour_no BIGINT NOT NULL,
    page_path {text},
    visitor_id BIGINT NOT NULL,
    views INTEGER NOT NULL
)
"""

PAGES_DELETE_SQL = """
DELETE FROM rollup_page_hours USING touched_hours t
WHERE rollup_page_hours.site_id = t.site_id AND rollup_page_hours.hour_no = t.hour_no
  AND rollup_page_hours.visitor_id = t.visitor_id
"""

PAGES_INSERT_SQL = """
INSERT INTO rollup_page_hours
SELECT e.site_id, {hour_e} AS hour_no, e.page_path, e.visitor_id, count(*)
FROM analytics_events e
JOIN touched_hours t ON e.site_id = t.site_id AND e.visitor_id = t.visitor_id
 AND {hour_e} = t.hour_no
WHERE e.ts >= {lo} AND e.ts < {hi} AND e.event_type = 'page_view'
GROUP BY e.site_id, {hour_e}, e.page_path, e.visitor_id
"""

PAGES_REBUILD_DELETE_SQL = "DELETE FROM rollup_page_hours WHERE site_id = {site}"

PAGES_REBUILD_INSERT_SQL = """
INSERT INTO rollup_page_hours
SELECT e.site_id, {hour_e} AS hour_no, e.page_path, e.visitor_id, count(*)
FROM analytics_events e WHERE e.site_id = {site} AND e.event_type = 'page_view'
GROUP BY e.site_id, {hour_e}, e.page_path, e.visitor_id
"""


# {hour} renders "epoch milliseconds of ts // 3 600 000" for the engine.
TOUCHED_SQL = """
CREATE TEMP TABLE touched_hours AS
SELECT DISTINCT site_id, {hour_n} AS hour_no, visitor_id FROM new_rows
"""

DELETE_SQL = """
DELETE FROM rollup_visitor_hours USING touched_hours t
WHERE rollup_visitor_hours.site_id = t.site_id AND rollup_visitor_hours.hour_no = t.hour_no
  AND rollup_visitor_hours.visitor_id = t.visitor_id
"""

INSERT_SQL = """
INSERT INTO rollup_visitor_hours
SELECT e.site_id, {hour_e} AS hour_no, e.visitor_id,
       count(*) FILTER (WHERE e.event_type = 'page_view'), count(*)
FROM analytics_events e
JOIN touched_hours t ON e.site_id = t.site_id AND e.visitor_id = t.visitor_id
 AND {hour_e} = t.hour_no
WHERE e.ts >= {lo} AND e.ts < {hi}
GROUP BY e.site_id, {hour_e}, e.visitor_id
"""

REBUILD_DELETE_SQL = "DELETE FROM rollup_visitor_hours WHERE site_id = {site}"

REBUILD_INSERT_SQL = """
INSERT INTO rollup_visitor_hours
SELECT e.site_id, {hour_e} AS hour_no, e.visitor_id,
       count(*) FILTER (WHERE e.event_type = 'page_view'), count(*)
FROM analytics_events e WHERE e.site_id = {site}
GROUP BY e.site_id, {hour_e}, e.visitor_id
"""


# Per rollup table: name, create, rebuild-delete, rebuild-insert, touched-delete, touched-insert.
TABLES = (
    ("rollup_visitor_hours", ROLLUP_DDL, REBUILD_DELETE_SQL, REBUILD_INSERT_SQL,
     DELETE_SQL, INSERT_SQL),
    ("rollup_page_hours", PAGES_DDL, PAGES_REBUILD_DELETE_SQL, PAGES_REBUILD_INSERT_SQL,
     PAGES_DELETE_SQL, PAGES_INSERT_SQL),
)  # fmt: skip


def render(sql: str, engine: str) -> str:
    """Fill in the engine's hour expression and parameter markers."""
    if engine == "duckdb":
        hours = {"hour_e": "(epoch_ms(e.ts) // 3600000)", "hour_n": "(epoch_ms(ts) // 3600000)"}
        marks = {"lo": "$lo", "hi": "$hi", "site": "$site"}
        text = "VARCHAR"
    else:
        hours = {
            "hour_e": "floor(EXTRACT(EPOCH FROM e.ts) / 3600)::bigint",
            "hour_n": "floor(EXTRACT(EPOCH FROM ts) / 3600)::bigint",
        }
        marks = {"lo": "%(lo)s", "hi": "%(hi)s", "site": "%(site)s"}
        text = 'text COLLATE "C"'  # as the events table, so joins compare alike
    return sql.format(**hours, **marks, text=text)
