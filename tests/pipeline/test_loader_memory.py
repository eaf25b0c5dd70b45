"""A batch too large for DuckDB's memory limit is not retried as it is forever: the loader
halves its batch until it fits, and grows it back afterwards. And the loader does not hold a
batch's bytes while DuckDB works on them."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import duckdb
import pytest

from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.buffer import SpoolReader, SpoolWriter
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.store.events.duckdb_store import DuckDBEventStore

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
NOW = int(time.time() * 1000)


def test_a_batch_that_runs_out_of_memory_is_loaded_in_smaller_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    n = 60_000
    for i in range(n):
        event = IncomingEvent(
            event_type="page_view", event_id=f"m{i}", timestamp=NOW,
            page_url=f"https://shop.example/p/{i}?q=" + "x" * 400, visitor_id=f"v{i}",
            consent=True, properties={"i": i, "pad": "y" * 200},
        )  # fmt: skip
        writer.put(encode_envelope(Envelope(NOW, "site-1", i, "203.0.113.0", UA, [event])))
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"), memory_limit="64MB")
    loader = Loader(
        SpoolReader(tmp_path / "spool"),
        store,
        Enricher(UserAgentParser(), GeoLocator()),
        batch_bytes=64 << 20,
    )
    assert loader.drain() == n
    assert store.count_events() == n
    assert "did not fit in memory" in caplog.text
    shrunk = loader.budget
    assert shrunk < 64 << 20
    # Each batch that fits grows the budget back by an eighth, up to the configured size.
    event = IncomingEvent(event_type="page_view", event_id="later", timestamp=NOW)
    writer.put(encode_envelope(Envelope(NOW, "site-1", 1, "", UA, [event])))
    assert loader.run_once() == 1
    assert loader.budget == shrunk + shrunk // 8
    writer.close()
    store.close()


class _Watching(DuckDBEventStore):
    """Our DuckDB store, noting the Python heap when it inserts a staged batch."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.heap_at_insert: list[int] = []

    def _insert_staged(self, con: duckdb.DuckDBPyConnection) -> int:
        self.heap_at_insert.append(tracemalloc.get_traced_memory()[0])
        return super()._insert_staged(con)


def _fill(writer: SpoolWriter, prefix: str, n: int) -> None:
    for i in range(n):
        event = IncomingEvent(
            event_type="page_view", event_id=f"{prefix}{i}", timestamp=NOW,
            page_url=f"https://shop.example/p/{i % 5}", properties={"pad": "y" * 500},
        )  # fmt: skip
        writer.put(encode_envelope(Envelope(NOW, "site-1", i, "203.0.113.0", UA, [event])))


def test_the_loader_does_not_hold_a_batch_while_duckdb_stores_it(tmp_path: Path) -> None:
    """Once staged, a batch's bytes are in DuckDB's scratch files: the loader's copy (16 MiB
    by default) is let go before DuckDB inserts, the store process's peak."""
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    store = _Watching(str(tmp_path / "events.duckdb"))
    reader = SpoolReader(tmp_path / "spool")
    loader = Loader(reader, store, Enricher(UserAgentParser(), GeoLocator()), batch_bytes=8 << 20)
    n = 6_000
    _fill(writer, "a", n)
    size = reader.unloaded_bytes({})
    assert size > 4 << 20
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert loader.run_once() == n
        # Control: a batch whose bytes the caller still holds, measured the same way.
        _fill(writer, "b", n)
        batch = reader.read(store.positions(), 8 << 20)
        held = bytes(batch.data)
        store.load(held, batch.positions, loader.enricher.staging)
        assert store.count_events() == 2 * n
    finally:
        tracemalloc.stop()
    released, control = (at - before for at in store.heap_at_insert)
    assert control > size
    assert released < size // 4
    writer.close()
    store.close()
