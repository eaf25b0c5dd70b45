"""Rollups maintained by the loader: per site, hour and visitor, the page views and events.

The dashboard's unfiltered visitors and page views (summary and time series) read this table
instead of the raw events: it has a row per visitor per hour they were active, a fraction of
the events, and exact distinct visitors over any range of whole hours (every zone whose offset
is a whole number of hours, DST included). SQL here is shared by DuckDB and PostgreSQL; the
hour expression, property reads and parameter markers are filled in per engine.

The other rollups share that key: `rollup_page_hours` (page views per page) for the page
breakdown, `rollup_product_hours` (per product: views, clicks, affiliate clicks, wishlist,
compare, revenue, a name) and `rollup_product_revenue_hours` (revenue per product and
currency) for the top products, and `rollup_affiliate_hours` (affiliate clicks per platform
and position) for the affiliate breakdown. Keeping the visitor in the
key is what keeps distinct visitors exact.

Upkeep is append-only: each batch adds its own new events' counts, aggregated by key, in the
transaction that stores them (the store has already dropped duplicates, so each event is
counted once, and a replayed batch adds nothing). A key can therefore have several rows, one
per batch it appeared in; every reader sums the counts (and takes distinct visitors, or the
max of a name), so extra rows change no answer. The rows of an hour are merged into one per
key once the loader has moved past that hour (`compact_statements`), so the rollups stay a
fraction of the events. The earlier design recomputed each touched key from the stored
events in every batch: its cost grew with the events of the hour so far, and it read the
events back from the table it had just written.
"""

from __future__ import annotations

from dataclasses import dataclass

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

# Each rollup's rows for the events of `{source}` (events as `e`) that `{where}` selects,
# one per key.
_VISITOR_SELECT = """
SELECT e.site_id, {hour_e} AS hour_no, e.visitor_id,
       count(*) FILTER (WHERE e.event_type = 'page_view'), count(*)
FROM {source} e WHERE {where}
GROUP BY e.site_id, {hour_e}, e.visitor_id
"""

_PAGES_SELECT = """
SELECT e.site_id, {hour_e} AS hour_no, e.page_path, e.visitor_id, count(*)
FROM {source} e WHERE {where} AND e.event_type = 'page_view'
GROUP BY e.site_id, {hour_e}, e.page_path, e.visitor_id
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

# Property reads in a subquery, so each is parsed once per event.
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
    FROM {source} e WHERE {where}
      AND e.event_type IN ('affiliate_click', 'product_click', 'product_compare',
                           'product_view', 'product_wishlist', 'purchase')
) x
WHERE pid IS NOT NULL
GROUP BY site_id, hour_no, pid, visitor_id
"""

# Revenue per product and currency (`properties.currency` of `purchase` events, never
# converted): amounts in different currencies cannot be added up, so the top products report
# splits each product's revenue by currency. Only purchases with a numeric revenue have rows.
REVENUE_DDL = """
CREATE TABLE IF NOT EXISTS rollup_product_revenue_hours (
    site_id {text} NOT NULL,
    hour_no BIGINT NOT NULL,
    product_id {text} NOT NULL,
    currency {text},
    visitor_id BIGINT NOT NULL,
    revenue {double} NOT NULL
)
"""

_REVENUE_SELECT = """
SELECT site_id, hour_no, pid, cur, visitor_id, sum(rev)
FROM (
    SELECT e.site_id, {hour_e} AS hour_no, {product_id} AS pid, {currency} AS cur,
           e.visitor_id, {revenue} AS rev
    FROM {source} e WHERE {where} AND e.event_type = 'purchase'
) x
WHERE pid IS NOT NULL AND rev IS NOT NULL
GROUP BY site_id, hour_no, pid, cur, visitor_id
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
FROM {source} e WHERE {where} AND e.event_type = 'affiliate_click'
GROUP BY e.site_id, {hour_e}, e.visitor_id, {platform}, {position}
"""


@dataclass(frozen=True)
class Rollup:
    """One rollup table: how to derive its rows from events, and how to merge a key's rows."""

    name: str
    ddl: str
    select: str  # its rows for the events `e` of {source} that {where} selects
    keys: str  # the key columns, in table order
    merged: str  # a key's rows as one: the key columns, then the counts combined

    def rebuild(self) -> tuple[str, str]:
        """Delete a site's rows ({site}) and derive them again from its stored events."""
        scope = _Partial(source="analytics_events", where="e.site_id = {site}")
        insert = f"INSERT INTO {self.name}\n" + self.select.format_map(scope)
        return f"DELETE FROM {self.name} WHERE site_id = {{site}}", insert

    def add_new_rows(self) -> str:
        """Add the counts of `new_rows` (a batch's new events), one row per key."""
        insert = self.select.format_map(_Partial(source="new_rows", where="TRUE"))
        return f"INSERT INTO {self.name}\n{insert}"

    def compact(self) -> tuple[str, str, str, str]:
        """Merge the rows of the hours in `compact_hours` into one per key."""
        return (
            f"CREATE TEMP TABLE compacted AS SELECT {self.merged} FROM {self.name} r "
            "JOIN compact_hours c ON r.site_id = c.site_id AND r.hour_no = c.hour_no "
            f"GROUP BY {self.keys}",
            f"DELETE FROM {self.name} USING compact_hours c "
            f"WHERE {self.name}.site_id = c.site_id AND {self.name}.hour_no = c.hour_no",
            f"INSERT INTO {self.name} SELECT * FROM compacted",
            "DROP TABLE compacted",
        )


class _Partial(dict[str, str]):
    """format_map fills what it knows and leaves the engine's placeholders for `render`."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


TABLES = (
    Rollup("rollup_visitor_hours", ROLLUP_DDL, _VISITOR_SELECT,
           "r.site_id, r.hour_no, r.visitor_id",
           "r.site_id, r.hour_no, r.visitor_id, sum(r.page_views) AS page_views, "
           "sum(r.events) AS events"),
    Rollup("rollup_page_hours", PAGES_DDL, _PAGES_SELECT,
           "r.site_id, r.hour_no, r.page_path, r.visitor_id",
           "r.site_id, r.hour_no, r.page_path, r.visitor_id, sum(r.views) AS views"),
    Rollup("rollup_product_hours", PRODUCTS_DDL, _PRODUCTS_SELECT,
           "r.site_id, r.hour_no, r.product_id, r.visitor_id",
           "r.site_id, r.hour_no, r.product_id, r.visitor_id, max(r.name) AS name, "
           "sum(r.views) AS views, sum(r.clicks) AS clicks, "
           "sum(r.affiliate_clicks) AS affiliate_clicks, sum(r.wishlist) AS wishlist, "
           "sum(r.compare) AS compare, sum(r.revenue) AS revenue"),
    Rollup("rollup_product_revenue_hours", REVENUE_DDL, _REVENUE_SELECT,
           "r.site_id, r.hour_no, r.product_id, r.currency, r.visitor_id",
           "r.site_id, r.hour_no, r.product_id, r.currency, r.visitor_id, "
           "sum(r.revenue) AS revenue"),
    Rollup("rollup_affiliate_hours", AFFILIATE_DDL, _AFFILIATE_SELECT,
           "r.site_id, r.hour_no, r.visitor_id, r.platform, r.position",
           "r.site_id, r.hour_no, r.visitor_id, r.platform, r.position, "
           "sum(r.clicks) AS clicks"),
)  # fmt: skip

# The hours a batch added rows to, until they are compacted. Kept as a table, so that hours
# left uncompacted when the server stopped are compacted after it starts again.
DIRTY_DDL = """
CREATE TABLE IF NOT EXISTS rollup_dirty_hours (
    site_id {text} NOT NULL,
    hour_no BIGINT NOT NULL
)
"""

# The loader compacts the hours before the newest hour it has loaded, at most this often: the
# current hour keeps a row per batch a key appeared in until the loader moves past it.
COMPACT_EVERY_SECONDS = 60.0


def add_statements() -> list[str]:
    """A batch's upkeep: its counts, and the hours it touched (`new_rows` is the batch)."""
    dirty = "INSERT INTO rollup_dirty_hours SELECT DISTINCT e.site_id, {hour_e} FROM new_rows e"
    return [dirty, *(t.add_new_rows() for t in TABLES)]


def compact_statements() -> list[str]:
    """Merge each key's rows in the dirty hours before {before} (an hour number)."""
    return [
        "DROP TABLE IF EXISTS compact_hours",
        "CREATE TEMP TABLE compact_hours AS SELECT DISTINCT site_id, hour_no "
        "FROM rollup_dirty_hours WHERE hour_no < {before}",
        *(sql for t in TABLES for sql in t.compact()),
        "DELETE FROM rollup_dirty_hours USING compact_hours c "
        "WHERE rollup_dirty_hours.site_id = c.site_id AND rollup_dirty_hours.hour_no = c.hour_no",
        "DROP TABLE compact_hours",
    ]


# The query layer's property reads (query/dialects.py), spelled out here because the store
# does not import the query layer: rollup answers must equal the raw scan's on each engine.
def _props(engine: str) -> dict[str, str]:
    keys = {"product_id": "productId", "product_name": "productName", "platform": "platform",
            "position": "position", "currency": "currency"}  # fmt: skip
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
        hours = {"hour_e": "(epoch_ms(e.ts) // 3600000)"}
        marks = {"site": "$site", "before": "$before"}
        text, double = "VARCHAR", "DOUBLE"
    else:
        hours = {"hour_e": "floor(EXTRACT(EPOCH FROM e.ts) / 3600)::bigint"}
        marks = {"site": "%(site)s", "before": "%(before)s"}
        text = 'text COLLATE "C"'  # as the events table, so joins compare alike
        double = "double precision"
    return sql.format(**hours, **marks, **_props(engine), text=text, double=double)
