"""The event store's database file: how it is opened, and when its write-ahead log is
checkpointed (duckdb_store.py calls these; the limits are duckdb_memory.py's)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import duckdb

from cadlink.store.events.duckdb_memory import MemoryLimit

log = logging.getLogger(__name__)

# A checkpoint compresses the write-ahead log's rows into the database file; until then they
# are in memory, uncompressed (about 1.4 times the log). With DuckDB's row groups of 122,880
# rows, every checkpoint re-compressed the same partly filled row group, so checkpoints at
# 16MB of log cost the loader a quarter more CPU than at 64MB. With `ROW_GROUP_ROWS` the
# partial group is small: at 16MB the loader's CPU per event is the same as at 64MB, and a
# stream of small batches holds 50 MB less (docs/benchmarks.md, eleventh pass). A checkpoint
# is the loader's peak with full batches: a loader-only probe of 2 M events in 16 MiB batches
# peaked at 176 MB at 4MB of log, 181 at 8, 187 at 16, 195 at 32, at the same speed. With a
# stream of 256 KiB batches, 4MB was the worst: 184 MB against 162-163 at 8 and 16. So 8MB.
# The loader checkpoints itself (`checkpoint_when_due`), after a batch's tables are gone;
# DuckDB's own threshold, higher, is the backstop for the writes that do not (rebuilds,
# erasures).
CHECKPOINT_BYTES = 8 << 20
CHECKPOINT_THRESHOLD = "256MB"
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
# DuckDB does not keep this in the file: every open of it passes it (`open_database`).
ROW_GROUP_ROWS = 16_384
# What `merge_row_groups` merges the loader's row groups into (DuckDB's default): DuckDB
# keeps about 1 KB in memory for each column of each row group it has read, for as long as
# the file is attached, outside its memory limit. At 16,384 rows that is about 4 bytes per
# stored event once a report has read every column (40 MB at 10 M events, 400 at 100 M);
# at 114,688 (seven groups merged) a seventh of it, and reports read fewer row groups.
MERGED_GROUP_ROWS = 122_880
# At most this many row groups merged at once (DuckDB's `max_vacuum_tasks` counts the
# groups a merge takes): about 2 M events, 12-15 s of one core within 32MB (6-7 µs an event
# on the 10 M-event benchmark store). A merge follows every `duckdb_attach.MERGE_ROWS` (1 M)
# rows written, so a store written before merging existed catches up at twice its growth.
MAX_GROUPS_MERGED = 128
# The tables the loader appends to; the others hold a few rows per site and hour.
MERGED_TABLES = ("analytics_events", "sessions")
# The catalog name the database file is attached as (the default of every connection).
CATALOG = "store"


def open_database(path: str, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """The store's connection: the file at `path` (or an in-memory database) attached with
    `ROW_GROUP_ROWS` (an option of ATTACH only, so the file is attached to an in-memory
    database as `CATALOG`, every connection's default)."""
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
        # opened directly; the in-memory database it is attached to has none).
        config["temp_directory"] = path + ".tmp"
    con = duckdb.connect(":memory:", config=config)
    if path != ":memory:":
        attach(con, path)
    return con


def copy_held(path: str, target: str) -> None:
    """Copy the database file this process holds, in a child process. DuckDB's lock on the
    file is a POSIX record lock, which the kernel drops when this process closes *any*
    descriptor of the file: a copy made here (shutil.copyfile opens and closes it) let a
    second server or `cadlink demo` open the file while this process went on writing it."""
    done = subprocess.run(  # noqa: S603 (this interpreter, our own code, paths as arguments)
        [sys.executable, "-c", _COPY, path, target], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise OSError(f"could not copy {path} to {target}: {done.stderr.strip()[-500:]}")


_COPY = "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])"


def log_bytes(wal: Path | None) -> int:
    """The size of the write-ahead log (0 for none, or an in-memory database)."""
    if wal is None:
        return 0
    try:
        return wal.stat().st_size
    except FileNotFoundError:
        return 0


def checkpoint_when_due(
    con: duckdb.DuckDBPyConnection, wal: Path | None, memory: MemoryLimit
) -> bool:
    """Checkpoint once the log holds `CHECKPOINT_BYTES` (the caller holds the write lock
    and has committed); returns whether it did. Never raises: the batch is stored, and a
    loader that saw an error would load it again; DuckDB checkpoints at its own threshold
    if this one failed."""
    if log_bytes(wal) < CHECKPOINT_BYTES:
        return False
    try:
        checkpoint(con, memory)
    except Exception:
        log.warning("checkpoint failed; DuckDB retries at its own threshold", exc_info=True)
        return False
    return True


def attach(con: duckdb.DuckDBPyConnection, path: str, row_group_rows: int | None = None) -> None:
    """Attach the database file to `con`'s in-memory database as `CATALOG`, its default
    (unless it is attached already: a reattach that failed before detaching), with row
    groups of `ROW_GROUP_ROWS` unless told otherwise."""
    if not _attached(con):
        escaped = path.replace("'", "''")
        rows = row_group_rows or ROW_GROUP_ROWS
        con.execute(f"ATTACH '{escaped}' AS {CATALOG} (ROW_GROUP_SIZE {rows})")
    con.execute(f"USE {CATALOG}")


def _attached(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [CATALOG]
    ).fetchone()
    return bool(row and row[0])


def attach_anew(
    con: duckdb.DuckDBPyConnection, path: str, row_group_rows: int | None = None
) -> None:
    """Detach the database file and attach it again (`attach`): the caller holds the write
    lock and no other cursor of `con`'s database is in use.

    DuckDB keeps in memory, for as long as the file is attached, what it built for each row
    group it wrote or scanned (segments, their statistics and decoder state: about 7 bytes
    per event the loader stored, outside its memory limit); attached anew, it reads them
    back only as queries need them. Temporary tables (the staging's lookups) live in the
    in-memory database and stay. If attaching fails, the file stays detached: `attach`."""
    con.execute("USE memory")
    con.execute(f"DETACH {CATALOG}")
    attach(con, path, row_group_rows)


def merge_row_groups(con: duckdb.DuckDBPyConnection, memory: MemoryLimit) -> bool:
    """Merge the loader's row groups into groups of up to `MERGED_GROUP_ROWS` (at most
    `MAX_GROUPS_MERGED` groups merged); the caller holds the write lock and has attached the
    file with `MERGED_GROUP_ROWS`. Reads may run meanwhile. Returns whether it ran to the end.

    DuckDB merges adjacent row groups itself when it checkpoints a table that changed, into
    groups of the size the file is attached with (its vacuum, made for deleted rows): a
    row group is never split, and the last one, still filling, is left alone. So each table
    is changed without changing its rows (`_touch`) and checkpointed, on one thread (one
    merge in memory at a time) within `duckdb_memory.MERGE_MEMORY` (`_merge`). A read
    running when the checkpoint starts makes it a concurrent one, which does not merge: the
    next merge catches up. If it fails, the rows are as they were: it is logged, not raised (the
    loader's batches are stored; this is upkeep)."""
    row = con.execute("SELECT current_setting('threads')").fetchone()
    threads = int(row[0]) if row else 1
    try:
        con.execute("SET threads = 1")
        con.execute(f"SET max_vacuum_tasks = {MAX_GROUPS_MERGED}")
        try:
            for table in MERGED_TABLES:
                _touch(con, table)
            _merge(con, memory)
        finally:
            con.execute("RESET max_vacuum_tasks")
            con.execute(f"SET threads = {threads}")
    except duckdb.Error:
        log.warning("merging the event store's row groups failed; its rows are as they were",
                    exc_info=True)  # fmt: skip
        return False
    return True


def _merge(con: duckdb.DuckDBPyConnection, memory: MemoryLimit) -> None:
    """The checkpoint that merges: within `MERGE_MEMORY` while only the loader works, and
    if that is too little, as any checkpoint (`checkpoint`)."""
    with memory.merging() as narrowed:
        try:
            con.execute("CHECKPOINT")
            return
        except duckdb.OutOfMemoryException:
            if not narrowed:
                raise
    checkpoint(con, memory)


def _touch(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Change `table` without changing its rows (its last row deleted and inserted again,
    in one transaction), so that the next checkpoint rewrites it: DuckDB checkpoints only the
    tables that changed, and an UPDATE does not count."""
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute(f"SELECT max(rowid) FROM {table}").fetchone()
        if row and row[0] is not None:
            con.execute(f"INSERT INTO {table} SELECT * FROM {table} WHERE rowid = ?", [row[0]])
            con.execute(f"DELETE FROM {table} WHERE rowid = ?", [row[0]])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def checkpoint(con: duckdb.DuckDBPyConnection, memory: MemoryLimit) -> None:
    """CHECKPOINT within the limit in force: `INGEST_MEMORY` while only the loader works
    (duckdb_memory.py). A checkpoint takes whatever the limit leaves it: within 256MB,
    every one held DuckDB at 236-239 MB for 0.3-1.2 s and set the store's peak. One that
    does not fit runs again within the configured limit."""
    try:
        con.execute("CHECKPOINT")
    except duckdb.OutOfMemoryException:
        with memory.wide():
            con.execute("CHECKPOINT")
