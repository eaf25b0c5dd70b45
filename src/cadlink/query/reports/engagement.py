"""Engagement: how far visitors scroll and how long they stay on each page.

Definitions (events in the range that match the filters):
- scroll depth: the tracker sends `scroll_depth` with `properties.depth` 25, 50, 75, 90 or 100
  once per page view and milestone, every lower milestone included (a jump to the bottom sends
  all five). So for milestone m, `pageViews` = `scroll_depth` events with depth m = page views
  that reached at least m%, `share` = that / `page_view` events; `visitors` = distinct visitors
  with such an event, `visitorShare` = that / distinct visitors with a `page_view`. Other
  depths (custom events) are ignored.
- time on page: `properties.timeOnPage` of `page_exit` events (milliseconds the page was
  visible, as the tracker measures it), values >= 0 only, grouped by the exited page's path.
  `exits` = such events, `avgSeconds` = their mean / 1000, `medianSeconds` = their continuous
  median (interpolated, as `quantile_cont` / `percentile_cont`) / 1000.
- per page: `views` = `page_view` events, `visitors` = their distinct visitors, `reached75` =
  `scroll_depth` events with depth 75 on the page / `views`. `pages` are the top pages by views;
  `mostEngaged` are pages with at least `min_exits` exits, by `avgSeconds` descending.
"""

from __future__ import annotations

from typing import Any

from cadlink.query.plan import EVENTS, Executor, Plan
from cadlink.query.sql import Sql

MILESTONES = (25, 50, 75, 90, 100)
MIN_EXITS = 10


def _ratio(num: float, den: float) -> float:
    return round(num / den, 4) if den else 0.0


def _seconds(ms: Any) -> float | None:
    # round(…, 9) first: float noise from the engine must not flip the last digit.
    return None if ms is None else round(round(float(ms) / 1000, 9), 3)


def _rows(plan: Plan) -> Sql:
    d = plan.dialect
    return (
        Sql("SELECT e.page_path AS page, e.event_type AS et, e.visitor_id AS vid, ")
        + d.prop_number("depth")
        + " AS depth, CASE WHEN e.event_type = 'page_exit' AND "
        + d.prop_number("timeOnPage")
        + " >= 0 THEN "
        + d.prop_number("timeOnPage")
        + f" END AS top FROM {EVENTS} e WHERE "
        + plan.event_where()
        + " AND e.event_type IN ('page_view', 'page_exit', 'scroll_depth')"
    )


def scroll_depth(plan: Plan, db: Executor) -> list[dict[str, Any]]:
    # Per visitor first, then over visitors: one aggregation by visitor instead of six
    # distinct counts, each a hash set of its own (10 M events: 700 -> 525 ms).
    per_visitor = ["count(*) FILTER (WHERE et = 'page_view') AS views",
                   "bool_or(et = 'page_view') AS viewed"]  # fmt: skip
    totals = ["sum(views) AS views", "count(*) FILTER (WHERE viewed) AS visitors"]
    for m in MILESTONES:
        hit = f"et = 'scroll_depth' AND depth = {m}"
        per_visitor += [f"count(*) FILTER (WHERE {hit}) AS n{m}", f"bool_or({hit}) AS h{m}"]
        totals += [f"sum(n{m}) AS n{m}", f"count(*) FILTER (WHERE h{m}) AS v{m}"]
    row = plan.run(
        db,
        Sql("WITH x AS (")
        + _rows(plan)
        + f"), v AS (SELECT {', '.join(per_visitor)} FROM x GROUP BY vid) "
        + f"SELECT {', '.join(totals)} FROM v",
    )[0]
    views, visitors = int(row["views"] or 0), int(row["visitors"] or 0)
    return [
        {
            "depth": m,
            "pageViews": int(row[f"n{m}"] or 0),
            "share": _ratio(int(row[f"n{m}"] or 0), views),
            "visitors": int(row[f"v{m}"] or 0),
            "visitorShare": _ratio(int(row[f"v{m}"] or 0), visitors),
        }
        for m in MILESTONES
    ]


def time_on_page(plan: Plan, db: Executor) -> dict[str, Any]:
    """Over every page: exits, mean and median time on page."""
    row = plan.run(
        db,
        Sql("WITH x AS (")
        + _rows(plan)
        + ") SELECT count(top) AS exits, avg(top) AS avg_top, "
        + plan.dialect.quantile("top", 0.5)
        + " AS median_top FROM x",
    )[0]
    return {
        "exits": int(row["exits"] or 0),
        "avgSeconds": _seconds(row["avg_top"]),
        "medianSeconds": _seconds(row["median_top"]),
    }


_VIEWS = "count(*) FILTER (WHERE et = 'page_view')"
_EXITS = "count(top)"


def page_lists(
    plan: Plan, db: Executor, limit: int, min_exits: int = MIN_EXITS
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per page stats, aggregated once: the top pages by views, and the pages with at least
    `min_exits` exits by mean time on page (the two lists of `engagement`)."""
    by_views = "row_number() OVER (PARTITION BY views > 0 ORDER BY views DESC, page)"
    by_time = "row_number() OVER (PARTITION BY exits >= ? ORDER BY avg_top DESC, page)"
    rows = plan.run(
        db,
        Sql("WITH x AS (") + _rows(plan) + f"), p AS (SELECT page, {_VIEWS} AS views, "
        "count(DISTINCT CASE WHEN et = 'page_view' THEN vid END) AS visitors, "
        f"{_EXITS} AS exits, avg(top) AS avg_top, "
        + plan.dialect.quantile("top", 0.5)
        + " AS median_top, count(*) FILTER (WHERE et = 'scroll_depth' AND depth = 75) AS s75 "
        "FROM x WHERE page IS NOT NULL GROUP BY page) "
        f"SELECT * FROM (SELECT p.*, CASE WHEN views > 0 THEN {by_views} END AS rank_views, "
        + Sql(f"CASE WHEN exits >= ? THEN {by_time} END AS rank_time ", (min_exits, min_exits))
        + "FROM p) r WHERE rank_views <= ? OR rank_time <= ?"
        + Sql("", (limit, limit)),
    )
    top = sorted((r for r in rows if r["rank_views"] is not None), key=lambda r: r["rank_views"])
    engaged = sorted((r for r in rows if r["rank_time"] is not None), key=lambda r: r["rank_time"])
    return [_page(r) for r in top if r["rank_views"] <= limit], [
        _page(r) for r in engaged if r["rank_time"] <= limit
    ]


def _page(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "page": r["page"],
        "views": int(r["views"]),
        "visitors": int(r["visitors"]),
        "exits": int(r["exits"]),
        "avgSeconds": _seconds(r["avg_top"]),
        "medianSeconds": _seconds(r["median_top"]),
        "reached75": _ratio(int(r["s75"]), int(r["views"])),
    }


def engagement(plan: Plan, db: Executor) -> dict[str, Any]:
    """Both page lists come from one aggregation (10 M events, with `scroll_depth` counted
    per visitor: 2.3 -> 1.5 s for the report). Run side by side, its three statements took
    no less: DuckDB already uses every core."""
    top, engaged = page_lists(plan, db, plan.spec.limit)
    return {
        "scrollDepth": scroll_depth(plan, db),
        "timeOnPage": time_on_page(plan, db),
        "pages": top,
        "mostEngaged": engaged,
    }


__all__ = ["MILESTONES", "engagement", "page_lists", "scroll_depth", "time_on_page"]
