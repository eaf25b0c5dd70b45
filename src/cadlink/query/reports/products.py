"""Product analytics: top products, and affiliate clicks by platform and position.

Events count within the period and the report's filters; a product is the text of
`properties.productId` (events without one are ignored). Per product:

- `name`: a `properties.productName` of its `product_view` or `product_wishlist` events
  (the greatest, if several);
- `views`: `product_view` events; `uniqueViews`: distinct visitors with one;
- `clicks`: `product_click` events; `affiliateClicks`: `affiliate_click` events;
- `clickThroughRate`: affiliateClicks / views (0 without views);
- `wishlist`: `product_wishlist` events; `compare`: `product_compare` events;
- `revenue`: sum of numeric `properties.revenue` of `purchase` events naming the product;
  `revenueByCurrency`: the same per `properties.currency` (`[{"currency", "revenue"}]`, by
  currency code, a missing currency as null, last; empty without revenue). `revenue` adds
  amounts of different currencies as they are: a shop selling in several reads the split.

Sorted by views, then product id; `limit` rows.

The affiliate breakdown counts `affiliate_click` events (`clicks`) and distinct visitors
(`visitors`) in total, per `properties.platform` and per `properties.position` (as text,
`null` when absent), each list sorted by clicks, then value, and cut at `limit`.

Without filters, in a zone whose offsets are whole hours (as the dashboard decides in
`Plan.uses_hour_rollup`), both read the hourly product, product revenue and affiliate
rollups the loader keeps (per site, hour, visitor and product, product and currency, or
platform/position) instead of the events: the same answers, distinct visitors included,
without reading a property of any event.
"""

from __future__ import annotations

from typing import Any

from cadlink.query.dialects import dialect_for
from cadlink.query.plan import (
    AFFILIATE_HOURS,
    EVENTS,
    PRODUCT_HOURS,
    PRODUCT_REVENUE_HOURS,
    Executor,
    Plan,
)
from cadlink.query.reports.money import by_currency
from cadlink.query.spec import ReportSpec
from cadlink.query.sql import Sql, in_list, join, param

PRODUCT_EVENT_TYPES = (
    "affiliate_click", "product_click", "product_compare", "product_view", "product_wishlist",
    "purchase",
)  # fmt: skip


def _top_from_rollup(plan: Plan, db: Executor, limit: int) -> list[dict[str, Any]]:
    sql = (
        Sql(
            "SELECT * FROM (SELECT r.product_id AS pid, max(r.name) AS name, "
            "sum(r.views) AS views, "
            "count(DISTINCT r.visitor_id) FILTER (WHERE r.views > 0) AS unique_views, "
            "sum(r.clicks) AS clicks, sum(r.affiliate_clicks) AS affiliate_clicks, "
            "sum(r.wishlist) AS wishlist, sum(r.compare) AS compare, "
            f"sum(r.revenue) AS revenue FROM {PRODUCT_HOURS} r WHERE "
        )
        + plan.rollup_where()
        + " GROUP BY r.product_id) t ORDER BY views DESC, pid LIMIT "
        + param(limit)
    )
    return plan.run(db, sql)


def _revenue_by_currency(plan: Plan, db: Executor) -> list[dict[str, Any]]:
    """(pid, currency, revenue) rows of the period's purchases with a numeric revenue."""
    if plan.uses_hour_rollup():
        sql = (
            Sql(
                "SELECT r.product_id AS pid, r.currency, sum(r.revenue) AS revenue "
                f"FROM {PRODUCT_REVENUE_HOURS} r WHERE "
            )
            + plan.rollup_where()
            + " GROUP BY 1, 2"
        )
    else:
        d = plan.dialect
        sql = (
            Sql("SELECT pid, currency, sum(rev) AS revenue FROM (SELECT ")
            + join(
                [
                    d.prop("productId") + " AS pid",
                    d.prop("currency") + " AS currency",
                    d.prop_number("revenue") + " AS rev",
                ]
            )
            + f" FROM {EVENTS} e WHERE "
            + plan.event_where()
            + " AND e.event_type = 'purchase') x "
            + "WHERE pid IS NOT NULL AND rev IS NOT NULL GROUP BY 1, 2"
        )
    return plan.run(db, sql)


def top_products(plan: Plan, db: Executor, limit: int) -> list[dict[str, Any]]:
    rows = (
        _top_from_rollup(plan, db, limit)
        if plan.uses_hour_rollup()
        else _top_from_events(plan, db, limit)
    )
    # A second, small read, only when the products listed had purchases (an affiliate or
    # content site has none).
    currencies: dict[str, list[dict[str, Any]]] = {}
    if any(r["revenue"] is not None for r in rows):
        for c in _revenue_by_currency(plan, db):
            currencies.setdefault(c["pid"], []).append(c)
    out = []
    for r in rows:
        views, aff = int(r["views"]), int(r["affiliate_clicks"])
        out.append(
            {
                "productId": r["pid"],
                "name": r["name"],
                "views": views,
                "uniqueViews": int(r["unique_views"]),
                "clicks": int(r["clicks"]),
                "affiliateClicks": aff,
                "clickThroughRate": round(aff / views, 4) if views else 0.0,
                "wishlist": int(r["wishlist"]),
                "compare": int(r["compare"]),
                "revenue": round(float(r["revenue"] or 0.0), 2),
                "revenueByCurrency": by_currency(currencies.get(r["pid"], ())),
            }
        )
    return out


def _top_from_events(plan: Plan, db: Executor, limit: int) -> list[dict[str, Any]]:
    d = plan.dialect
    # MATERIALIZED, so that `pid IS NOT NULL` reads the extracted value instead of being
    # pushed into the scan as a second JSON parse per event.
    inner = (
        Sql("WITH x AS MATERIALIZED (SELECT e.event_type AS et, e.visitor_id AS v, ")
        + join(
            [
                d.prop("productId") + " AS pid",
                # Each property read parses the JSON again: read the others only where needed.
                Sql("CASE WHEN e.event_type IN ('product_view', 'product_wishlist') THEN ")
                + d.prop("productName")
                + " END AS name",
                Sql("CASE WHEN e.event_type = 'purchase' THEN ")
                + d.prop_number("revenue")
                + " END AS rev",
            ]
        )
        + f" FROM {EVENTS} e WHERE "
        + plan.event_where()
        + " AND "
        + in_list(Sql("e.event_type"), PRODUCT_EVENT_TYPES)
        + ") "
    )
    sql = (
        inner
        + Sql(
            "SELECT pid, max(name) AS name, "
            "count(*) FILTER (WHERE et = 'product_view') AS views, "
            "count(DISTINCT v) FILTER (WHERE et = 'product_view') AS unique_views, "
            "count(*) FILTER (WHERE et = 'product_click') AS clicks, "
            "count(*) FILTER (WHERE et = 'affiliate_click') AS affiliate_clicks, "
            "count(*) FILTER (WHERE et = 'product_wishlist') AS wishlist, "
            "count(*) FILTER (WHERE et = 'product_compare') AS compare, "
            "sum(rev) FILTER (WHERE et = 'purchase') AS revenue FROM x "
        )
        + "WHERE pid IS NOT NULL GROUP BY pid ORDER BY views DESC, pid LIMIT "
        + param(limit)
    )
    return plan.run(db, sql)


def affiliate_breakdown(plan: Plan, db: Executor, limit: int) -> dict[str, Any]:
    d = plan.dialect
    if plan.uses_hour_rollup():
        # One row per (hour, visitor, platform, position): clicks add up, visitors stay exact.
        source = (
            Sql("SELECT r.visitor_id AS v, r.platform, r.position, r.clicks AS n ")
            + f"FROM {AFFILIATE_HOURS} r WHERE "
            + plan.rollup_where()
        )
    else:
        source = (
            Sql("SELECT e.visitor_id AS v, ")
            + d.prop("platform")
            + " AS platform, "
            + d.prop("position")
            + f" AS position, 1 AS n FROM {EVENTS} e WHERE "
            + plan.event_where()
            + " AND e.event_type = 'affiliate_click'"
        )
    grouped = (
        Sql("SELECT GROUPING(platform) AS gp, GROUPING(position) AS gq, platform, position, ")
        + "coalesce(sum(n), 0) AS clicks, "
        + d.distinct("v", approx=False)
        + " AS visitors FROM ("
        + source
        + ") x GROUP BY GROUPING SETS ((platform), (position), ())"
    )
    # Cut each list in SQL: a site could send any number of distinct platforms.
    sql = (
        Sql("SELECT * FROM (SELECT g.*, row_number() OVER (PARTITION BY gp, gq ")
        + "ORDER BY clicks DESC, platform, position) AS rn FROM ("
        + grouped
        + ") g) r WHERE rn <= "
        + param(limit)
        + " ORDER BY gp, gq, rn"
    )
    total = {"clicks": 0, "visitors": 0}
    platforms: list[dict[str, Any]] = []
    positions: list[dict[str, Any]] = []
    for r in plan.run(db, sql):
        counts = {"clicks": int(r["clicks"]), "visitors": int(r["visitors"])}
        if r["gp"] and r["gq"]:
            total = counts
        elif not r["gp"]:
            platforms.append({"platform": r["platform"], **counts})
        else:
            positions.append({"position": r["position"], **counts})
    return {**total, "byPlatform": platforms, "byPosition": positions}


def _plan(db: Executor, spec: ReportSpec) -> Plan:
    return Plan(spec, dialect_for(db.engine))


def top(db: Executor, spec: ReportSpec) -> list[dict[str, Any]]:
    """The top `spec.limit` products by views."""
    return top_products(_plan(db, spec), db, spec.limit)


def affiliate(db: Executor, spec: ReportSpec) -> dict[str, Any]:
    """Affiliate clicks in total and by platform and position (`spec.limit` rows each)."""
    return affiliate_breakdown(_plan(db, spec), db, spec.limit)
