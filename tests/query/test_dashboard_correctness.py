"""The dashboard report equals an independent plain-Python computation over the same events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from reference import Reference

from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query import service
from cadlink.query.dimensions import BREAKDOWNS, Scope, dimension
from cadlink.query.params import filters as parse_filters
from cadlink.query.reports import overview
from cadlink.query.spec import Granularity, Period, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events.duckdb_store import DuckDBEventStore

END = datetime(2026, 6, 10, 18, tzinfo=UTC)
SITE = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DuckDBEventStore, Reference]]:
    path: Path = tmp_path_factory.mktemp("dash")
    store = DuckDBEventStore(str(path / "events.duckdb"))
    enricher = Enricher(build_ua_parser(), GeoLocator(), late_event_hours=24 * 3650)
    loader = Loader(SpoolReader(path / "spool"), store, enricher)
    for chunk in generate(DemoConfig(site_id=SITE, days=6, events=12_000, end=END, seed=7)):
        loader.load_envelopes(chunk)
    rows = store.fetch("SELECT * FROM analytics_events WHERE site_id = ?", [SITE])
    for r in rows:
        r["properties_obj"] = json.loads(r["properties"]) if r["properties"] else None
    yield store, Reference(rows)
    store.close()


CASES: list[tuple[str, str]] = [
    ("UTC", "[]"),
    ("America/New_York", "[]"),
    ("Asia/Kolkata", '[["device","is","mobile"]]'),
    ("UTC", '[["channel","is",["search","social"]]]'),
    ("UTC", '[["page","contains","products"]]'),
    ("Europe/Berlin", '[["source","is_not","Google"],["browser","is","Chrome"]]'),
    ("UTC", '[["prop:variant","is","B"]]'),
    ("UTC", '[["entry_page","is","/"],["country","is_not","US"]]'),
    ("UTC", '[["utm_campaign","contains","sale"],["page","is_not","/checkout"]]'),
    ("UTC", '[["page","is_not","/"]]'),
]


def test_is_not_on_a_page_keeps_only_sessions_that_never_viewed_it(
    loaded: tuple[DuckDBEventStore, Reference],
) -> None:
    # It kept every session with any other page: visits that landed on the excluded page.
    store, _ = loaded
    period = Period(date(2026, 6, 6), date(2026, 6, 9), "UTC")
    flt = parse_filters('[["page","is_not","/"]]')
    data = service.dashboard(store, ReportSpec(SITE, period, flt, Granularity.DAY, limit=1000))
    entry_pages = {row["value"] for row in data["breakdowns"]["entry_page"]}
    assert entry_pages and "/" not in entry_pages


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_a_period_in_progress_is_compared_with_the_previous_one_up_to_the_same_hour(
    loaded: tuple[DuckDBEventStore, Reference], tz: str
) -> None:
    # "Today so far" against all of yesterday read as a fall every morning.
    store, ref = loaded
    period = Period(date(2026, 6, 8), date(2026, 6, 9), tz)
    lo, _ = period.bounds()
    now = lo + timedelta(days=1, hours=9, minutes=20)  # the second day, 09:20 local
    data = service.dashboard(store, ReportSpec(SITE, period, (), limit=5), now=now)
    previous = dict(data["summary"]["previous"])
    until = previous.pop("until")
    cut = Period(date(2026, 6, 6), date(2026, 6, 7), tz).bounds()[0] + (now - lo)
    # Rounded up to a whole UTC hour: the hourly rollups' step (Kolkata: 09:20 -> 09:30).
    assert cut.timestamp() * 1000 <= until < cut.timestamp() * 1000 + 3_600_000
    assert until % 3_600_000 == 0
    assert (previous.pop("startDate"), previous.pop("endDate")) == ("2026-06-06", "2026-06-07")
    expected = ref.summary(period.previous(now), ())
    assert previous == expected
    whole = ref.summary(period.previous(), ())
    assert 0 < expected["pageViews"] < whole["pageViews"]
    # A period that has ended is compared with the whole previous one.
    done = service.dashboard(store, ReportSpec(SITE, period, (), limit=5), now=now + timedelta(2))
    assert "until" not in done["summary"]["previous"]


@pytest.mark.parametrize(("tz", "raw_filters"), CASES)
def test_dashboard_matches_reference(
    loaded: tuple[DuckDBEventStore, Reference], tz: str, raw_filters: str
) -> None:
    store, ref = loaded
    flt = parse_filters(raw_filters)
    period = Period(date(2026, 6, 6), date(2026, 6, 9), tz)
    spec = ReportSpec(SITE, period, flt, Granularity.DAY, limit=1000)
    data = service.dashboard(store, spec)
    summary = dict(data["summary"])
    previous = summary.pop("previous")
    assert summary == ref.summary(period, flt)
    span = {k: previous.pop(k) for k in ("startDate", "endDate")}
    assert span == {"startDate": "2026-06-02", "endDate": "2026-06-05"}
    assert previous == ref.summary(period.previous(), flt)
    assert summary["pageViews"] > 0 or flt
    series = data["timeseries"]
    assert [p["date"] for p in series] == ["2026-06-06", "2026-06-07", "2026-06-08", "2026-06-09"]
    assert sum(p["pageViews"] for p in series) == summary["pageViews"]
    assert sum(p["sessions"] for p in series) == summary["sessions"]
    for day in series:
        d = date.fromisoformat(day["date"])
        assert day["visitors"] == ref.summary(Period(d, d, tz), flt)["visitors"]
    for name, rows in data["breakdowns"].items():
        expected = ref.breakdown(period, flt, name)
        got = {r["value"]: r["visitors"] for r in rows}
        assert got == expected, name


def test_breakdown_is_ordered_and_limited(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, ref = loaded
    period = Period(date(2026, 6, 4), date(2026, 6, 10))
    data = service.dashboard(store, ReportSpec(SITE, period, (), Granularity.DAY, limit=5))
    pages = data["breakdowns"]["page"]
    assert len(pages) == 5
    visitors = [r["visitors"] for r in pages]
    assert visitors == sorted(visitors, reverse=True)
    expected = sorted(ref.breakdown(period, (), "page").values(), reverse=True)[:5]
    assert visitors == expected


def test_hourly_series_in_a_time_zone(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, ref = loaded
    period = Period(date(2026, 6, 8), date(2026, 6, 8), "Asia/Tokyo")
    series: list[dict[str, Any]] = service.dashboard(
        store, ReportSpec(SITE, period, (), Granularity.HOUR)
    )["timeseries"]
    assert len(series) == 24
    assert series[0]["date"] == "2026-06-08T00:00:00"
    assert sum(p["pageViews"] for p in series) == ref.summary(period, ())["pageViews"]


def test_large_ranges_estimate_breakdown_visitors_and_say_so(
    loaded: tuple[DuckDBEventStore, Reference], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, ref = loaded
    period = Period(date(2026, 6, 4), date(2026, 6, 10))
    spec = ReportSpec(SITE, period, (), Granularity.DAY, limit=1000)
    assert service.dashboard(store, spec)["estimated"] == {"breakdownVisitors": False}
    monkeypatch.setattr(overview, "APPROX_SESSIONS", 0)  # as if the range were huge
    data = service.dashboard(store, spec)
    assert data["estimated"] == {"breakdownVisitors": True}
    assert data["summary"]["visitors"] == ref.summary(period, ())["visitors"]  # still exact
    for name in ("source", "country", "page"):
        expected = ref.breakdown(period, (), name)
        for row in data["breakdowns"][name]:
            exact = expected[row["value"]]
            assert abs(row["visitors"] - exact) <= max(2, 0.05 * exact), (name, row, exact)
    exact_spec = ReportSpec(
        SITE, period, (), Granularity.DAY, limit=1000, options={"exact": "true"}
    )
    assert service.dashboard(store, exact_spec)["estimated"] == {"breakdownVisitors": False}


@pytest.mark.parametrize(
    "raw_filters", ["[]", '[["page","is","/"]]', '[["country","is_not","US"]]']
)
@pytest.mark.parametrize("approx", [False, True])
def test_grouped_session_breakdowns_equal_one_statement_each(
    loaded: tuple[DuckDBEventStore, Reference], raw_filters: str, approx: bool
) -> None:
    """The dashboard reads every session breakdown in one statement: each must
    equal its own statement, rows, order, ties and the limit included."""
    store, _ = loaded
    period = Period(date(2026, 6, 4), date(2026, 6, 10), "Europe/Berlin")
    spec = ReportSpec(SITE, period, parse_filters(raw_filters), Granularity.DAY, limit=3)
    plan = service.plan_for(store, spec)
    names = [n for n in BREAKDOWNS if dimension(n).scope is not Scope.EVENT]
    grouped = overview.session_breakdowns(plan, store, names, 3, approx)
    assert list(grouped) == names
    assert sum(len(rows) for rows in grouped.values()) > len(names)
    for name in names:
        assert grouped[name] == overview.breakdown(plan, store, name, 3, approx), name
