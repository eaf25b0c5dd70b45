"""Goals: conversions per conversion event type, and revenue.

Definitions (events in the range that match the filters): the goals are the conversion event
types (`affiliate_click`, `copied_coupon`, `form_submit`, `purchase`; the events that make a
session "converted") followed by any custom event types asked for. Per goal: `completions` =
its events, `visitors` = their distinct visitors, `conversionRate` = `visitors` / distinct
visitors of all events in the range, `revenue` = the sum of numeric `properties.revenue` of its
events (in practice `purchase`), and `revenueByCurrency` the same split by
`properties.currency` (amounts are never converted; a missing currency is reported as null).
Summary: `visitors` (all), `convertingVisitors` (with any goal event), `conversionRate`,
`completions` and `revenue` over all goals, and `revenueByCurrency` over all goals (what a
shop selling in several currencies reads: `revenue` adds their amounts as they are).
"""

from __future__ import annotations

import re
from typing import Any

from cadlink.events import CONVERSION_EVENT_TYPES
from cadlink.query.dimensions import dimension
from cadlink.query.plan import EVENTS, Executor, Plan
from cadlink.query.reports.money import by_currency, money
from cadlink.query.spec import QueryError
from cadlink.query.sql import Sql, in_list, raw

MAX_GOALS = 20
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")  # as events.EventType


def parse_goals(value: str | None) -> tuple[str, ...]:
    """The conversion event types, then the comma-separated custom ones (deduplicated)."""
    custom = [g.strip() for g in (value or "").split(",") if g.strip()]
    if len(custom) > MAX_GOALS:
        raise QueryError(f"at most {MAX_GOALS} goals", "goals")
    for g in custom:
        if not _EVENT_TYPE.match(g):
            raise QueryError(f"goal {g!r} is not an event type (1-64 of A-Z a-z 0-9 _.:-)", "goals")
    out = sorted(CONVERSION_EVENT_TYPES)
    for g in custom:
        if g not in out:
            out.append(g)
    return tuple(out)


def _ratio(num: float, den: float) -> float:
    return round(num / den, 4) if den else 0.0


def goals(plan: Plan, db: Executor, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    names = names or parse_goals(None)
    is_goal = in_list(raw("e.event_type"), names)
    revenue = plan.dialect.prop_number("revenue")
    totals = plan.run(
        db,
        Sql("SELECT count(DISTINCT e.visitor_id) AS visitors, count(DISTINCT CASE WHEN ")
        + is_goal
        + f" THEN e.visitor_id END) AS converting FROM {EVENTS} e WHERE "
        + plan.event_where(),
    )[0]
    per_goal = plan.run(
        db,
        Sql("SELECT e.event_type AS goal, count(*) AS n, count(DISTINCT e.visitor_id) AS v, sum(")
        + revenue
        + f") AS revenue FROM {EVENTS} e WHERE "
        + plan.event_where()
        + " AND "
        + is_goal
        + " GROUP BY e.event_type",
    )
    currencies = plan.run(
        db,
        Sql("SELECT e.event_type AS goal, ")
        + plan.event_expr(dimension("prop:currency"))
        + " AS currency, sum("
        + revenue
        + f") AS revenue FROM {EVENTS} e WHERE "
        + plan.event_where()
        + " AND "
        + is_goal
        + " AND "
        + revenue
        + " IS NOT NULL GROUP BY 1, 2",
    )
    visitors = int(totals["visitors"] or 0)
    found = {r["goal"]: r for r in per_goal}
    rows = []
    for name in names:
        r = found.get(name, {})
        v = int(r.get("v") or 0)
        rows.append(
            {
                "goal": name,
                "completions": int(r.get("n") or 0),
                "visitors": v,
                "conversionRate": _ratio(v, visitors),
                "revenue": money(r.get("revenue")),
                "revenueByCurrency": by_currency(r for r in currencies if r["goal"] == name),
            }
        )
    converting = int(totals["converting"] or 0)
    return {
        "summary": {
            "visitors": visitors,
            "convertingVisitors": converting,
            "conversionRate": _ratio(converting, visitors),
            "completions": sum(g["completions"] for g in rows),
            "revenue": money(sum(float(r.get("revenue") or 0.0) for r in per_goal)),
            "revenueByCurrency": by_currency(currencies),
        },
        "goals": rows,
    }


__all__ = ["MAX_GOALS", "goals", "parse_goals"]
