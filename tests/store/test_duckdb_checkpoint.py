"""The loader checkpoints the DuckDB store itself: after a batch, once the log is large, with
its temporary tables gone, within the limit in force: `INGEST_MEMORY` while no report runs (a
checkpoint takes whatever the limit leaves it; duckdb_memory.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from duck_memory import LIMIT, as_set, limit_of, records

from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events import duckdb_file
from cadlink.store.events.duckdb_memory import INGEST_MEMORY
from cadlink.store.events.duckdb_store import DuckDBEventStore


class _Recording:
    """The store's own connection, noting the memory limit and the temporary tables each
    CHECKPOINT ran with (and failing it, when asked)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, fail: bool = False) -> None:
        self._con = con
        self.fail = fail
        self.checkpoints: list[tuple[str, list[str]]] = []

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        if sql == "CHECKPOINT":
            side = self._con.cursor()
            temps = side.execute(
                "SELECT table_name FROM duckdb_tables() WHERE temporary "
                "AND table_name NOT LIKE 'lookup_%' ORDER BY 1"
            ).fetchall()
            self.checkpoints.append((limit_of(side), [t for (t,) in temps]))
            if self.fail:
                raise duckdb.IOException("disk on fire")
        return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


@pytest.fixture
def small_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb_file, "CHECKPOINT_BYTES", 1)  # every batch is due


def _store(tmp_path: Path, fail: bool = False) -> tuple[DuckDBEventStore, _Recording]:
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"), memory_limit=LIMIT)
    recording = _Recording(store._con, fail)
    store._con = recording  # type: ignore[assignment]
    return store, recording


def _wal(tmp_path: Path) -> int:
    wal = tmp_path / "events.duckdb.wal"
    return wal.stat().st_size if wal.exists() else 0


@pytest.mark.usefixtures("small_log")
def test_a_batch_checkpoints_within_ingest_memory_after_its_tables_are_gone(
    tmp_path: Path, enricher: Enricher
) -> None:
    store, recording = _store(tmp_path)
    loaded = store.load(records(2_000, "a", pad=True), {"seg": 1}, enricher.staging)
    assert loaded.stored == 2_000
    assert recording.checkpoints == [(as_set(INGEST_MEMORY), [])]
    assert _wal(tmp_path) == 0
    assert store.count_events() == 2_000


def test_a_small_log_is_not_checkpointed_after_a_batch(tmp_path: Path, enricher: Enricher) -> None:
    store, recording = _store(tmp_path)
    store.load(records(200, "a", pad=True), {}, enricher.staging)
    assert recording.checkpoints == []
    assert _wal(tmp_path) > 0


@pytest.mark.usefixtures("small_log")
def test_beside_a_report_the_checkpoint_runs_within_the_configured_limit(
    tmp_path: Path, enricher: Enricher
) -> None:
    """A lower limit would hold the report to it too. The checkpoint no longer takes the
    report slots either: reports do not wait for it."""
    store, recording = _store(tmp_path)
    with store._report_slots, store._memory.wide():  # a report statement is running
        store.load(records(500, "a", pad=True), {}, enricher.staging)
    assert recording.checkpoints == [(as_set(LIMIT), [])]
    assert _wal(tmp_path) == 0


@pytest.mark.usefixtures("small_log")
def test_a_failed_checkpoint_does_not_fail_the_stored_batch(
    tmp_path: Path, enricher: Enricher
) -> None:
    """Raising would make the loader load the batch again (new ids for events sent without)."""
    store, recording = _store(tmp_path, fail=True)
    loaded = store.load(records(300, "a", pad=True), {"seg": 7}, enricher.staging)
    assert loaded.stored == 300
    assert len(recording.checkpoints) == 1
    with store._reading() as cur:
        assert limit_of(cur) == as_set(INGEST_MEMORY)
    assert store.count_events() == 300
    assert store.positions() == {"seg": 7}


def test_a_configured_limit_below_ingest_memory_is_kept(
    tmp_path: Path, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duckdb_file, "CHECKPOINT_BYTES", 1)
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"), memory_limit="48MB")
    recording = _Recording(store._con)
    store._con = recording  # type: ignore[assignment]
    store.load(records(300, "a", pad=True), {}, enricher.staging)
    assert recording.checkpoints == [(as_set("48MB"), [])]
