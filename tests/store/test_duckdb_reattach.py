"""The DuckDB store attaches its file anew once it has written `REATTACH_ROWS` rows, when no
read is running: what DuckDB keeps per row group of an attached file grows with the events
stored (duckdb_file.attach_anew). Loading, duplicate checks, lookups and reads carry on as before."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from duck_memory import NOW, records

from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events import duckdb_attach, duckdb_store
from cadlink.store.events.duckdb_reads import ReadsInFlight
from cadlink.store.events.duckdb_store import DuckDBEventStore

SITE = "site-1"
START = datetime.fromtimestamp(NOW / 1000, UTC) - timedelta(days=1)
END = START + timedelta(days=2)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DuckDBEventStore:
    monkeypatch.setattr(duckdb_attach, "REATTACH_ROWS", 100)
    return DuckDBEventStore(str(tmp_path / "events.duckdb"))


def _attached(store: DuckDBEventStore) -> list[str]:
    with store._reading() as cur:
        rows = cur.execute("SELECT database_name FROM duckdb_databases() ORDER BY 1").fetchall()
    return [name for (name,) in rows]


def test_the_file_is_attached_anew_when_the_loader_settles(
    store: DuckDBEventStore, enricher: Enricher
) -> None:
    first = records(150, "a")
    assert store.load(first, {"seg": 1}, enricher.staging).stored == 150
    assert store.reattached == 0  # no checkpoint was due yet
    store.settle()
    assert store.reattached == 1
    assert "store" in _attached(store)
    # The loader goes on: the stored ids are still found, the staging's lookups still work,
    # new events are stored after the old ones, reads see them all.
    assert store.load(first, {"seg": 2}, enricher.staging).stored == 0
    assert store.load(records(50, "b"), {"seg": 3}, enricher.staging).stored == 50
    assert store.count_events(SITE) == 200
    assert store.positions() == {"seg": 3}
    page = store.list_events(SITE, START, END, 1000)
    assert len(page.rows) == 200
    assert {r["event_id"][0] for r in page.rows} == {"a", "b"}
    # Below the threshold since the last attach: nothing to do.
    store.settle()
    assert store.reattached == 1
    store.close()


def test_a_checkpoint_after_enough_rows_attaches_anew(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cadlink.store.events import duckdb_file

    monkeypatch.setattr(duckdb_file, "CHECKPOINT_BYTES", 1)  # every batch is due
    store.load(records(60, "a"), {}, enricher.staging)
    assert store.reattached == 0  # 60 rows: under the threshold
    store.load(records(60, "b"), {}, enricher.staging)
    assert store.reattached == 1
    assert store.count_events(SITE) == 120
    store.close()


def test_not_while_a_read_is_running(store: DuckDBEventStore, enricher: Enricher) -> None:
    store.load(records(150, "a"), {}, enricher.staging)
    _, batches = store.stream("events", SITE, START, END, batch_rows=10)
    first = next(batches)  # an export in progress holds its cursor
    store.settle()
    assert store.reattached == 0
    rest = sum(b.num_rows for b in batches)  # the export finishes on the same file
    assert first.num_rows + rest == 150
    store.settle()
    assert store.reattached == 1
    store.close()


def test_an_export_dropped_unread_ends_its_read(
    store: DuckDBEventStore, enricher: Enricher
) -> None:
    store.load(records(150, "a"), {}, enricher.staging)
    _, batches = store.stream("events", SITE, START, END)
    del batches
    store.settle()
    assert store.reattached == 1
    store.close()


def test_an_in_memory_store_has_no_file_to_attach(
    enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duckdb_attach, "REATTACH_ROWS", 1)
    store = DuckDBEventStore(":memory:")
    store.load(records(10, "a"), {}, enricher.staging)
    store.settle()
    assert store.reattached == 0
    assert store.count_events() == 10
    store.close()


def test_reads_wait_while_paused_and_pausing_waits_for_none() -> None:
    reads = ReadsInFlight()
    with reads.one(), reads.paused() as free:
        assert free is False  # a read is running: the caller does not wait for it
    started = threading.Event()
    done: list[float] = []

    def read() -> None:
        started.set()
        with reads.one():
            done.append(time.monotonic())

    with reads.paused() as free:
        assert free is True
        worker = threading.Thread(target=read)
        worker.start()
        started.wait()
        time.sleep(0.05)
        assert done == []  # held while paused
        resumed = time.monotonic()
    worker.join(5)
    assert done and done[0] >= resumed


def test_pausing_can_wait_for_the_running_reads_and_holds_new_ones_meanwhile() -> None:
    reads = ReadsInFlight()
    ended: list[float] = []
    second: list[float] = []
    running = threading.Event()

    def short_read() -> None:
        with reads.one():
            running.set()
            time.sleep(0.2)
            ended.append(time.monotonic())

    def late_read() -> None:
        with reads.one():
            second.append(time.monotonic())

    first = threading.Thread(target=short_read)
    first.start()
    running.wait(5)
    with reads.paused(wait=5.0) as free:
        assert free is True
        assert ended  # it waited for the running read
        late = threading.Thread(target=late_read)
        late.start()
        time.sleep(0.05)
        assert second == []  # held while paused
        resumed = time.monotonic()
    late.join(5)
    first.join(5)
    assert second and second[0] >= resumed
    with reads.one(), reads.paused(wait=0.05) as free:
        assert free is False  # a read longer than the wait: not waited for


def test_a_failed_attach_is_retried_by_the_next_load(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.load(records(150, "a"), {}, enricher.staging)
    real_attach = duckdb_store.duckdb_file.attach

    def broken(con: duckdb.DuckDBPyConnection, path: str, rows: int | None = None) -> None:
        raise duckdb.IOException("disk on fire")

    monkeypatch.setattr(duckdb_store.duckdb_file, "attach", broken)
    with pytest.raises(duckdb.IOException):
        store.settle()  # the loader logs it and asks again when next idle
    assert store.reattached == 0
    with store._reads.one():  # reads are not left waiting
        pass
    # While the disk fails, loads fail (their records wait in the buffer); once it is back,
    # the next load attaches the file and stores them.
    with pytest.raises(duckdb.IOException):
        store.load(records(10, "b"), {"seg": 1}, enricher.staging)
    monkeypatch.setattr(duckdb_store.duckdb_file, "attach", real_attach)
    assert store.load(records(10, "b"), {"seg": 1}, enricher.staging).stored == 10
    assert store.count_events(SITE) == 160
    assert store.positions() == {"seg": 1}
    store.close()


def test_a_reattach_that_fails_before_detaching_leaves_the_file_in_use(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.load(records(150, "a"), {}, enricher.staging)

    def refused(con: duckdb.DuckDBPyConnection, path: str, rows: int | None = None) -> None:
        raise duckdb.IOException("cannot detach")

    monkeypatch.setattr(duckdb_store.duckdb_file, "attach_anew", refused)
    with pytest.raises(duckdb.IOException):
        store.settle()
    assert store.load(records(10, "b"), {}, enricher.staging).stored == 10
    assert store.count_events(SITE) == 160
    store.close()
