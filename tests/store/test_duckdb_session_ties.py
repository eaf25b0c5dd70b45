"""Events that share one timestamp across batches keep the sessions on the merge path.

A client without a clock (or a load generator) sends many events with the same timestamp
and no ids; the server assigns time-ordered ids, so each batch's events sort after the stored
session's last event and are merged into it, instead of rebuilding the whole (ever longer)
session from its stored events on every batch. Ties the ids cannot order still rebuild, and
either way the sessions equal a rebuild from the events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cadlink.events import Envelope, IncomingEvent
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events.base import StoreBatch
from cadlink.store.events.duckdb_store import DuckDBEventStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def store(tmp_path: Path) -> DuckDBEventStore:
    return DuckDBEventStore(str(tmp_path / "events.duckdb"))


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(UserAgentParser(), GeoLocator(country_path=None), late_event_hours=24 * 3650)


def _batch(received_ms: int, n: int, ids: list[str] | None = None) -> list[Envelope]:
    kinds = ["page_view", "click", "scroll_depth"]
    events = [
        IncomingEvent(
            event_type=kinds[i % 3],
            event_id=ids[i] if ids else None,
            timestamp=T0_MS,  # every event of every batch at the same instant
            page_url=f"https://shop.example/p{i % 4}",
        )
        for i in range(n)
    ]
    return [Envelope(received_ms, "site-1", 7, "", UA, [e]) for e in events]


def _load(store: DuckDBEventStore, enricher: Enricher, batch: list[Envelope]) -> None:
    table = enricher.enrich(batch).rows
    store.write(StoreBatch(table))
    copy = table.set_column(0, "site_id", pa.array(["site-2"] * len(table)))
    store.append(StoreBatch(copy))


def _sessions(store: DuckDBEventStore, site: str) -> list[dict[str, Any]]:
    rows = store.list_sessions(site, T0 - timedelta(days=1), T0 + timedelta(days=1), 100)
    return [r | {"site_id": "site-1"} for r in rows]


def test_same_timestamp_batches_merge_without_a_rebuild(
    store: DuckDBEventStore, enricher: Enricher
) -> None:
    for k in range(6):
        _load(store, enricher, _batch(T0_MS + 1_000 * k, 40))
    assert store.sessions_rebuilt == 0
    kept = _sessions(store, "site-1")
    store.rebuild_sessions("site-2")
    assert kept == _sessions(store, "site-2")
    assert len(kept) == 1 and kept[0]["events"] == 240


def test_same_timestamp_ids_that_sort_first_rebuild_and_stay_exact(
    store: DuckDBEventStore, enricher: Enricher
) -> None:
    _load(store, enricher, _batch(T0_MS, 3, ids=["m1", "m2", "m3"]))
    _load(store, enricher, _batch(T0_MS + 1, 3, ids=["z1", "z2", "z3"]))  # after "m3": merged
    assert store.sessions_rebuilt == 0
    _load(store, enricher, _batch(T0_MS + 2, 3, ids=["a1", "n1", "y1"]))  # "a1" sorts first
    assert store.sessions_rebuilt == 1
    kept = _sessions(store, "site-1")
    store.rebuild_sessions("site-2")
    assert kept == _sessions(store, "site-2")
    assert kept[0]["events"] == 9 and kept[0]["client_session_id"] is None


def test_a_store_without_last_event_ids_rebuilds_once_then_merges(
    tmp_path: Path, enricher: Enricher
) -> None:
    path = str(tmp_path / "old.duckdb")
    store = DuckDBEventStore(path)
    _load(store, enricher, _batch(T0_MS, 5))
    store._con.execute("UPDATE sessions SET last_event_id = NULL")  # as an older store left it
    _load(store, enricher, _batch(T0_MS + 1_000, 5))
    assert store.sessions_rebuilt == 1
    _load(store, enricher, _batch(T0_MS + 2_000, 5))
    assert store.sessions_rebuilt == 1
    kept = _sessions(store, "site-1")
    store.rebuild_sessions("site-2")
    assert kept == _sessions(store, "site-2")
    store.close()
