"""Errors: the commonest JavaScript errors and failing API calls.

Definitions (events in the range that match the filters):
- JavaScript errors are `js_error` events grouped by `properties.message` (the tracker sends
  each distinct error once per page, message cut to 500 characters); per message: `count` =
  events, `visitors` = distinct visitors, `pages` = distinct page paths, `lastSeen` = the
  latest event time (UTC, ISO 8601).
- API errors are `api_error` events grouped by (`properties.endpoint`, `properties.method`,
  `properties.status`), with the same measures.
- summary: events and distinct visitors of each kind, and `errorVisitorShare` = visitors with
  a `js_error` / visitors with a `page_view` (an error cannot be tied to one page view: events
  carry no page-view id).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cadlink.query.dimensions import dimension
from cadlink.query.plan import EVENTS, Executor, Plan
from cadlink.query.sql import Sql


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value.astimezone(UTC).isoformat()


def _status(value: Any) -> int | str | None:
    if value is None:
        return None
    text = str(value)
    return int(text) if text.isdigit() else text


def _grouped(
    plan: Plan, db: Executor, event_type: str, keys: tuple[str, ...], limit: int
) -> list[dict[str, Any]]:
    select = Sql("SELECT ")
    for i, k in enumerate(keys):
        select = select + plan.event_expr(dimension("prop:" + k)) + f" AS k{i}, "
    names = ", ".join(f"k{i}" for i in range(len(keys)))
    return plan.run(
        db,
        select + "count(*) AS n, count(DISTINCT e.visitor_id) AS visitors, "
        f"count(DISTINCT e.page_path) AS pages, max(e.ts) AS last_seen FROM {EVENTS} e WHERE "
        + plan.event_where()
        + " AND e.event_type = ?"
        + Sql("", (event_type,))
        + f" GROUP BY {names} ORDER BY n DESC, visitors DESC, {names} NULLS LAST LIMIT ?"
        + Sql("", (limit,)),
    )


def _measures(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "count": int(r["n"]),
        "visitors": int(r["visitors"]),
        "pages": int(r["pages"]),
        "lastSeen": _iso(r["last_seen"]),
    }


def js_errors(plan: Plan, db: Executor, limit: int) -> list[dict[str, Any]]:
    rows = _grouped(plan, db, "js_error", ("message",), limit)
    return [{"message": r["k0"], **_measures(r)} for r in rows]


def api_errors(plan: Plan, db: Executor, limit: int) -> list[dict[str, Any]]:
    rows = _grouped(plan, db, "api_error", ("endpoint", "method", "status"), limit)
    return [
        {"endpoint": r["k0"], "method": r["k1"], "status": _status(r["k2"]), **_measures(r)}
        for r in rows
    ]


def summary(plan: Plan, db: Executor) -> dict[str, Any]:
    def of(t: str) -> str:
        return (
            f"count(*) FILTER (WHERE e.event_type = '{t}') AS {t}_n, "
            f"count(DISTINCT CASE WHEN e.event_type = '{t}' THEN e.visitor_id END) AS {t}_v"
        )

    row = plan.run(
        db,
        Sql(f"SELECT {of('js_error')}, {of('api_error')}, {of('page_view')} FROM {EVENTS} e WHERE ")
        + plan.event_where()
        + " AND e.event_type IN ('js_error', 'api_error', 'page_view')",
    )[0]
    js_v, pv_v = int(row["js_error_v"] or 0), int(row["page_view_v"] or 0)
    return {
        "jsErrors": int(row["js_error_n"] or 0),
        "jsErrorVisitors": js_v,
        "apiErrors": int(row["api_error_n"] or 0),
        "apiErrorVisitors": int(row["api_error_v"] or 0),
        "errorVisitorShare": round(js_v / pv_v, 4) if pv_v else 0.0,
    }


def errors(plan: Plan, db: Executor) -> dict[str, Any]:
    limit = plan.spec.limit
    return {
        "summary": summary(plan, db),
        "jsErrors": js_errors(plan, db, limit),
        "apiErrors": api_errors(plan, db, limit),
    }


__all__ = ["api_errors", "errors", "js_errors", "summary"]
