"""A site's sessions are rebuilt in parts of its visitors, so a large history fits DuckDB's
memory limit (10 M demo events did not fit the default 256MB in one piece), and the parts
give the same sessions as one piece."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.store.events.duckdb_store import DuckDBEventStore

EVENTS = 100_000
END = datetime(2026, 10, 31, tzinfo=UTC)


def _build(path: Path, memory_limit: str, chunk_events: int) -> DuckDBEventStore:
    store = DuckDBEventStore(str(path / "events.duckdb"), memory_limit=memory_limit)
    # One thread: what a statement holds at once then depends on the data, not on how DuckDB
    # scheduled its tasks (with two, one piece of these events fitted 36MB in some runs).
    store._con.execute("SET threads = 1")
    store.rebuild_chunk_events = chunk_events
    enricher = Enricher(UserAgentParser(), GeoLocator(), late_event_hours=24 * 3650)
    loader = Loader(SpoolReader(path / "spool"), store, enricher)
    demo = generate(DemoConfig(site_id="s", days=30, events=EVENTS, end=END, seed=3))
    loader.load_history(demo, batch_events=10_000)  # appends, then `rebuild_sessions`
    return store


def _sessions(store: DuckDBEventStore) -> list[tuple[object, ...]]:
    return store._con.execute("SELECT * FROM sessions ORDER BY ALL").fetchall()


def test_parts_fit_a_small_memory_limit_and_equal_one_piece(tmp_path: Path) -> None:
    whole = _build(tmp_path / "whole", "", chunk_events=10 * EVENTS)  # one piece, no limit
    # 22MB: one piece runs out of memory at this size (it needed 24-28MB); parts of 10 k
    # events fit (they needed 16-20MB).
    with pytest.raises(duckdb.OutOfMemoryException):
        _build(tmp_path / "one", "22MB", chunk_events=10 * EVENTS)
    parts = _build(tmp_path / "parts", "22MB", chunk_events=10_000)
    expected = _sessions(whole)
    assert len(expected) > 1_000
    assert _sessions(parts) == expected
    whole.close()
    parts.close()
