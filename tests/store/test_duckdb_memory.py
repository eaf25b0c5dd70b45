"""DuckDB's memory limit follows what the store does: `INGEST_MEMORY` while only the loader
works, the configured limit for reports and bulk loads until `REPORT_LINGER_S` after the last
one (duckdb_memory.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from duck_memory import LIMIT, as_set, limit_of, records

from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events import duckdb_file, duckdb_memory
from cadlink.store.events.duckdb_memory import INGEST_MEMORY, MERGE_MEMORY, MemoryLimit
from cadlink.store.events.duckdb_store import DuckDBEventStore


def _limit(store: DuckDBEventStore) -> str:
    with store._reading() as cur:
        row = cur.execute("SELECT current_setting('memory_limit')").fetchone()
    assert row is not None
    return str(row[0])


def _in_report(store: DuckDBEventStore) -> str:
    """The limit a report statement runs with (it reads the setting itself)."""
    return str(store.fetch("SELECT current_setting('memory_limit') AS m", [])[0]["m"])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBEventStore]:
    opened = DuckDBEventStore(str(tmp_path / "events.duckdb"), memory_limit=LIMIT)
    yield opened
    opened.close()


def test_the_loader_alone_works_within_ingest_memory(
    store: DuckDBEventStore, enricher: Enricher
) -> None:
    assert _limit(store) == as_set(INGEST_MEMORY)  # from the start
    loaded = store.load(records(300, "a"), {}, enricher.staging)
    assert _limit(store) == as_set(INGEST_MEMORY)
    assert store.count_events() == 300
    assert not loaded.widened and store.batches_widened == 0


def test_a_report_runs_with_the_configured_limit_which_lingers_after_it(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _in_report(store) == as_set(LIMIT)
    # The loader's next batch, soon after: the dashboard's blocks stay cached.
    store.load(records(100, "a"), {}, enricher.staging)
    assert _limit(store) == as_set(LIMIT)
    # Once reports have been quiet for REPORT_LINGER_S, the loader lowers it between batches.
    monkeypatch.setattr(duckdb_memory, "REPORT_LINGER_S", 0.0)
    store.load(records(100, "b"), {}, enricher.staging)
    assert _limit(store) == as_set(INGEST_MEMORY)
    # ... and an idle loader's settle does too.
    assert _in_report(store) == as_set(LIMIT)
    store.settle()
    assert _limit(store) == as_set(INGEST_MEMORY)


def test_it_is_not_lowered_while_a_report_runs(
    store: DuckDBEventStore, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duckdb_memory, "REPORT_LINGER_S", 0.0)
    with store._memory.wide():  # a report (or an export of the bulk kind) is running
        store.load(records(100, "a"), {}, enricher.staging)
        assert _limit(store) == as_set(LIMIT)
    store.settle()
    assert _limit(store) == as_set(INGEST_MEMORY)


def test_bulk_loads_get_the_configured_limit(store: DuckDBEventStore) -> None:
    assert _limit(store) == as_set(INGEST_MEMORY)
    store.rebuild_sessions("site-1")
    assert _limit(store) == as_set(LIMIT)  # raised for the rebuild, and lingering


def test_a_limit_that_cannot_be_lowered_yet_is_tried_again(
    store: DuckDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lowered, DuckDB first evicts; if something still holds more, SET fails."""
    _in_report(store)
    monkeypatch.setattr(duckdb_memory, "REPORT_LINGER_S", 0.0)
    monkeypatch.setattr(MemoryLimit, "_set", lambda self, limit: False)
    assert not store._memory.lower_when_quiet()
    assert _limit(store) == as_set(LIMIT)
    monkeypatch.undo()
    monkeypatch.setattr(duckdb_memory, "REPORT_LINGER_S", 0.0)
    assert store._memory.lower_when_quiet()
    assert _limit(store) == as_set(INGEST_MEMORY)


def test_a_configured_limit_at_or_below_ingest_memory_is_kept_for_everything(
    tmp_path: Path, enricher: Enricher
) -> None:
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"), memory_limit="48MB")
    store.load(records(100, "a"), {}, enricher.staging)
    assert _limit(store) == as_set("48MB")
    assert _in_report(store) == as_set("48MB")
    store.close()


def test_reports_spill_beside_the_database_file(store: DuckDBEventStore, tmp_path: Path) -> None:
    """The file is attached to an in-memory database (for its row group size); spills still go
    to the data dir, not the working directory."""
    with store._reading() as cur:
        row = cur.execute("SELECT current_setting('temp_directory')").fetchone()
    assert row is not None
    assert row[0] == str(tmp_path / "events.duckdb") + ".tmp"


def test_a_checkpoint_that_does_not_fit_runs_within_the_configured_limit(
    store: DuckDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits: list[str] = []

    class _Tight:
        """The store's connection, whose first CHECKPOINT runs out of memory."""

        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self._con = con

        def execute(self, sql: str) -> object:
            limits.append(_limit(store))
            if len(limits) == 1:
                raise duckdb.OutOfMemoryException("checkpoint needs more")
            return self._con.execute(sql)

    duckdb_file.checkpoint(_Tight(store._con), store._memory)  # type: ignore[arg-type]
    assert limits == [as_set(INGEST_MEMORY), as_set(LIMIT)]


def test_a_batch_that_does_not_fit_ingest_memory_is_loaded_within_the_configured_limit(
    tmp_path: Path, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large events, or a batch whose session upkeep rebuilds many visitors, may need more
    than `INGEST_MEMORY`: the store loads that batch again within the configured limit (from
    its scratch files: the loader's buffer is already empty) instead of making the loader
    halve its batches. Here the ingest limit is shrunk until every batch needs more."""
    monkeypatch.setattr(duckdb_memory, "INGEST_MEMORY", "8MB")
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"), memory_limit=LIMIT)
    try:
        assert _limit(store) == as_set("8MB")
        batch = bytearray(records(3000, "a", pad=True))
        loaded = store.load(batch, {"seg": len(batch)}, enricher.staging)
        assert batch == b""  # the store had its own copy
        assert loaded.stored == loaded.staged.rows == loaded.staged.records == 3000
        assert store.count_events() == 3000
        assert store.positions() == {"seg": len(records(3000, "a", pad=True))}
        assert _limit(store) == as_set(LIMIT)  # raised for it, and lingering
        assert loaded.widened and store.batches_widened == 1  # counted (/metrics)
    finally:
        store.close()
    # Control: a store whose configured limit is that small has nothing wider to try.
    small = DuckDBEventStore(str(tmp_path / "small.duckdb"), memory_limit="8MB")
    try:
        with pytest.raises(MemoryError, match="too small for this batch"):
            small.load(records(3000, "a", pad=True), {}, enricher.staging)
        assert small.count_events() == 0
    finally:
        small.close()


def test_merging_row_groups_runs_within_merge_memory_and_a_report_keeps_its_limit() -> None:
    con = duckdb.connect(config={"memory_limit": LIMIT})
    memory = MemoryLimit(con, LIMIT)
    assert memory.lowered  # only the loader works
    with memory.merging() as narrowed:
        assert narrowed
        assert limit_of(con) == as_set(MERGE_MEMORY)
    assert limit_of(con) == as_set(INGEST_MEMORY)
    with memory.merging(), memory.wide():  # a report starts during the merge
        assert limit_of(con) == as_set(LIMIT)
    assert limit_of(con) == as_set(LIMIT)  # and keeps its limit after it
    with memory.merging() as narrowed:  # reports ran lately: their limit stays
        assert not narrowed
        assert limit_of(con) == as_set(LIMIT)
    con.close()
