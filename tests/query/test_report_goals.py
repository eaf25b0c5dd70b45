"""The goals report equals a plain-Python count over the same demo events."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import pytest
from behaviour_data import CASES, loaded, number, plan, props, text

from cadlink.events import CONVERSION_EVENT_TYPES
from cadlink.query.reports import goals
from cadlink.query.spec import QueryError

START, END = date(2026, 5, 20), date(2026, 6, 9)


def _money(v: float) -> float:
    return round(round(v, 6), 2)


def expected(events: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    visitors = len({e["visitor_id"] for e in events})
    rows = []
    total_revenue = 0.0
    all_currencies: dict[str | None, float] = defaultdict(float)
    for name in names:
        evs = [e for e in events if e["event_type"] == name]
        who = {e["visitor_id"] for e in evs}
        revenue = 0.0
        by_currency: dict[str | None, float] = defaultdict(float)
        for e in evs:
            r = number(props(e).get("revenue"))
            if r is not None:
                revenue += r
                by_currency[text(props(e).get("currency"))] += r
                all_currencies[text(props(e).get("currency"))] += r
        total_revenue += revenue
        rows.append(
            {
                "goal": name,
                "completions": len(evs),
                "visitors": len(who),
                "conversionRate": round(len(who) / visitors, 4) if visitors else 0.0,
                "revenue": _money(revenue),
                "revenueByCurrency": [
                    {"currency": c, "revenue": _money(v)}
                    for c, v in sorted(by_currency.items(), key=lambda kv: (kv[0] is None, kv[0]))
                ],
            }
        )
    converting = len({e["visitor_id"] for e in events if e["event_type"] in names})
    return {
        "summary": {
            "visitors": visitors,
            "convertingVisitors": converting,
            "conversionRate": round(converting / visitors, 4) if visitors else 0.0,
            "completions": sum(r["completions"] for r in rows),
            "revenue": _money(total_revenue),
            "revenueByCurrency": [
                {"currency": c, "revenue": _money(v)}
                for c, v in sorted(all_currencies.items(), key=lambda kv: (kv[0] is None, kv[0]))
            ],
        },
        "goals": rows,
    }


@pytest.mark.parametrize(("tz", "raw_filters"), CASES)
@pytest.mark.parametrize("extra", [None, "identify, search_query,purchase", "no_such_event"])
def test_goals_match_reference(tz: str, raw_filters: str, extra: str | None) -> None:
    store, ref = loaded()
    p = plan(START, END, tz, raw_filters)
    names = goals.parse_goals(extra)
    got = goals.goals(p, store, names)
    want = expected(ref.events_in(p.spec.period, p.spec.filters), names)
    assert got["goals"] == want["goals"]
    s, w = got["summary"], want["summary"]
    assert s["revenue"] == pytest.approx(w["revenue"], abs=0.011)
    assert {k: v for k, v in s.items() if k != "revenue"} == {
        k: v for k, v in w.items() if k != "revenue"
    }
    if raw_filters == "[]" and extra is None:
        assert s["revenue"] > 0 and s["convertingVisitors"] > 0
        purchase = next(g for g in got["goals"] if g["goal"] == "purchase")
        assert purchase["revenueByCurrency"]
        assert len(s["revenueByCurrency"]) > 1  # the demo shop sells in several currencies


def test_parse_goals() -> None:
    base = tuple(sorted(CONVERSION_EVENT_TYPES))
    assert goals.parse_goals(None) == base
    assert goals.parse_goals(" signup ,purchase,signup") == (*base, "signup")
    for bad in ("bad name", "x" * 65, ",".join(f"g{i}" for i in range(goals.MAX_GOALS + 1))):
        with pytest.raises(QueryError) as e:
            goals.parse_goals(bad)
        assert e.value.field == "goals"
