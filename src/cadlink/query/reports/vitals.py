"""Web vitals: the 75th percentile of each metric, per page and over the site.

Definitions (events in the range that match the filters): samples are `web_vitals` events —
the tracker sends one per loaded page when it is first hidden, with whichever of `ttfb`, `fcp`,
`lcp`, `inp` (milliseconds) and `cls` (unitless) the browser measured, dated with the landing
page; the demo sends the same event with all five. (`slow_page` repeats `lcp`/`ttfb` of a
sample and `page_view` carries none, so neither is counted.) A metric's sample is its numeric
property when >= 0. `p75` is the continuous 75th percentile (linear interpolation between the
closest ranks, as DuckDB's `quantile_cont` and PostgreSQL's `percentile_cont`), null without
samples; `counts` are the samples per metric; `samples` = `web_vitals` events. `rating` applies
Google's thresholds to the p75 (good / needs-improvement / poor). Pages are by `samples`.
"""

from __future__ import annotations

from typing import Any

from cadlink.query.plan import EVENTS, Executor, Plan
from cadlink.query.sql import Sql

METRICS = ("ttfb", "fcp", "lcp", "cls", "inp")
# (good up to, poor above), from web.dev's definitions of each metric.
THRESHOLDS = {
    "ttfb": (800.0, 1800.0),
    "fcp": (1800.0, 3000.0),
    "lcp": (2500.0, 4000.0),
    "cls": (0.1, 0.25),
    "inp": (200.0, 500.0),
}


def rating(metric: str, value: float | None) -> str | None:
    if value is None:
        return None
    good, poor = THRESHOLDS[metric]
    return "good" if value <= good else "poor" if value > poor else "needs-improvement"


def _round(metric: str, value: Any) -> float | None:
    if value is None:
        return None
    # round(…, 9) first: the engines interpolate in different orders, and a last-bit
    # difference must not flip the displayed digit.
    return round(round(float(value), 9), 4 if metric == "cls" else 1)


def _query(plan: Plan, per_page: bool, limit: int) -> Sql:
    d = plan.dialect
    cols = Sql("SELECT e.page_path AS page")
    for m in METRICS:
        num = d.prop_number(m)
        cols = cols + ", CASE WHEN " + num + " >= 0 THEN " + num + f" END AS {m}"
    aggs = Sql("count(*) AS samples")
    for m in METRICS:
        aggs = aggs + ", " + d.quantile(m, 0.75) + f" AS p75_{m}, count({m}) AS n_{m}"
    sql = (
        Sql("WITH v AS (")
        + cols
        + f" FROM {EVENTS} e WHERE "
        + plan.event_where()
        + " AND e.event_type = 'web_vitals') SELECT "
        + ("page, " if per_page else "")
        + aggs
        + " FROM v"
    )
    if per_page:
        sql = (
            sql
            + " GROUP BY page ORDER BY samples DESC, page NULLS LAST LIMIT ?"
            + Sql("", (limit,))
        )
    return sql


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    p75 = {m: _round(m, row[f"p75_{m}"]) for m in METRICS}
    return {
        "samples": int(row["samples"] or 0),
        "p75": p75,
        "counts": {m: int(row[f"n_{m}"] or 0) for m in METRICS},
        "rating": {m: rating(m, p75[m]) for m in METRICS},
    }


def vitals(plan: Plan, db: Executor) -> dict[str, Any]:
    limit = plan.spec.limit
    overall = plan.run(db, _query(plan, False, limit))[0]
    rows = plan.run(db, _query(plan, True, limit))
    return {
        "overall": _shape(overall),
        "pages": [{"page": r["page"], **_shape(r)} for r in rows],
    }


__all__ = ["METRICS", "THRESHOLDS", "rating", "vitals"]
