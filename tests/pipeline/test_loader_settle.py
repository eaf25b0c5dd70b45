"""After a burst, an idle loader lets the DuckDB store checkpoint: the rows written since the
last checkpoint leave the write-ahead log (and DuckDB's memory) for the compressed file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.buffer import SpoolReader, SpoolWriter
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.store.events import duckdb_attach
from cadlink.store.events.duckdb_file import SETTLE_MIN_WAL_BYTES
from cadlink.store.events.duckdb_store import DuckDBEventStore

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
NOW = int(time.time() * 1000)


def _write(writer: SpoolWriter, n: int, prefix: str) -> None:
    for i in range(n):
        event = IncomingEvent(
            event_type="page_view", event_id=f"{prefix}{i}", timestamp=NOW,
            page_url=f"https://shop.example/p/{i}?q=" + "x" * 200, properties={"pad": "y" * 200},
        )  # fmt: skip
        writer.put(encode_envelope(Envelope(NOW, "site-1", i % 500, "203.0.113.0", UA, [event])))


def _loader(tmp_path: Path, store: DuckDBEventStore, **options: Any) -> Loader:
    """A loader of the spool `_write` fills, into `store`."""
    return Loader(
        SpoolReader(tmp_path / "spool"), store, Enricher(UserAgentParser(), GeoLocator()), **options
    )


def _wal(tmp_path: Path) -> int:
    wal = tmp_path / "events.duckdb.wal"
    return wal.stat().st_size if wal.exists() else 0


def test_an_idle_loader_checkpoints_what_the_burst_wrote(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    _write(writer, 20_000, "a")
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    # Batches smaller than a row group: their rows go through the log (a batch that fills
    # row groups writes them to the file at once: duckdb_file.ROW_GROUP_ROWS).
    loader = _loader(tmp_path, store, batch_bytes=1 << 20)
    assert loader.drain() == 20_000
    assert _wal(tmp_path) >= SETTLE_MIN_WAL_BYTES  # below DuckDB's own threshold: kept
    assert not loader.idle()  # too soon after the last batch
    assert _wal(tmp_path) >= SETTLE_MIN_WAL_BYTES
    loader.settle_after = 0.0
    assert loader.idle()
    assert _wal(tmp_path) < SETTLE_MIN_WAL_BYTES
    assert not loader.idle()  # settled: nothing new to settle
    assert store.count_events() == 20_000
    writer.close()
    store.close()
    reopened = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    assert reopened.count_events() == 20_000
    reopened.close()


def test_a_small_log_is_left_to_duckdb(tmp_path: Path) -> None:
    """A quiet site would otherwise re-compress its last row group after every few events."""
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    _write(writer, 20, "b")
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    loader = _loader(tmp_path, store, settle_after=0.0)
    assert loader.drain() == 20
    before = _wal(tmp_path)
    assert 0 < before < SETTLE_MIN_WAL_BYTES
    assert loader.idle()
    assert _wal(tmp_path) == before
    writer.close()
    store.close()


def test_the_loaders_stats_count_the_stores_reattaches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cadlink_store_reattached_total`: the store attaches its file anew after enough rows
    (duckdb_attach.REATTACH_ROWS), here when the idle loader lets it settle."""
    monkeypatch.setattr(duckdb_attach, "REATTACH_ROWS", 100)
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    _write(writer, 150, "c")
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    loader = _loader(tmp_path, store, settle_after=0.0)
    assert loader.drain() == 150
    assert loader.stats.store_reattached == 0
    assert loader.idle()
    assert loader.stats.store_reattached == store.reattached == 1
    _write(writer, 10, "d")
    assert loader.drain() == 10  # loading goes on from the file attached anew
    assert store.count_events() == 160
    writer.close()
    store.close()


def test_a_running_loader_merges_row_groups_once_it_keeps_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upkeep (DuckDB's row groups merged: duckdb_file.merge_row_groups) runs when the loader
    has caught up, never while a backlog waits (its batches fill)."""
    from cadlink.store.events import duckdb_file

    monkeypatch.setattr(duckdb_file, "ROW_GROUP_ROWS", 2048)
    monkeypatch.setattr(duckdb_file, "MERGED_GROUP_ROWS", 6144)
    monkeypatch.setattr(duckdb_attach, "MERGE_ROWS", 8192)
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    _write(writer, 12_000, "e")
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    loader = _loader(tmp_path, store, batch_bytes=1 << 20, interval=0.05)
    behind_at_upkeep: list[bool] = []
    upkeep = store.upkeep

    def watched() -> None:
        behind_at_upkeep.append(loader.last_batch_full)
        upkeep()

    monkeypatch.setattr(store, "upkeep", watched)
    loader.start()
    try:
        deadline = time.monotonic() + 60
        while store.reattached == 0 or store.count_events() < 12_000:  # merging attaches
            assert time.monotonic() < deadline, "the loader did not catch up and merge"
            time.sleep(0.05)
    finally:
        loader.stop()
    assert behind_at_upkeep and not any(behind_at_upkeep)
    assert loader.stats.store_merges == store.merges >= 1  # cadlink_store_row_group_merges
    counts = store._con.execute(
        "SELECT max(count) FROM pragma_storage_info('analytics_events') GROUP BY row_group_id"
    ).fetchall()
    assert max(c for (c,) in counts) == 6144  # merged
    assert store.count_events() == 12_000
    writer.close()
    store.close()
