"""Rollups maintained by the loader: per site, hour and visitor, the page views and events.

The dashboard's unfiltered visitors and page views (summary and time series) read this table
instead of the raw events: it has one row per visitor per hour they were active, a fraction of
the events, and exact distinct visitors over any range of whole hours (every zone whose offset
is a whole number of hours, DST included). Like sessions, it is a pure function of the events:
the loader recomputes the (site, hour, visitor) keys a batch touched from the stored events, so
late events and replays leave it exact. SQL here is shared by DuckDB and PostgreSQL; the hour
expression, property reads and parameter markers are filled in per engine.

The other rollups share that key, so the loader keeps them all with one set of touched keys:
`rollup_page_hours` (page views per page) for the page breakdown, `rollup_product_hours` (per
product: views, clicks, affiliate clicks, wishlist, compare, revenue, a name) for the top
products, and `rollup_affiliate_hours` (affiliate clicks per platform and position) for the
affiliate breakdown. Keeping the visitor in the key is what keeps distinct visitors exact.
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


# Product analytics (query/reports/products.py): the same definitions as the report's raw scan.
# A product is the text of properties.productId; events without one are left out.
PRODUCTS_DDL = """
CREATE TABLE IF NOT EXISTS rollup_product_hours (
    site_id {text} NOT NULL,
    hour_no BIGINT NOT NULL,
    product_id {text} NOT NULL,
    visitor_id BIGINT NOT NULL,
    name {text},
    views INTEGER NOT NULL,
    clicks INTEGER NOT NULL,
    affiliate_clicks INTEGER NOT NULL,
    wishlist INTEGER NOT NULL,
    compare INTEGER NOT NULL,
    revenue {double}
)
"""

# {scope} joins touched_hours (loader) or names the site (rebuild); property reads in a
# subquery, so each is parsed once per event.
_PRODUCTS_SELECT = """
SELECT site_id, hour_no, pid, visitor_id, max(name),
       count(*) FILTER (WHERE et = 'product_view'),
       count(*) FILTER (WHERE et = 'product_click'),
       count(*) FILTER (WHERE et = 'affiliate_click'),
       count(*) FILTER (WHERE et = 'product_wishlist'),
       count(*) FILTER (WHERE et = 'product_compare'),
       sum(rev) FILTER (WHERE et = 'purchase')
FROM (
    SELECT e.site_id, {hour_e} AS hour_no, {product_id} AS pid, e.visitor_id,
           e.event_type AS et,
           CASE WHEN e.event_type IN ('product_view', 'product_wishlist')
                THEN {product_name} END AS name,
           CASE WHEN e.event_type = 'purchase' THEN {revenue} END AS rev
    FROM analytics_events e {scope}
      AND e.event_type IN ('affiliate_click', 'product_click', 'product_compare',
                           'product_view', 'product_wishlist', 'purchase')
) x
WHERE pid IS NOT NULL
GROUP BY site_id, hour_no, pid, visitor_id
"""

AFFILIATE_DDL = """
CREATE TABLE IF NOT EXISTS rollup_affiliate_hours (
    site_id {text} NOT NULL,
    hour_no BIGINT NOT NULL,
    visitor_id BIGINT NOT NULL,
    platform {text},
    position {text},
    clicks INTEGER NOT NULL
)
"""

_AFFILIATE_SELECT = """
SELECT e.site_id, {hour_e} AS hour_no, e.visitor_id, {platform}, {position}, count(*)
FROM analytics_events e {scope} AND e.event_type = 'affiliate_click'
GROUP BY e.site_id, {hour_e}, e.visitor_id, {platform}, {position}
"""

_TOUCHED_SCOPE = """
JOIN touched_hours t ON e.site_id = t.site_id AND e.visitor_id = t.visitor_id
 AND {hour_e} = t.hour_no
WHERE e.ts >= {lo} AND e.ts < {hi}"""

_SITE_SCOPE = "WHERE e.site_id = {site}"


def _keyed(table: str) -> str:
    return f"""
DELETE FROM {table} USING touched_hours t
WHERE {table}.site_id = t.site_id AND {table}.hour_no = t.hour_no
  AND {table}.visitor_id = t.visitor_id
"""


def _site_delete(table: str) -> str:
    return f"DELETE FROM {table} WHERE site_id = {{site}}"


def _scoped(table: str, select: str, scope: str) -> str:
    return f"INSERT INTO {table}\n" + select.replace("{scope}", scope)


# Per rollup table: name, create, rebuild-delete, rebuild-insert, touched-delete, touched-insert.
TABLES = (
    ("rollup_visitor_hours", ROLLUP_DDL, REBUILD_DELETE_SQL, REBUILD_INSERT_SQL,
     DELETE_SQL, INSERT_SQL),
    ("rollup_page_hours", PAGES_DDL, PAGES_REBUILD_DELETE_SQL, PAGES_REBUILD_INSERT_SQL,
     PAGES_DELETE_SQL, PAGES_INSERT_SQL),
    ("rollup_product_hours", PRODUCTS_DDL, _site_delete("rollup_product_hours"),
     _scoped("rollup_product_hours", _PRODUCTS_SELECT, _SITE_SCOPE),
     _keyed("rollup_product_hours"),
     _scoped("rollup_product_hours", _PRODUCTS_SELECT, _TOUCHED_SCOPE)),
    ("rollup_affiliate_hours", AFFILIATE_DDL, _site_delete("rollup_affiliate_hours"),
     _scoped("rollup_affiliate_hours", _AFFILIATE_SELECT, _SITE_SCOPE),
     _keyed("rollup_affiliate_hours"),
     _scoped("rollup_affiliate_hours", _AFFILIATE_SELECT, _TOUCHED_SCOPE)),
)  # fmt: skip


# The query layer's property reads (query/dialects.py), spelled out here because the store
# does not import the query layer: rollup answers must equal the raw scan's on each engine.
def _props(engine: str) -> dict[str, str]:
    keys = {"product_id": "productId", "product_name": "productName", "platform": "platform",
            "position": "position"}  # fmt: skip
    if engine == "duckdb":
        out = {k: f"json_extract_string(e.properties, '$.{key}')" for k, key in keys.items()}
        out["revenue"] = "TRY_CAST(json_extract_string(e.properties, '$.revenue') AS DOUBLE)"
        return out
    out = {k: f"(e.properties ->> '{key}')" for k, key in keys.items()}
    out["revenue"] = (
        "(CASE WHEN (e.properties ->> 'revenue') ~ "
        "'^-{0,1}[0-9]+(\\.[0-9]+){0,1}([eE][-+]{0,1}[0-9]+){0,1}$' "
        "THEN (e.properties ->> 'revenue')::float8 END)"
    )
    return out


def render(sql: str, engine: str) -> str:
    """Fill in the engine's hour expression and parameter markers."""
    if engine == "duckdb":
        hours = {"hour_e": "(epoch_ms(e.ts) // 3600000)", "hour_n": "(epoch_ms(ts) // 3600000)"}
        marks = {"lo": "$lo", "hi": "$hi", "site": "$site"}
        text, double = "VARCHAR", "DOUBLE"
    else:
        hours = {
            "hour_e": "floor(EXTRACT(EPOCH FROM e.ts) / 3600)::bigint",
            "hour_n": "floor(EXTRACT(EPOCH FROM ts) / 3600)::bigint",
        }
        marks = {"lo": "%(lo)s", "hi": "%(hi)s", "site": "%(site)s"}
        text = 'text COLLATE "C"'  # as the events table, so joins compare alike
        double = "double precision"
    return sql.format(**hours, **marks, **_props(engine), text=text, double=double)
