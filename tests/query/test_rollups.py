"""The hourly rollup gives the raw-scan answers, under incremental loading with late events."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from cadlink.events import Envelope
from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query import service
from cadlink.query.spec import Granularity, Period, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events.base import open_event_store

END = datetime(2026, 3, 31, 22, tzinfo=UTC)  # spans the European DST change (29 March)


@pytest.mark.parametrize(
    "engine", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_rollup_answers_equal_raw_answers(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"duckdb:///{tmp_path / 'e.duckdb'}"
        if engine == "duckdb"
        else request.getfixturevalue("postgres_url")
    )
    store = open_event_store(url)
    try:
        loader = Loader(
            SpoolReader(tmp_path / "spool"),
            store,
            Enricher(build_ua_parser(), GeoLocator(), 24 * 3650),
        )
        envelopes: list[Envelope] = [
            e
            for chunk in generate(DemoConfig("s", days=6, events=9_000, end=END, seed=3))
            for e in chunk
        ]
        random.Random(1).shuffle(envelopes)  # late and out-of-order arrivals
        for i in range(0, len(envelopes), 700):
            loader.load_envelopes(envelopes[i : i + 700])
        loader.load_envelopes(envelopes[:500])  # replays change nothing
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
    finally:
        store.close()
