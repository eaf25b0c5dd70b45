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


def test_weeks_come_from_the_same_zone_data_as_the_range(tmp_path: Any) -> None:
    # The range's bounds come from Python's zoneinfo; the weeks came from DuckDB's own zone
    # data, which for America/Vancouver after 2026-11-01 (and 12 other zones) disagreed: an
    # event of the range's last evening became a cohort of the week after the range.
    from datetime import UTC, datetime

    import pyarrow as pa

    from cadlink.query.dialects import DuckDBDialect
    from cadlink.query.plan import Plan
    from cadlink.query.spec import ReportSpec
    from cadlink.store.events.base import EVENT_ARROW_SCHEMA, StoreBatch
    from cadlink.store.events.duckdb_store import DuckDBEventStore

    base: dict[str, Any] = dict.fromkeys(EVENT_ARROW_SCHEMA.names)
    base |= {"site_id": "s", "event_type": "page_view", "consent": False}
    late = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)  # before the range's end in zoneinfo
    rows = [
        base | {"event_id": "a", "visitor_id": 1, "ts": datetime(2026, 11, 10, 20, tzinfo=UTC)},
        base | {"event_id": "b", "visitor_id": 1, "ts": late},
        base | {"event_id": "c", "visitor_id": 2, "ts": late},
    ]
    rows = [r | {"received_at": r["ts"]} for r in rows]
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    try:
        store.write(StoreBatch(pa.Table.from_pylist(rows, schema=EVENT_ARROW_SCHEMA)))
        period = Period(date(2026, 11, 2), date(2026, 11, 29), "America/Vancouver")
        p = Plan(ReportSpec("s", period), DuckDBDialect())
        lo, hi = p.spec.period.bounds()
        assert lo <= late < hi
        local = late.astimezone(ZoneInfo("America/Vancouver")).date()
        week = (local - timedelta(days=local.weekday())).isoformat()
        got = retention.retention(p, store, 3)
        assert {c["cohort"] for c in got["cohorts"]} == {"2026-11-09", week}
        assert all(c["cohort"] <= "2026-11-29" for c in got["cohorts"])
    finally:
        store.close()
