"""Site search: top queries, zero-result queries, and the filters and sorts visitors used.

Definitions (events in the range that match the filters):
- a *query* is `properties.query` of a `search_query` (or `zero_results`) event, lower-cased
  and trimmed of spaces; events without a non-empty query are left out of per-query rows;
- `searches` = `search_query` events; `searchers` = their distinct visitors;
- `avgResults` = the mean of numeric `properties.resultsCount` over a query's `search_query`
  events (null when none carries one);
- a *zero-result search* is reported by the tracker/site as a `search_query` with
  `resultsCount` = 0, or as a `zero_results` event, or both for the same search (the demo
  shop sends both). Per query (and in the summary) zero-result searches = the larger of the
  two counts, so each search counts once whichever way the site reports it;
- filters used: `search_filter` events by (`properties.filter`, `properties.value`);
  sorts used: `search_sort` events by `properties.sort`. Each row has events and distinct
  visitors.
"""

from __future__ import annotations

from typing import Any

from cadlink.query.dimensions import dimension
from cadlink.query.plan import EVENTS, Executor, Plan
from cadlink.query.sql import Sql


def _ratio(num: float, den: float) -> float:
    return round(num / den, 4) if den else 0.0


def _base(plan: Plan, types: str) -> Sql:
    """Events of `types` (trusted SQL list) with their normalised query and results count."""
    query = plan.event_expr(dimension("prop:query"))
    return (
        Sql("SELECT e.event_type AS et, e.visitor_id AS vid, lower(trim(")
        + query
        + ")) AS q, "
        + plan.dialect.prop_number("resultsCount")
        + f" AS rc FROM {EVENTS} e WHERE "
        + plan.event_where()
        + f" AND e.event_type IN ({types})"
    )


_ZERO_SQ = "(et = 'search_query' AND rc = 0)"
_ZERO = f"greatest(count(*) FILTER (WHERE {_ZERO_SQ}), count(*) FILTER (WHERE et = 'zero_results'))"


def summary(plan: Plan, db: Executor) -> dict[str, Any]:
    row = plan.run(
        db,
        Sql("WITH s AS (")
        + _base(plan, "'search_query', 'zero_results'")
        + ") SELECT count(*) FILTER (WHERE et = 'search_query') AS searches, "
        "count(DISTINCT CASE WHEN et = 'search_query' THEN vid END) AS searchers, "
        "count(DISTINCT CASE WHEN et = 'search_query' AND q <> '' THEN q END) AS queries, "
        f"{_ZERO} AS zero FROM s",
    )[0]
    searches, zero = int(row["searches"] or 0), int(row["zero"] or 0)
    return {
        "searches": searches,
        "searchers": int(row["searchers"] or 0),
        "distinctQueries": int(row["queries"] or 0),
        "zeroResultSearches": zero,
        "zeroResultRate": _ratio(zero, searches),
    }


def top_queries(plan: Plan, db: Executor, limit: int) -> list[dict[str, Any]]:
    rows = plan.run(
        db,
        Sql("WITH s AS (")
        + _base(plan, "'search_query'")
        + ") SELECT q AS query, count(*) AS searches, count(DISTINCT vid) AS visitors, "
        "avg(rc) AS avg_results, count(*) FILTER (WHERE rc = 0) AS zero "
        "FROM s WHERE q <> '' GROUP BY q ORDER BY searches DESC, visitors DESC, query LIMIT ?"
        + Sql("", (limit,)),
    )
    return [
        {
            "query": r["query"],
            "searches": int(r["searches"]),
            "visitors": int(r["visitors"]),
            "avgResults": None if r["avg_results"] is None else round(float(r["avg_results"]), 2),
            "zeroResultSearches": int(r["zero"]),
        }
        for r in rows
    ]


def zero_result_queries(plan: Plan, db: Executor, limit: int) -> list[dict[str, Any]]:
    rows = plan.run(
        db,
        Sql("WITH s AS (")
        + _base(plan, "'search_query', 'zero_results'")
        + f") SELECT q AS query, {_ZERO} AS searches, count(DISTINCT vid) AS visitors FROM s "
        f"WHERE q <> '' AND (et = 'zero_results' OR {_ZERO_SQ}) "
        "GROUP BY q ORDER BY searches DESC, visitors DESC, query LIMIT ?" + Sql("", (limit,)),
    )
    return [
        {"query": r["query"], "searches": int(r["searches"]), "visitors": int(r["visitors"])}
        for r in rows
    ]


def _props_used(
    plan: Plan, db: Executor, event_type: str, keys: tuple[str, ...], limit: int
) -> list[dict[str, Any]]:
    cols = [plan.event_expr(dimension("prop:" + k)) + f" AS k{i}" for i, k in enumerate(keys)]
    names = ", ".join(f"k{i}" for i in range(len(keys)))
    select = Sql("SELECT ")
    for c in cols:
        select = select + c + ", "
    rows = plan.run(
        db,
        select
        + f"count(*) AS events, count(DISTINCT e.visitor_id) AS visitors FROM {EVENTS} e WHERE "
        + plan.event_where()
        + " AND e.event_type = ?"
        + Sql("", (event_type,))
        + f" GROUP BY {names} ORDER BY events DESC, visitors DESC, {names} LIMIT ?"
        + Sql("", (limit,)),
    )
    return [
        {
            **{k: r[f"k{i}"] for i, k in enumerate(keys)},
            "events": int(r["events"]),
            "visitors": int(r["visitors"]),
        }
        for r in rows
    ]


def search(plan: Plan, db: Executor) -> dict[str, Any]:
    limit = plan.spec.limit
    return {
        "summary": summary(plan, db),
        "topQueries": top_queries(plan, db, limit),
        "zeroResultQueries": zero_result_queries(plan, db, limit),
        "filters": _props_used(plan, db, "search_filter", ("filter", "value"), limit),
        "sorts": _props_used(plan, db, "search_sort", ("sort",), limit),
    }


__all__ = ["search", "summary", "top_queries", "zero_result_queries"]
