"""The embedded event store: one DuckDB file, one writer, many readers.

DuckDB allows a single writing process. The loader thread owns `self._con` for writes; API
reads use cursors (`con.cursor()`), which DuckDB runs concurrently with the writer; they live
in `duckdb_reads.py`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from cadlink.store.events import rollups
from cadlink.store.events.base import Loaded, StoreBatch
from cadlink.store.events.duckdb_memory import MemoryLimit
from cadlink.store.events.duckdb_reads import EVENT_COLUMNS, REPORT_SLOTS, DuckDBReads
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

# Not the records' fault: a smaller batch fits (the loader retries with one).
_TOO_SMALL = "DuckDB's memory limit is too small for this batch: {}"

_ADD_ROLLUPS = [rollups.render(sql, "duckdb") for sql in rollups.add_statements()]
_COMPACT_ROLLUPS = [rollups.render(sql, "duckdb") for sql in rollups.compact_statements()]


# A checkpoint compresses the write-ahead log's rows into the database file; until then they
# are in memory, uncompressed (about 1.4 times the log). With DuckDB's row groups of 122,880
# rows, every checkpoint re-compressed the same partly filled row group, so checkpoints at
# 16MB of log cost the loader a quarter more CPU than at 64MB. With `ROW_GROUP_ROWS` the
# partial group is small: at 16MB the loader's CPU per event is the same as at 64MB, and a
# stream of small batches holds 50 MB less (docs/benchmarks.md, eleventh pass). A checkpoint
# is the loader's peak with full batches: a loader-only probe of 2 M events in 16 MiB batches
# peaked at 176 MB at 4MB of log, 181 at 8, 187 at 16, 195 at 32, at the same speed. With a
# stream of 256 KiB batches, 4MB was the worst: 184 MB against 162-163 at 8 and 16. So 8MB.
# The loader checkpoints itself (`_checkpoint_when_due`), after a batch's tables are gone;
# DuckDB's own threshold, higher, is the backstop for the writes that do not (rebuilds,
# erasures).
CHECKPOINT_BYTES = 8 << 20
CHECKPOINT_THRESHOLD = "256MB"
# `rebuild_sessions` numbers this many events into sessions at a time (at most): a part of
# 10 M demo events fits the default memory limit with room for the reports beside it.
REBUILD_CHUNK_EVENTS = 1_000_000
# `settle` checkpoints only a log at least this large: a smaller one holds little memory, and
# each checkpoint re-compresses the last, partly filled row group (a quiet site would pay that
# after every few events).
SETTLE_MIN_WAL_BYTES = 4 << 20
# Rows per row group of the store's tables (DuckDB's default: 122,880). An INSERT that fills
# a whole row group inside its transaction writes it to the file, compressed, at once
# ("optimistic writes"); a smaller one keeps its rows in memory, uncompressed, until a
# checkpoint. A 16 MiB loader batch (about 27,000 events) never filled 122,880 rows, so
# every batch stayed in memory: DuckDB held 85 MB of such rows at the loader's peak, and
# each checkpoint re-compressed the same partly filled row group. At 16,384 rows a batch
# goes to the file as it is inserted (24 MB held; the loader's CPU per event no higher).
# DuckDB does not keep this in the file: every open of it passes it (`_open`).
ROW_GROUP_ROWS = 16_384
# The catalog name the database file is attached as (the default of every connection).
CATALOG = "store"


class DuckDBEventStore(DuckDBReads):
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
        self.rebuild_chunk_events = REBUILD_CHUNK_EVENTS
        self._compacted_at = 0.0  # time.monotonic() of the last rollup compaction
        config: dict[str, str | bool | int | float | list[str]] = {
            "checkpoint_threshold": CHECKPOINT_THRESHOLD,
            # DuckDB's allocator (jemalloc) hands freed pages back to the system only while
            # it is allocating, so after a burst an idle server kept the burst's memory (about
            # 100 MB at rest after a batch-10 peak); a background thread returns it within
            # seconds (docs/benchmarks.md).
            "allocator_background_threads": True,
        }
        if memory_limit:
            config["memory_limit"] = memory_limit
        if path != ":memory:":
            # What a report cannot hold spills beside the file (DuckDB's default for a file
            # opened directly; the in-memory database `_open` attaches it to has none).
            config["temp_directory"] = path + ".tmp"
        self._con = _open(path, config)
        self._catalog = CATALOG if path != ":memory:" else ""
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
                self._finish(con, batch.drops, batch.positions, batch.rejected)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.execute("DROP TABLE IF EXISTS staged_rows")
            self._checkpoint_when_due(con)
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
            rebuilt = self.sessions_rebuilt
            staged_rows = bool(records)
            try:
                try:
                    staged, inserted = self._load_batch(
                        con,
                        (lambda: stager.stage(records)) if staged_rows else Staged,
                        positions,
                        rejected or [],
                    )
                except duckdb.OutOfMemoryException as e:
                    if not self._memory.lowered:
                        raise MemoryError(_TOO_SMALL.format(e)) from e
                    # Within INGEST_MEMORY a batch of large events, or one whose session
                    # upkeep rebuilds many visitors, may not fit: once more within the
                    # configured limit, from the scratch files it is still in.
                    log.info("a loader batch ran out of DuckDB's ingest memory; loading it "
                             "within the configured limit")  # fmt: skip
                    self.sessions_rebuilt = rebuilt
                    with self._memory.wide():
                        try:
                            staged, inserted = self._load_batch(
                                con,
                                stager.stage_again if staged_rows else Staged,
                                positions,
                                rejected or [],
                            )
                        except duckdb.OutOfMemoryException as e2:
                            raise MemoryError(_TOO_SMALL.format(e2)) from e2
            finally:
                stager.drop()
                if busy:
                    con.execute(f"SET threads = {self._threads}")
            self._checkpoint_when_due(con)
            return Loaded(inserted, staged, self.sessions_rebuilt - rebuilt)

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
            self._finish(con, staged.drops, positions, rejected)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return staged, inserted

    def _checkpoint_when_due(self, con: duckdb.DuckDBPyConnection) -> None:
        """Checkpoint once the log holds `CHECKPOINT_BYTES` (the caller holds the write lock
        and has committed). Never raises: the batch is stored, and a loader that saw an error
        would load it again; DuckDB checkpoints at its own threshold if this one failed."""
        if self._wal is None or _size(self._wal) < CHECKPOINT_BYTES:
            return
        try:
            self._checkpoint(con)
        except Exception:
            log.warning("checkpoint failed; DuckDB retries at its own threshold", exc_info=True)

    def _checkpoint(self, con: duckdb.DuckDBPyConnection) -> None:
        """CHECKPOINT within the limit in force: `INGEST_MEMORY` while only the loader works
        (duckdb_memory.py). A checkpoint takes whatever the limit leaves it: within 256MB,
        every one held DuckDB at 236-239 MB for 0.3-1.2 s and set the store's peak. One that
        does not fit runs again within the configured limit."""
        try:
            con.execute("CHECKPOINT")
        except duckdb.OutOfMemoryException:
            with self._memory.wide():
                con.execute("CHECKPOINT")

    def _finish(
        self,
        con: duckdb.DuckDBPyConnection,
        drops: dict[tuple[str, date, str], int],
        positions: dict[str, int],
        rejected: list[tuple[bytes, str]],
    ) -> None:
        """The rest of a loader transaction: drop counts, dead letters, buffer positions."""
        self._add_drops(con, drops)
        for n, (payload, why) in enumerate(rejected):
            con.execute("INSERT INTO dead_letters VALUES (now(), ?, ?, ?)", [n, why, payload])
        if positions:
            con.execute(
                "INSERT OR REPLACE INTO loader_positions "
                "SELECT unnest($segments), unnest($positions)",
                {"segments": list(positions), "positions": list(positions.values())},
            )

    @staticmethod
    def _add_drops(con: duckdb.DuckDBPyConnection, drops: dict[tuple[str, date, str], int]) -> None:
        if not drops:
            return
        rows = ", ".join("(?, ?, ?, ?)" for _ in drops)
        params = [v for (site, day, reason), n in drops.items() for v in (site, day, reason, n)]
        con.execute(
            f"INSERT INTO dropped_events VALUES {rows} "
            "ON CONFLICT (site_id, day, reason) "
            "DO UPDATE SET count = dropped_events.count + excluded.count",
            params,
        )

    def append(self, batch: StoreBatch) -> int:
        """Bulk path for freshly generated or imported history: append rows without the
        duplicate check or session upkeep; call `rebuild_sessions` once afterwards."""
        with self._write_lock, self._memory.wide():
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("batch_in", batch.rows)
                con.execute(
                    f"INSERT INTO analytics_events SELECT {EVENT_COLUMNS} FROM batch_in "
                    "ORDER BY site_id, ts"
                )
                con.unregister("batch_in")
                self._add_drops(con, batch.drops)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self._checkpoint_when_due(con)
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
            self._checkpoint_when_due(con)
            row = con.execute(
                "SELECT count(*) FROM sessions WHERE site_id = ?", [site_id]
            ).fetchone()
        return int(row[0]) if row else 0

    def _insert_staged(self, con: duckdb.DuckDBPyConnection) -> int:
        """Store `staged_rows` but the events already stored; upkeep of sessions and rollups."""
        bounds = con.execute("SELECT min(ts), max(ts) FROM staged_rows").fetchone()
        if bounds is None or bounds[0] is None:
            return 0
        # A repeat carries the original's event time (tracker retries resend the event as it
        # was; a replayed buffer record is identical), so the stored rows within the window
        # of the batch's times are all the duplicate check reads: DuckDB skips the rest by
        # their row groups' time ranges.
        window = self.dedup_window
        con.execute(DEDUP_SQL, {"lo": bounds[0] - window, "hi": bounds[1] + window})
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
            rows = self._con.execute("SELECT segment, position FROM loader_positions").fetchall()
        return {str(s): int(p) for s, p in rows}

    def settle(self) -> None:
        """Checkpoint: rows written since the last checkpoint live uncompressed in memory (and
        in the write-ahead log) until the log holds `CHECKPOINT_BYTES`; an idle server would
        hold them, about 50 MB after a burst, until the next one.
        Checkpointed, they are compressed on disk, the memory goes back and a restart replays
        no log. (DuckDB checkpoints beside open readers and writers.)"""
        with self._write_lock:
            self._memory.lower_when_quiet()
            if self._wal is not None and _size(self._wal) >= SETTLE_MIN_WAL_BYTES:
                self._checkpoint(self._con)

    def forget_positions(self, segments: list[str]) -> None:
        if not segments:
            return
        with self._write_lock:
            self._con.execute(
                "DELETE FROM loader_positions WHERE list_contains(?, segment)", [segments]
            )

    def ping(self) -> dict[str, Any]:
        row = self._reader().execute("SELECT version()").fetchone()
        return {"engine": "duckdb", "version": row[0] if row else None, "path": self.path}

    def close(self) -> None:
        with self._write_lock:
            self._con.close()


def _open(
    path: str, config: dict[str, str | bool | int | float | list[str]]
) -> duckdb.DuckDBPyConnection:
    """Open the store's database with `ROW_GROUP_ROWS` (an option of ATTACH only, so the
    file is attached to an in-memory database as `CATALOG`, every connection's default)."""
    con = duckdb.connect(":memory:", config=config)
    if path != ":memory:":
        escaped = path.replace("'", "''")
        con.execute(f"ATTACH '{escaped}' AS {CATALOG} (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
        con.execute(f"USE {CATALOG}")
    return con


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
