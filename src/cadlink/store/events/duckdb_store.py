"""The embedded event store: one DuckDB file, one writer, many readers.

DuckDB allows a single writing process. The loader thread owns `self._con` for writes; API
reads use cursors (`con.cursor()`), which DuckDB runs concurrently with the writer; they live
in `duckdb_reads.py`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from cadlink.store.events import (
    duckdb_bookkeeping,
    duckdb_file,
    rollups,
    scan_ranges,
    subjects,
)
from cadlink.store.events.base import Loaded, StoreBatch
from cadlink.store.events.duckdb_attach import DuckDBFileUpkeep
from cadlink.store.events.duckdb_memory import MemoryLimit
from cadlink.store.events.duckdb_reads import (
    EVENT_COLUMNS,
    REPORT_SLOTS,
    DuckDBReads,
    ReadsInFlight,
)
from cadlink.store.events.duckdb_schema import (
    EVENTS_DDL,
    SCHEMA_VERSION,
    SESSIONS_DDL,
    SESSIONS_MIGRATIONS,
    SUPPORT_DDL,
)
from cadlink.store.events.duckdb_sessions import (
    BOUNCE_MAX_MS,
    DEDUP_SQL,
    DELETE_SQL,
    FAST_INSERT_SQL,
    FAST_SQL,
    FAST_UPDATE_SQL,
    FAST_WIDEN_SQL,
    INSERT_SQL,
    NUMBER_SQL,
    RUNS_SQL,
    SLOW_AFFECTED_SQL,
    VISITORS_SQL,
)
from cadlink.store.events.staged import Staged, Staging
from cadlink.store.events.staging import Stager, private_scratch

log = logging.getLogger(__name__)

_ADD_ROLLUPS = [rollups.render(sql, "duckdb") for sql in rollups.add_statements()]
_COMPACT_ROLLUPS = [rollups.render(sql, "duckdb") for sql in rollups.compact_statements()]


# `rebuild_sessions` numbers this many events into sessions at a time (at most): a part of
# 10 M demo events fits the default memory limit with room for the reports beside it.
REBUILD_CHUNK_EVENTS = 1_000_000


class DuckDBEventStore(DuckDBFileUpkeep, DuckDBReads):
    engine = "duckdb"

    def __init__(
        self,
        path: str,
        *,
        session_timeout_minutes: int = 30,
        dedup_window_hours: int = 1,
        memory_limit: str = "",
    ) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.gap_seconds = session_timeout_minutes * 60
        self.dedup_window = timedelta(hours=dedup_window_hours)
        # Visitors whose sessions a batch rebuilt from their stored events (the slow path of
        # the session upkeep) since the store was opened: late events, or ties it cannot order.
        self.sessions_rebuilt = 0
        # Loader batches loaded again within the configured limit (`_load_within_limits`).
        self.batches_widened = 0
        self.rebuild_chunk_events = REBUILD_CHUNK_EVENTS
        self._compacted_at = 0.0  # time.monotonic() of the last rollup compaction
        self._con = duckdb_file.open_database(path, memory_limit)
        self._catalog = duckdb_file.CATALOG if path != ":memory:" else ""
        self._wal = Path(path + ".wal") if path != ":memory:" else None
        self._memory = MemoryLimit(self._con, memory_limit)
        self._stager: Stager | None = None
        # The loader's batch, as DuckDB reads it (staging.py): beside the database file.
        self._scratch = (
            Path(path).with_name(Path(path).name + ".staging")
            if path != ":memory:"
            else private_scratch(self)
        )
        self._write_lock = threading.Lock()
        self._report_slots = threading.BoundedSemaphore(REPORT_SLOTS)
        self._reads = ReadsInFlight()
        self._init_file_upkeep()
        row = self._con.execute("SELECT current_setting('threads')").fetchone()
        self._threads = int(row[0]) if row else 1  # what reads use; loader batches use one
        self.init_schema()

    def init_schema(self) -> None:
        with self._write_lock:
            self._con.execute(EVENTS_DDL)
            self._con.execute(SESSIONS_DDL)
            for ddl in SESSIONS_MIGRATIONS:
                self._con.execute(ddl)
            for ddl in SUPPORT_DDL:
                self._con.execute(ddl)
            self._con.execute(rollups.render(rollups.DIRTY_DDL, "duckdb"))
            for table in rollups.TABLES:
                existed = self._con.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                    [table.name],
                ).fetchone()
                self._con.execute(rollups.render(table.ddl, "duckdb"))
                if existed is not None and existed[0] == 0:
                    # A store from before this rollup existed: derive it once from the events.
                    sites = self._con.execute(
                        "SELECT DISTINCT site_id FROM analytics_events"
                    ).fetchall()
                    for (site,) in sites:
                        insert = rollups.render(table.rebuild()[1], "duckdb")
                        self._con.execute(insert, {"site": site})
            self._con.execute(
                "INSERT OR REPLACE INTO schema_info VALUES ('version', ?)", [SCHEMA_VERSION]
            )

    # -- writes ---------------------------------------------------------------------------

    def write(self, batch: StoreBatch) -> int:
        """Store enriched Arrow rows (imports, tests); the loader uses `load`."""
        with self._write_lock, self._memory.wide():
            self._ensure_attached()
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                inserted = 0
                if batch.rows.num_rows:
                    con.register("batch_in", batch.rows)
                    con.execute(
                        f"CREATE OR REPLACE TEMP TABLE staged_rows AS "
                        f"SELECT row_number() OVER () AS i, {EVENT_COLUMNS} FROM batch_in"
                    )
                    con.unregister("batch_in")
                    inserted = self._insert_staged(con)
                duckdb_bookkeeping.finish(con, batch.drops, batch.positions, batch.rejected)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.execute("DROP TABLE IF EXISTS staged_rows")
            due = duckdb_file.checkpoint_when_due(con, self._wal, self._memory)
            if due or self._large_groups:
                self._reattach_when_grown()
            return inserted

    def load(
        self,
        records: bytes | bytearray,
        positions: dict[str, int],
        staging: Staging,
        rejected: list[tuple[bytes, str]] | None = None,
        *,
        busy: bool = False,
    ) -> Loaded:
        """Stage buffer records (whole lines) on this store's own connection and store them,
        with the positions they came from, in one transaction: the rows never leave DuckDB."""
        with self._write_lock:
            self._ensure_attached()
            if self._large_groups:  # a read held it after a merge: try again before the batch
                self._attach_anew(None)
            con = self._con
            stager = self._stager
            if stager is None or stager.staging is not staging:
                stager = self._stager = Stager(con, staging, self._scratch)
            self._memory.lower_when_quiet()  # between batches: nothing of the loader's held
            # A loader batch is a few dozen statements over tens of thousands of rows: run in
            # parallel they cost a quarter more CPU (task hand-offs between DuckDB's threads)
            # and take a core from the request path. While requests arrive, a batch runs on
            # this thread alone; the dashboard's queries get their threads back after it.
            # Catching up with nothing arriving, it uses them all.
            if busy:
                con.execute("SET threads = 1")
            rebuilt, widened = self.sessions_rebuilt, self.batches_widened
            first: Callable[[], Staged] = (lambda: stager.stage(records)) if records else Staged
            again: Callable[[], Staged] = stager.stage_again if records else Staged
            try:
                staged, inserted = self._load_within_limits(con, first, again, positions, rejected)
            except duckdb.OutOfMemoryException as e:
                # Not the records' fault: a smaller batch fits (the loader retries with one).
                raise MemoryError(f"DuckDB's memory limit is too small for this batch: {e}") from e
            finally:
                stager.drop()
                if busy:
                    con.execute(f"SET threads = {self._threads}")
            due = duckdb_file.checkpoint_when_due(con, self._wal, self._memory)
            if due or self._large_groups:
                self._reattach_when_grown()
            return Loaded(
                inserted, staged, self.sessions_rebuilt - rebuilt, self.batches_widened > widened
            )

    def _load_within_limits(
        self,
        con: duckdb.DuckDBPyConnection,
        first: Callable[[], Staged],
        again: Callable[[], Staged],
        positions: dict[str, int],
        rejected: list[tuple[bytes, str]] | None,
    ) -> tuple[Staged, int]:
        """`_load_batch` within the limit in force; a batch that runs out of `INGEST_MEMORY`
        (large events, or session upkeep that rebuilds many visitors) is staged `again`, from
        the scratch files it is still in, within the configured limit."""
        rebuilt = self.sessions_rebuilt
        try:
            return self._load_batch(con, first, positions, rejected or [])
        except duckdb.OutOfMemoryException:
            if not self._memory.lowered:
                raise
        log.info("a loader batch ran out of DuckDB's ingest memory; loading it within the "
                 "configured limit")  # fmt: skip
        self.sessions_rebuilt = rebuilt
        self.batches_widened += 1
        with self._memory.wide():
            return self._load_batch(con, again, positions, rejected or [])

    def _load_batch(
        self,
        con: duckdb.DuckDBPyConnection,
        stage: Callable[[], Staged],
        positions: dict[str, int],
        rejected: list[tuple[bytes, str]],
    ) -> tuple[Staged, int]:
        """One loader transaction: stage, store, record the positions; rolled back whole."""
        con.execute("BEGIN TRANSACTION")
        try:
            staged = stage()
            inserted = self._insert_staged(con) if staged.rows else 0
            duckdb_bookkeeping.finish(con, staged.drops, positions, rejected)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return staged, inserted

    def append(self, batch: StoreBatch) -> int:
        """Bulk path for freshly generated or imported history: append rows without the
        duplicate check or session upkeep; call `rebuild_sessions` once afterwards."""
        with self._write_lock, self._memory.wide():
            self._ensure_attached()
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("batch_in", batch.rows)
                con.execute(
                    f"INSERT INTO analytics_events SELECT {EVENT_COLUMNS} FROM batch_in "
                    "ORDER BY site_id, ts"
                )
                con.unregister("batch_in")
                duckdb_bookkeeping.add_drops(con, batch.drops)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self._written_since_attach += int(batch.rows.num_rows)
            self._written_since_merge += int(batch.rows.num_rows)
            due = duckdb_file.checkpoint_when_due(con, self._wal, self._memory)
            if due or self._large_groups:
                self._reattach_when_grown()
        return int(batch.rows.num_rows)

    def rebuild_sessions(self, site_id: str) -> int:
        """Recompute every session of a site from its events; returns the session count.

        A visitor's sessions need only that visitor's events, so the site's visitors are
        rebuilt in parts of about `rebuild_chunk_events` events (by a hash of their id): in
        one piece, numbering 10 M events into sessions ran out of the default 256MB."""
        with self._write_lock, self._memory.wide():
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE rebuild_visitors AS SELECT site_id, "
                    "visitor_id, min(ts) AS lo, max(ts) AS hi, count(*) AS n "
                    "FROM analytics_events WHERE site_id = ? GROUP BY ALL",
                    [site_id],
                )
                total = con.execute("SELECT coalesce(sum(n), 0) FROM rebuild_visitors").fetchone()
                parts = max(1, -(-int(total[0] if total else 0) // self.rebuild_chunk_events))
                con.execute("DELETE FROM sessions WHERE site_id = ?", [site_id])
                con.execute("DELETE FROM rollup_dirty_hours WHERE site_id = ?", [site_id])
                for table in rollups.TABLES:
                    for sql in table.rebuild():
                        con.execute(rollups.render(sql, "duckdb"), {"site": site_id})
                for part in range(parts):
                    con.execute(
                        "CREATE OR REPLACE TEMP TABLE affected AS SELECT site_id, visitor_id, "
                        "lo, hi FROM rebuild_visitors WHERE hash(visitor_id) % $parts = $part",
                        {"parts": parts, "part": part},
                    )
                    bounds = con.execute("SELECT min(lo), max(hi) FROM affected").fetchone()
                    if bounds is not None and bounds[0] is not None:
                        con.execute(
                            INSERT_SQL,
                            {"gap": self.gap_seconds, "lo": bounds[0], "hi": bounds[1],
                             "bounce_ms": BOUNCE_MAX_MS},
                        )  # fmt: skip
                con.execute("DROP TABLE rebuild_visitors")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            duckdb_file.checkpoint_when_due(con, self._wal, self._memory)
            row = con.execute(
                "SELECT count(*) FROM sessions WHERE site_id = ?", [site_id]
            ).fetchone()
            rebuilt = int(row[0]) if row else 0
            self._written_since_merge += rebuilt  # written anew, in the loader's row groups
        return rebuilt

    def erase_visitors(self, site_id: str, visitor_ids: Sequence[int]) -> dict[str, int]:
        """Delete every row of these visitors of the site, in one transaction; rows deleted
        per table. The checkpoint after it rewrites the row groups the deletes touched, so
        the rows leave the file, not only the reports."""
        ids = sorted(set(visitor_ids))
        deleted = dict.fromkeys(subjects.TABLES, 0)
        if not ids:
            return deleted
        with self._write_lock:
            self._ensure_attached()
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                for table in subjects.TABLES:
                    row = con.execute(subjects.delete_from(table), [site_id, ids]).fetchone()
                    deleted[table] = int(row[0]) if row else 0
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            duckdb_file.checkpoint(con, self._memory)
        return deleted

    def _insert_staged(self, con: duckdb.DuckDBPyConnection) -> int:
        """Store `staged_rows` but the events already stored; upkeep of sessions and rollups."""
        minutes = con.execute(
            "SELECT DISTINCT time_bucket(INTERVAL 1 MINUTE, ts) FROM staged_rows"
        ).fetchall()
        if not minutes:
            return 0
        # A repeat carries the original's event time (tracker retries resend the event as it
        # was; a replayed buffer record is identical), so the stored rows within the window
        # of the batch's own times are all the duplicate check reads (scan_ranges.py).
        window = self.dedup_window
        stored, params = scan_ranges.where(
            "e.ts", scan_ranges.cover((m for (m,) in minutes), window)
        )
        con.execute(DEDUP_SQL.format(stored=stored), {"window": window, **params})
        new = con.execute("SELECT count(*), min(ts), max(ts) FROM staged_rows").fetchone()
        if new is None or not new[0]:
            return 0
        con.execute(
            f"INSERT INTO analytics_events SELECT {EVENT_COLUMNS} FROM staged_rows "
            "ORDER BY site_id, ts"
        )
        con.execute(NUMBER_SQL, {"gap": self.gap_seconds})
        self._rebuild_sessions(con, new[1])
        # The rollups read the batch as `new_rows` (their SQL is shared with PostgreSQL).
        con.execute("CREATE OR REPLACE TEMP VIEW new_rows AS SELECT * FROM staged_rows")
        for sql in _ADD_ROLLUPS:
            con.execute(sql)
        self._compact_rollups(con, new[2])
        self._written_since_attach += int(new[0])
        self._written_since_merge += int(new[0])
        return int(new[0])

    def _compact_rollups(self, con: duckdb.DuckDBPyConnection, newest: datetime) -> None:
        """Merge the rollup rows of the hours before `newest`'s, at most once a minute."""
        now = time.monotonic()
        if now - self._compacted_at < rollups.COMPACT_EVERY_SECONDS:
            return
        self._compacted_at = now
        before = int(newest.timestamp()) // 3600
        for sql in _COMPACT_ROLLUPS:
            con.execute(sql, {"before": before} if "$before" in sql else None)

    def _rebuild_sessions(self, con: duckdb.DuckDBPyConnection, first: datetime) -> None:
        """Bring the sessions of the visitors in `new_rows` (stored already; `first` is their
        earliest time) up to date (duckdb_sessions.py): merge where their new events follow
        their stored sessions, else rebuild from the stored events."""
        gap = self.gap_seconds
        since = first - timedelta(seconds=gap)
        con.execute(RUNS_SQL)
        con.execute(VISITORS_SQL, {"gap": gap, "since": since})
        con.execute(FAST_SQL, {"since": since, "bounce_ms": BOUNCE_MAX_MS})
        con.execute(FAST_UPDATE_SQL, {"since": since})
        con.execute(FAST_WIDEN_SQL, {"since": since})
        con.execute(FAST_INSERT_SQL)
        con.execute(SLOW_AFFECTED_SQL, {"gap": gap, "since": since})
        bounds = con.execute("SELECT min(lo), max(hi), count(*) FROM affected").fetchone()
        if bounds is None or bounds[0] is None:
            return
        self.sessions_rebuilt += int(bounds[2])
        con.execute(DELETE_SQL)
        con.execute(
            INSERT_SQL,
            {"gap": gap, "lo": bounds[0], "hi": bounds[1], "bounce_ms": BOUNCE_MAX_MS},
        )

    def positions(self) -> dict[str, int]:
        with self._write_lock:
            return duckdb_bookkeeping.positions(self._con)

    def settle(self) -> None:
        """Checkpoint: rows written since the last checkpoint live uncompressed in memory (and
        in the write-ahead log) until the log holds `duckdb_file.CHECKPOINT_BYTES`; an idle
        server would hold them, about 50 MB after a burst, until the next one.
        Checkpointed, they are compressed on disk, the memory goes back and a restart replays
        no log. (DuckDB checkpoints beside open readers and writers.)"""
        with self._write_lock:
            self._ensure_attached()
            self._memory.lower_when_quiet()
            if duckdb_file.log_bytes(self._wal) >= duckdb_file.SETTLE_MIN_WAL_BYTES:
                duckdb_file.checkpoint(self._con, self._memory)
            self._reattach_when_grown()

    def checkpoint(self) -> None:
        """Write everything to the file now, leaving the write-ahead log empty: a backup
        copies the file alone (backups.py)."""
        with self._write_lock:
            self._checkpoint_whole()

    def _checkpoint_whole(self) -> None:
        """(With the write lock.) Checkpoint, and make sure the log is left empty."""
        self._ensure_attached()
        duckdb_file.checkpoint(self._con, self._memory)
        if duckdb_file.log_bytes(self._wal):
            raise RuntimeError("the write-ahead log still holds writes after a checkpoint")

    def copy_file(self, target: str) -> int:
        """Copy the database file to `target`, whole: checkpointed, with the loader's writes
        and the upkeep held off meanwhile (reads go on); returns its size. A backup taken
        while the server runs (backups.py)."""
        if self.path == ":memory:":
            raise ValueError("an in-memory store has no file to copy")
        with self._write_lock:
            self._checkpoint_whole()
            duckdb_file.copy_held(self.path, target)
        return Path(target).stat().st_size

    def forget_positions(self, segments: list[str]) -> None:
        if not segments:
            return
        with self._write_lock:
            duckdb_bookkeeping.forget(self._con, segments)

    def ping(self) -> dict[str, Any]:
        with self._reading() as cur:
            row = cur.execute("SELECT version()").fetchone()
        # No file path: this answers the public health probe, which must not show the layout.
        return {"engine": "duckdb", "version": row[0] if row else None}

    def close(self) -> None:
        with self._write_lock:
            self._con.close()
