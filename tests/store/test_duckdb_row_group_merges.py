"""When the DuckDB store attaches its file anew it merges the loader's small row groups into
large ones (duckdb_file.merge_row_groups): what DuckDB keeps in memory for an attached file is
per row group, so fewer groups hold less. The rows, their order and the sessions stay as they
were; reads run meanwhile; the loader goes on writing its own small groups."""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import duckdb
import pytest
from duck_memory import records

from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events import duckdb_attach, duckdb_file
from cadlink.store.events.duckdb_store import DuckDBEventStore

SITE = "site-1"
SMALL, LARGE = 2048, 6144  # DuckDB's smallest row group (a vector) and three of them
BATCH = SMALL  # a loader batch fills one small group, as a 16 MiB batch fills 16,384 rows


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DuckDBEventStore:
    monkeypatch.setattr(duckdb_file, "ROW_GROUP_ROWS", SMALL)
    monkeypatch.setattr(duckdb_file, "MERGED_GROUP_ROWS", LARGE)
    monkeypatch.setattr(duckdb_file, "CHECKPOINT_BYTES", 1)  # every batch checkpoints
    monkeypatch.setattr(duckdb_attach, "REATTACH_ROWS", 10**9)  # the test says when
    monkeypatch.setattr(duckdb_attach, "MERGE_ROWS", 10**9)
    monkeypatch.setattr(duckdb_attach, "LOADER_ATTACH_WAIT_S", 0.2)
    return DuckDBEventStore(str(tmp_path / "events.duckdb"))


def _groups(store: DuckDBEventStore, table: str) -> list[int]:
    rows = store._con.execute(
        "SELECT row_group_id, max(count) FROM pragma_storage_info(?) "
        "GROUP BY row_group_id ORDER BY row_group_id",
        [table],
    ).fetchall()
    return [int(count) for _, count in rows]


def _rows(store: DuckDBEventStore, table: str) -> list[tuple[Any, ...]]:
    """Every row in storage order (rowid), every column."""
    return store._con.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


def _load(store: DuckDBEventStore, enricher: Enricher, batches: int, prefix: str) -> None:
    for b in range(batches):
        batch = records(BATCH, f"{prefix}{b}-", pad=True)
        assert store.load(batch, {f"seg-{prefix}": b + 1}, enricher.staging).stored == BATCH


def _merge_now(store: DuckDBEventStore) -> None:
    store._written_since_merge = duckdb_attach.MERGE_ROWS
    store.upkeep()


def test_the_loaders_row_groups_are_merged_and_every_row_kept(
    store: DuckDBEventStore, enricher: Enricher
) -> None:
    _load(store, enricher, 7, "a")
    before = _groups(store, "analytics_events")
    assert max(before) <= SMALL and len(before) >= 7
    events, sessions = _rows(store, "analytics_events"), _rows(store, "sessions")

    _merge_now(store)

    after = _groups(store, "analytics_events")
    assert store.reattached == store.merges == 1
    assert len(after) < len(before)
    assert max(after) == LARGE  # three of the loader's groups in one
    assert _rows(store, "analytics_events") == events  # same rows, same order
    assert _rows(store, "sessions") == sessions
    # Attached again as the loader wants it, with every thread for the reports.
    assert _row_group_rows(store) == SMALL
    threads = store._con.execute("SELECT current_setting('threads')").fetchone()
    assert threads is not None and int(threads[0]) == store._threads
    store.close()


def test_the_loader_goes_on_after_a_merge(store: DuckDBEventStore, enricher: Enricher) -> None:
    _load(store, enricher, 4, "a")
    _merge_now(store)
    # Its stored ids are still found (duplicates dropped), new events follow in small groups.
    first = records(BATCH, "a0-", pad=True)
    assert store.load(first, {"seg": 9}, enricher.staging).stored == 0
    _load(store, enricher, 2, "b")
    assert store.count_events(SITE) == 6 * BATCH
    assert _groups(store, "analytics_events")[-1] <= SMALL
    store.close()


def test_a_store_reopened_after_a_merge_reads_the_same(
    tmp_path: Path, store: DuckDBEventStore, enricher: Enricher
) -> None:
    _load(store, enricher, 6, "a")
    _merge_now(store)
    events = _rows(store, "analytics_events")
    store.close()
    again = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    assert _rows(again, "analytics_events") == events
    assert max(_groups(again, "analytics_events")) == LARGE
    again.close()


def _row_group_rows(store: DuckDBEventStore) -> int:
    row = store._con.execute(
        "SELECT options FROM duckdb_databases() WHERE database_name = ?", [duckdb_file.CATALOG]
    ).fetchone()
    assert row is not None
    return int(row[0]["row_group_size"])


def test_reads_run_while_row_groups_are_merged(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(store, enricher, 4, "a")
    real = duckdb_file.merge_row_groups
    seen: list[int] = []

    def merge_and_read(con: duckdb.DuckDBPyConnection, memory: Any) -> bool:
        assert _row_group_rows(store) == LARGE
        assert threading.current_thread().name == "upkeep"  # at a lower priority
        seen.append(store.count_events(SITE))  # not held: it would wait for ever
        return real(con, memory)

    monkeypatch.setattr(duckdb_file, "merge_row_groups", merge_and_read)
    _merge_now(store)
    assert seen == [4 * BATCH]
    assert _row_group_rows(store) == SMALL
    store.close()


def _merged_while_a_read_starts(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> AbstractContextManager[None]:
    """Four batches stored and merged, with a read (an export) starting as the merge ends:
    the file stays attached with large row groups. Returns the read, still running."""
    _load(store, enricher, 4, "a")
    real = duckdb_file.merge_row_groups
    read = store._reads.one()

    def merge_then_read(con: duckdb.DuckDBPyConnection, memory: Any) -> bool:
        merged = real(con, memory)
        read.__enter__()
        return merged

    monkeypatch.setattr(duckdb_file, "merge_row_groups", merge_then_read)
    _merge_now(store)
    assert store.reattached == store.merges == 1
    assert _row_group_rows(store) == LARGE  # not while the read runs
    return read


def test_a_read_running_after_the_merge_delays_only_the_attach_for_the_loader(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = _merged_while_a_read_starts(store, enricher, monkeypatch)
    read.__exit__(None, None, None)
    # The next batch is stored, then the file is attached for the loader again.
    _load(store, enricher, 1, "b")
    assert _row_group_rows(store) == SMALL
    assert store.count_events(SITE) == 5 * BATCH
    store.close()


def test_the_attach_for_the_loader_waits_for_a_short_read(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch on large row groups keeps its rows in memory: the store waits a moment for a
    read (a dashboard's, `/metrics`') rather than leave the file so."""
    monkeypatch.setattr(duckdb_attach, "LOADER_ATTACH_WAIT_S", 5.0)
    _load(store, enricher, 4, "a")
    real = duckdb_file.merge_row_groups

    def merge_during_a_read(con: duckdb.DuckDBPyConnection, memory: Any) -> bool:
        started = threading.Event()

        def read() -> None:
            with store._reads.one():
                started.set()
                time.sleep(0.3)

        threading.Thread(target=read).start()
        started.wait(5)
        return real(con, memory)

    monkeypatch.setattr(duckdb_file, "merge_row_groups", merge_during_a_read)
    _merge_now(store)
    assert store.merges == 1
    assert _row_group_rows(store) == SMALL
    store.close()


def test_an_idle_loaders_upkeep_attaches_the_file_for_the_loader_once_reads_let_it(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = _merged_while_a_read_starts(store, enricher, monkeypatch)
    store.upkeep()  # the read still runs
    assert _row_group_rows(store) == LARGE
    read.__exit__(None, None, None)
    store.upkeep()  # nothing to merge, but the file goes back to the loader's row groups
    assert _row_group_rows(store) == SMALL
    assert store.merges == 1
    store.close()


def test_a_failed_merge_leaves_the_rows_and_the_file_attached(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(store, enricher, 4, "a")
    events = _rows(store, "analytics_events")

    def no_room(con: duckdb.DuckDBPyConnection, memory: object) -> None:
        raise duckdb.OutOfMemoryException("no room to merge")

    monkeypatch.setattr(duckdb_file, "_merge", no_room)
    _merge_now(store)  # logged, not raised: the loader is not disturbed
    assert store.reattached == 1
    assert store.merges == 0
    assert _rows(store, "analytics_events") == events
    assert _row_group_rows(store) == SMALL
    threads = store._con.execute("SELECT current_setting('threads')").fetchone()
    assert threads is not None and int(threads[0]) == store._threads
    store.close()


def test_sessions_rebuilt_whole_count_towards_the_next_merge(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk load (`Loader.load_history`) rebuilds the sessions after its last batch: they
    are rows written in the loader's small groups like the events."""
    _load(store, enricher, 2, "a")
    sessions = store.rebuild_sessions(SITE)
    assert sessions > 0
    monkeypatch.setattr(duckdb_attach, "MERGE_ROWS", sessions)
    store._written_since_merge -= 2 * BATCH  # only the sessions count now
    store.upkeep()
    assert store.merges == 1
    store.close()


def test_an_empty_store_merges_to_nothing(store: DuckDBEventStore) -> None:
    _merge_now(store)
    assert store.reattached == 1
    assert store.count_events(SITE) == 0
    store.close()
