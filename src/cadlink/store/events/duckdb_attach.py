"""The DuckDB store's upkeep of its database file: attaching it anew to release what DuckDB
keeps per row group, and merging the loader's small row groups into large ones
(docs/architecture.md, "Attached anew every million rows" and "Row groups merged when the
loader keeps up"). Mixed into `DuckDBEventStore`."""

from __future__ import annotations

import logging
import threading
import time

import duckdb

from cadlink.store.events import duckdb_file
from cadlink.store.events.duckdb_memory import MemoryLimit
from cadlink.store.events.duckdb_reads import ReadsInFlight
from cadlink.store.events.low_priority import run_at_low_priority

log = logging.getLogger(__name__)

# Rows written after which the store attaches its file anew (`_reattach_when_grown`): about
# 7 MB of what DuckDB keeps per row group.
REATTACH_ROWS = 1_000_000
# Rows written after which the store merges the loader's row groups (`upkeep`): about 61 of
# them, merged into nine.
MERGE_ROWS = 1_000_000
# How long attaching the file for the loader again after a merge waits for running reads
# (`_attach_anew`): a dashboard's reads take up to a few hundred ms, `/metrics`' one 1 ms.
LOADER_ATTACH_WAIT_S = 2.0


class DuckDBFileUpkeep:
    """Mixed into `DuckDBEventStore`, which opens `_con` on the file at `path` and makes
    `_write_lock`, `_reads` and `_memory`, then calls `_init_file_upkeep`."""

    path: str
    _con: duckdb.DuckDBPyConnection
    _catalog: str  # the database file's catalog ("" for an in-memory store)
    _write_lock: threading.Lock
    _reads: ReadsInFlight
    _memory: MemoryLimit

    def _init_file_upkeep(self) -> None:
        self._detached = False  # a reattach failed to attach the file again
        self._written_since_attach = 0  # rows (`reattach_when_grown`)
        self._written_since_merge = 0  # rows (`upkeep`)
        # Attached with `duckdb_file.MERGED_GROUP_ROWS` to merge row groups; attached again for
        # the loader at the first chance no read is running (`_reattach_when_grown`).
        self._large_groups = False
        self.reattached = 0  # times the file was attached anew since the store was opened
        self.merges = 0  # times the loader's row groups were merged (`upkeep`)

    def _reattach_when_grown(self) -> None:
        """Attach the database file anew (`duckdb_file.attach_anew`) once `REATTACH_ROWS` rows
        were written since it was last attached and no read is running (else at the next
        chance: after a checkpoint, or when the loader settles); attach it for the loader
        again if a merge left it attached with large row groups (`upkeep`). The caller holds
        the write lock, outside any transaction.

        What DuckDB keeps per row group while the file is attached grew the store process by
        about 7 bytes per stored event, for good: 15 MB over 2.3 M events in 16 MiB batches
        (peak of a batch 181 → 196 MB), 5.5 MB when attached anew every 290 k events
        (docs/benchmarks.md, fourteenth pass). Attaching takes about 15 ms."""
        if not self._catalog:
            return
        if self._large_groups:
            self._attach_anew(None)
            return
        if self._written_since_attach < REATTACH_ROWS:
            return
        started = time.perf_counter()
        if not self._attach_anew(None):
            return
        self._written_since_attach = 0
        self.reattached += 1
        log.info(
            "event store file attached anew",
            extra={"ms": round((time.perf_counter() - started) * 1000, 1)},
        )

    def upkeep(self) -> None:
        """Merge the loader's row groups (`duckdb_file.merge_row_groups`) once `MERGE_ROWS`
        rows were written since the last merge: attach the file with large row groups when
        no read is running, merge (reads run meanwhile), attach it for the loader again (now,
        or at the next batch or upkeep if a read is running). The loader calls this when it
        keeps up: a merge takes seconds of one core (about 6 µs per merged event,
        docs/benchmarks.md, eighteenth pass), which a backlog should not wait for.

        A report that reads every column of the history holds about 4 bytes per stored event
        of DuckDB's per-row-group state with the loader's row groups, 1 with merged ones (40
        against 9 MB at 10 M events), and reads fewer row groups."""
        if not self._catalog:
            return
        with self._write_lock:
            if self._large_groups:  # a read held the last merge's attach for the loader
                self._attach_anew(None)
                return
            if self._detached or self._written_since_merge < MERGE_ROWS:
                return
            if not self._attach_anew(duckdb_file.MERGED_GROUP_ROWS):
                return
            started = time.perf_counter()
            # At a lower priority than the request path it shares the cores with.
            merged = run_at_low_priority(
                lambda: duckdb_file.merge_row_groups(self._con, self._memory)
            )
            self.merges += merged
            self._written_since_merge = 0
            self._written_since_attach = 0
            self.reattached += 1
            self._attach_anew(None)
            log.info(
                "event store row groups merged" if merged else "merging row groups failed",
                extra={"ms": round((time.perf_counter() - started) * 1000, 1)},
            )

    def _attach_anew(self, row_group_rows: int | None) -> bool:
        """`duckdb_file.attach_anew` when no read is running; whether it did. `None`: the
        loader's row groups, after waiting up to `LOADER_ATTACH_WAIT_S` for the reads
        running: a loader batch on large row groups keeps its rows in memory (the file's
        row group size), and DuckDB's ingest memory may not hold them."""
        wait = LOADER_ATTACH_WAIT_S if row_group_rows is None and self._large_groups else 0.0
        with self._reads.paused(wait) as free:
            if not free:
                return False
            self._detached = True  # until it is attached again (`_ensure_attached`)
            duckdb_file.attach_anew(self._con, self.path, row_group_rows)
            self._detached = False
            self._large_groups = row_group_rows is not None
        return True

    def _ensure_attached(self) -> None:
        """Attach the file if a reattach left it detached (a failed ATTACH: the disk, say);
        the caller holds the write lock. Loads fail, and their records wait in the buffer,
        until it succeeds."""
        if self._detached:
            duckdb_file.attach(self._con, self.path)
            self._detached = False
            self._large_groups = False
