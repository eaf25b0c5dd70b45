"""Bulk-loaded history gives exactly the sessions the incremental loader builds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.services import build_ua_parser
from cadlink.store.events.duckdb_store import DuckDBEventStore

END = datetime(2026, 4, 1, tzinfo=UTC)


def _loader(path: Path) -> tuple[Loader, DuckDBEventStore]:
    store = DuckDBEventStore(str(path / "e.duckdb"))
    enricher = Enricher(build_ua_parser(), GeoLocator(), late_event_hours=24 * 3650)
    return Loader(SpoolReader(path / "spool"), store, enricher), store


def test_bulk_and_incremental_loading_agree(tmp_path: Path) -> None:
    config = DemoConfig(site_id="s", days=3, events=6_000, end=END, seed=11)
    bulk, bulk_store = _loader(tmp_path / "bulk")
    inc, inc_store = _loader(tmp_path / "inc")
    stored = bulk.load_history(generate(config), batch_events=2_500)
    for chunk in generate(config):
        inc.load_envelopes(chunk)
    assert stored == inc_store.count_events("s") == bulk_store.count_events("s")
    lo, hi = END - timedelta(days=5), END + timedelta(days=1)
    a = bulk_store.list_sessions("s", lo, hi, 100_000)
    b = inc_store.list_sessions("s", lo, hi, 100_000)
    assert len(a) > 100
    assert a == b
    assert bulk_store.dropped("s", lo.date(), hi.date()) == inc_store.dropped(
        "s", lo.date(), hi.date()
    )
