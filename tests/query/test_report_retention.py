"""Weekly retention cohorts equal a plain-Python computation over the same demo events."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from behaviour_data import CASES, loaded, plan

from cadlink.query.reports import retention
from cadlink.query.spec import Period, QueryError

START, END = date(2026, 5, 18), date(2026, 6, 9)


def expected(
    events: list[dict[str, Any]], period: Period, weeks: int, identified: bool
) -> dict[str, Any]:
    tz = ZoneInfo(period.timezone)
    active: dict[Any, set[date]] = defaultdict(set)
    for e in events:
        who = e["user_id"] if identified else e["visitor_id"]
        if who is None:
            continue
        day = e["ts"].astimezone(tz).date()
        active[who].add(day - timedelta(days=day.weekday()))
    by_cohort: dict[date, list[set[date]]] = defaultdict(list)
    for wks in active.values():
        by_cohort[min(wks)].append(wks)
    cohorts: list[dict[str, Any]] = []
    for cohort in sorted(by_cohort):
        members = by_cohort[cohort]
        size = len(members)
        counts: list[int | None] = []
        for k in range(weeks + 1):
            wk = cohort + timedelta(weeks=k)
            counts.append(None if wk > period.end else sum(wk in m for m in members))
        cohorts.append(
            {
                "cohort": cohort.isoformat(),
                "size": size,
                "active": counts,
                "retention": [None if n is None else round(n / size, 4) for n in counts],
            }
        )
    average: list[float | None] = []
    for k in range(weeks + 1):
        seen = [c for c in cohorts if c["active"][k] is not None]
        total = sum(c["size"] for c in seen)
        average.append(round(sum(c["active"][k] for c in seen) / total, 4) if total else None)
    return {"weeks": weeks, "identified": identified, "cohorts": cohorts, "average": average}


@pytest.mark.parametrize(("tz", "raw_filters"), [*CASES, ("Pacific/Auckland", "[]")])
@pytest.mark.parametrize("identified", [False, True])
def test_retention_matches_reference(tz: str, raw_filters: str, identified: bool) -> None:
    store, ref = loaded()
    p = plan(START, END, tz, raw_filters)
    events = ref.events_in(p.spec.period, p.spec.filters)
    got = retention.retention(p, store, 4, identified)
    assert got == expected(events, p.spec.period, 4, identified)
    if raw_filters == "[]":
        assert len(got["cohorts"]) >= 3
        assert any((c["active"][1] or 0) > 0 for c in got["cohorts"])


def test_weeks_zero_and_bounds() -> None:
    store, _ = loaded()
    p = plan(START, END)
    got = retention.retention(p, store, 0)
    assert all(c["retention"] == [1.0] for c in got["cohorts"])
    for bad in (-1, retention.MAX_WEEKS + 1):
        with pytest.raises(QueryError) as e:
            retention.retention(p, store, bad)
        assert e.value.field == "weeks"
