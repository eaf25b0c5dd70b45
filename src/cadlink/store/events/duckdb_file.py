"""The event store's database file: how it is opened, and when its write-ahead log is
checkpointed (duckdb_store.py calls these; the limits are duckdb_memory.py's)."""

from __future__ import annotations

import logging
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


def reattach(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Detach the database file and attach it again, as `open_database` did (the caller
    holds the write lock and no other cursor of `con`'s database is in use).

    DuckDB keeps in memory, for as long as the file is attached, what it built for each row
    group it wrote or scanned (segments, their statistics and decoder state: about 7 bytes
    per event the loader stored, outside its memory limit); attached anew, it reads them
    back only as queries need them. Temporary tables (the staging's lookups) live in the
    in-memory database and stay. If attaching fails, the file stays detached: `attach`."""
    con.execute("USE memory")
    con.execute(f"DETACH {CATALOG}")
    attach(con, path)


def attach(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Attach the database file to `con`'s in-memory database as `CATALOG`, its default
    (unless it is attached already: a reattach that failed before detaching)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [CATALOG]
    ).fetchone()
    if not (row and row[0]):
        escaped = path.replace("'", "''")
        con.execute(f"ATTACH '{escaped}' AS {CATALOG} (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
    con.execute(f"USE {CATALOG}")


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
