"""The dashboard runs within a small DuckDB memory limit.

Its session breakdowns once counted distinct visitors over GROUPING SETS, which DuckDB 2.0
runs as two hash aggregations per dimension side by side: their fixed allocations alone
outgrew a 64MB limit at 2.8 k sessions (and the default 256MB at 220 k). The memory a report
needs must grow with what it groups, not with the number of dimensions.
"""

from __future__ import annotations

import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query import service
from cadlink.query.reports import overview
from cadlink.query.spec import Granularity, Period, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events.base import ReportTooLarge
from cadlink.store.events.duckdb_reads import REPORT_SLOTS
from cadlink.store.events.duckdb_store import DuckDBEventStore

SITE = "memory-site"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("memory")
    store = DuckDBEventStore(str(d / "events.duckdb"))
    enricher = Enricher(build_ua_parser(), GeoLocator(), late_event_hours=24 * 3650)
    loader = Loader(SpoolReader(d / "spool"), store, enricher)
    end = datetime(2026, 6, 30, tzinfo=UTC)
    loader.load_history(generate(DemoConfig(site_id=SITE, days=30, events=50_000, end=end)))
    store.close()
    return d / "events.duckdb"


@pytest.mark.parametrize("estimated", [False, True])
def test_the_dashboard_fits_a_64mb_limit(
    store_path: Path, estimated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if estimated:
        monkeypatch.setattr(overview, "APPROX_SESSIONS", 0)  # as if the range were huge
    period = Period(date(2026, 6, 1), date(2026, 6, 29))
    spec = ReportSpec(SITE, period, (), Granularity.DAY)
    roomy = DuckDBEventStore(str(store_path))
    try:
        expected = service.dashboard(roomy, spec)
    finally:
        roomy.close()
    small = DuckDBEventStore(str(store_path), memory_limit="64MB")
    try:
        got = service.dashboard(small, spec)
    finally:
        small.close()
    assert got == expected
    assert got["estimated"] == {"breakdownVisitors": estimated}
    assert got["summary"]["sessions"] > 2_000
    assert len(got["breakdowns"]["country"]) > 1


def test_a_report_out_of_memory_says_what_to_change(store_path: Path) -> None:
    store = DuckDBEventStore(str(store_path))
    try:
        store._memory.configure("2MB")  # what reports get: below what any report needs
        period = Period(date(2026, 6, 1), date(2026, 6, 29))
        with pytest.raises(ReportTooLarge) as caught:
            service.dashboard(store, ReportSpec(SITE, period, (), Granularity.DAY))
    finally:
        store.close()
    message = str(caught.value)
    assert "CADLINK_DUCKDB_MEMORY_LIMIT" in message and "shorter period" in message
    assert "Possible solutions" not in message  # DuckDB's advice names settings we do not have
    # The store process sends it to the web process as it is (store_child._sendable).
    again = pickle.loads(pickle.dumps(caught.value))
    assert type(again) is ReportTooLarge and str(again) == message


def test_at_most_report_slots_statements_run_at_once(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reports share DuckDB's memory limit, so the store runs at most REPORT_SLOTS of their
    statements at once (four 10 M-event dashboards opened together ran out of 256MB); the
    others wait for a slot, and every one is answered."""
    store = DuckDBEventStore(str(store_path))
    running, peak, lock = 0, 0, threading.Lock()
    fetch = store._fetch

    def counted(sql: str, params: Any) -> Any:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)  # long enough for the other threads to pile up
        try:
            return fetch(sql, params)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(store, "_fetch", counted)
    period = Period(date(2026, 6, 1), date(2026, 6, 29))
    spec = ReportSpec(SITE, period, (), Granularity.DAY)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda _: service.dashboard(store, spec), range(4)))
    finally:
        store.close()
    assert peak == REPORT_SLOTS
    assert all(a == answers[0] for a in answers)
