"""The hourly rollups give the raw-scan answers, under incremental loading with late events."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import msgspec
import psycopg
import pytest

from cadlink.events import Envelope, IncomingEvent
from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query import service
from cadlink.query.reports import products
from cadlink.query.spec import Granularity, Period, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events import rollups
from cadlink.store.events.base import EventStore, open_event_store

END = datetime(2026, 3, 31, 22, tzinfo=UTC)  # spans the European DST change (29 March)
ENGINES = ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _url(engine: str, path: Path, request: pytest.FixtureRequest, fixture: str) -> str:
    if engine == "duckdb":
        return f"duckdb:///{path / 'e.duckdb'}"
    url: str = request.getfixturevalue(fixture)
    return url


def _loader(store: EventStore, path: Path) -> Loader:
    return Loader(
        SpoolReader(path / "spool"), store, Enricher(build_ua_parser(), GeoLocator(), 24 * 3650)
    )


# Rollup rows are added per batch and merged per key later (rollups.py): the answers must be
# the same with every batch's rows kept apart and with them merged after every batch.
COMPACTION = {"never": float("inf"), "every batch": 0.0}


@pytest.fixture(
    scope="module",
    params=[pytest.param(("duckdb", mode), id=f"duckdb-{mode}") for mode in COMPACTION]
    + [
        pytest.param(("postgresql", mode), id=f"postgresql-{mode}", marks=pytest.mark.postgres)
        for mode in COMPACTION
    ],
)
def shuffled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EventStore]:
    """A store loaded incrementally with shuffled (late, out-of-order) events and replays."""
    engine, mode = request.param
    path = tmp_path_factory.mktemp(engine)
    store = open_event_store(_url(engine, path, request, "postgres_module_url"))
    try:
        loader = _loader(store, path)
        envelopes: list[Envelope] = [
            e
            for chunk in generate(DemoConfig("s", days=6, events=9_000, end=END, seed=3))
            for e in chunk
        ]
        random.Random(1).shuffle(envelopes)  # late and out-of-order arrivals
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(rollups, "COMPACT_EVERY_SECONDS", COMPACTION[mode])
            for i in range(0, len(envelopes), 700):
                loader.load_envelopes(envelopes[i : i + 700])
            loader.load_envelopes(envelopes[:500])  # replays change nothing
            loader.load_envelopes(envelopes[2100:2800])  # nor does a whole batch again
        yield store
    finally:
        store.close()


def test_rollup_answers_equal_raw_answers(shuffled: EventStore) -> None:
    store = shuffled
    for tz in ("UTC", "Europe/Berlin", "America/New_York"):
        for g in (Granularity.DAY, Granularity.HOUR, Granularity.WEEK):
            period = Period(date(2026, 3, 27), date(2026, 3, 31), tz)
            fast = ReportSpec("s", period, (), g)
            raw = ReportSpec("s", period, (), g, options={"raw": "true"})
            assert service.plan_for(store, fast).uses_hour_rollup()
            a = service.dashboard(store, fast)
            b = service.dashboard(store, raw)
            assert a["summary"] == b["summary"], (tz, g)
            assert a["timeseries"] == b["timeseries"], (tz, g)
            assert a["breakdowns"]["page"] == b["breakdowns"]["page"], (tz, g)
            assert a["summary"]["pageViews"] > 100
    kolkata = ReportSpec("s", Period(date(2026, 3, 27), date(2026, 3, 31), "Asia/Kolkata"))
    assert not service.plan_for(store, kolkata).uses_hour_rollup()  # +5:30: raw path


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York"])
@pytest.mark.parametrize(
    "days", [(date(2026, 3, 25), date(2026, 3, 31)), (date(2026, 3, 29), date(2026, 3, 29))]
)
def test_product_rollup_answers_equal_raw_answers(
    shuffled: EventStore, tz: str, days: tuple[date, date]
) -> None:
    store = shuffled
    period = Period(*days, tz)
    for limit in (10_000, 3):
        fast = ReportSpec("s", period, (), limit=limit)
        raw = ReportSpec("s", period, (), limit=limit, options={"raw": "true"})
        assert service.plan_for(store, fast).uses_hour_rollup()
        assert not service.plan_for(store, raw).uses_hour_rollup()
        top = products.top(store, fast)
        assert top == products.top(store, raw), (tz, days, limit)
        aff = products.affiliate(store, fast)
        assert aff == products.affiliate(store, raw), (tz, days, limit)
        assert 0 < len(top) <= limit and top[0]["views"] > 0
        assert aff["clicks"] > 0 and aff["byPlatform"] and aff["byPosition"]
    if period.days > 1:  # every kind of count is exercised, not only views
        every = products.top(store, ReportSpec("s", period, (), limit=10_000))
        for key in ("uniqueViews", "clicks", "affiliateClicks", "wishlist", "compare", "revenue"):
            assert sum(r[key] for r in every) > 0, key
        assert len(every) > 3 and all(r["name"] for r in every if r["views"])


@pytest.mark.parametrize("engine", ENGINES)
def test_product_rollups_are_backfilled_on_open(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A store from before the product rollups existed derives them once, when opened."""
    url = _url(engine, tmp_path, request, "postgres_url")
    store = open_event_store(url)
    _loader(store, tmp_path).load_history(
        generate(DemoConfig("s", days=3, events=3_000, end=END, seed=8))
    )
    period = Period(date(2026, 3, 28), date(2026, 3, 31), "Europe/Berlin")
    fast = ReportSpec("s", period, (), limit=100)
    raw = ReportSpec("s", period, (), limit=100, options={"raw": "true"})
    expected = products.top(store, raw), products.affiliate(store, raw)
    assert expected[0] and expected[1]["clicks"] > 0
    store.close()
    drop = (
        "DROP TABLE rollup_product_hours; DROP TABLE rollup_affiliate_hours; "
        "DROP TABLE rollup_product_revenue_hours"
    )
    if engine == "duckdb":
        import duckdb

        with duckdb.connect(str(tmp_path / "e.duckdb")) as con:
            con.execute(drop)
    else:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(drop)
    store = open_event_store(url)
    try:
        assert (products.top(store, fast), products.affiliate(store, fast)) == expected
    finally:
        store.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_hours_the_loader_has_passed_are_merged_to_one_row_per_key(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_event_store(_url(engine, tmp_path, request, "postgres_url"))
    try:
        loader = _loader(store, tmp_path)
        envelopes = [
            e
            for chunk in generate(DemoConfig("s", days=2, events=3_000, end=END, seed=4))
            for e in chunk
        ]
        envelopes.sort(key=lambda e: e.received_ms)
        monkeypatch.setattr(rollups, "COMPACT_EVERY_SECONDS", float("inf"))
        for i in range(0, len(envelopes), 40):  # keys span batches: several rows each
            loader.load_envelopes(envelopes[i : i + 40])
        spec = ReportSpec("s", Period(date(2026, 3, 29), date(2026, 3, 31), "UTC"))
        before = service.dashboard(store, spec)

        def repeated(table: str, keys: str) -> int:
            sql = f"SELECT count(*) AS n FROM (SELECT {keys} FROM {table} GROUP BY {keys} "
            return int(store.fetch(sql + "HAVING count(*) > 1) t", [])[0]["n"])

        tables = {t.name: t.keys.replace("r.", "") for t in rollups.TABLES}
        assert repeated("rollup_visitor_hours", tables["rollup_visitor_hours"]) > 20
        last = envelopes[-1]
        later = Envelope(
            last.received_ms + 3 * 3_600_000, "s", last.anon_visitor, "", last.user_agent,
            [msgspec.structs.replace(last.events[0], event_id="later", timestamp=None)],
        )  # fmt: skip
        monkeypatch.setattr(rollups, "COMPACT_EVERY_SECONDS", 0.0)
        loader.load_envelopes([later])  # the loader moves past every hour loaded so far
        for table, keys in tables.items():
            assert repeated(table, keys) == 0, table
        dirty = store.fetch("SELECT DISTINCT hour_no FROM rollup_dirty_hours", [])
        assert [r["hour_no"] for r in dirty] == [(last.received_ms + 3 * 3_600_000) // 3_600_000]
        assert service.dashboard(store, spec) == before
    finally:
        store.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_product_revenue_is_split_by_currency_never_added_across(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One product bought in euros, dollars and without a currency (and once with a revenue
    that is not a number): each currency its own amount, the missing one last, on the
    rollup path and on the raw one alike."""
    store = open_event_store(_url(engine, tmp_path, request, "postgres_url"))
    ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
    t0 = int(datetime(2026, 3, 30, 10, tzinfo=UTC).timestamp() * 1000)
    bought = [
        ("p1", {"revenue": 20.5, "currency": "USD"}),
        ("p1", {"revenue": 10, "currency": "EUR"}),
        ("p1", {"revenue": 2.25}),
        ("p1", {"revenue": "lots", "currency": "GBP"}),
        ("p1", {"revenue": 5.25, "currency": "EUR"}),
        ("p2", {"revenue": 7, "currency": "EUR"}),
    ]
    envelopes = []
    for n, (pid, props) in enumerate(bought):
        t = t0 + n * 60_000
        events = [
            IncomingEvent("product_view", timestamp=t, properties={"productId": pid}),
            IncomingEvent("purchase", timestamp=t + 1, properties={"productId": pid} | props),
        ]
        envelopes.append(Envelope(t + 1, "s", 100 + n, "", ua, events))
    try:
        _loader(store, tmp_path).load_envelopes(envelopes)
        period = Period(date(2026, 3, 30), date(2026, 3, 30))
        for options in ({}, {"raw": "true"}):
            top = {
                r["productId"]: r
                for r in products.top(store, ReportSpec("s", period, (), options=options))
            }
            assert top["p1"]["revenueByCurrency"] == [
                {"currency": "EUR", "revenue": 15.25},
                {"currency": "USD", "revenue": 20.5},
                {"currency": None, "revenue": 2.25},
            ], options
            assert top["p1"]["revenue"] == 38.0  # what `revenue` adds up, as documented
            assert top["p2"]["revenueByCurrency"] == [{"currency": "EUR", "revenue": 7.0}]
    finally:
        store.close()
