"""DuckDB's memory limit, by what the store is doing.

The limit is the database's, not a statement's, and DuckDB keeps cached blocks of the file up
to it. The loader alone needs little: with the store's small row groups (duckdb_store.py) a
16 MiB batch and its checkpoints fit `INGEST_MEMORY`, at the same CPU per event as at 256MB
(docs/benchmarks.md). Reports and bulk loads want the configured limit
(`CADLINK_DUCKDB_MEMORY_LIMIT`): a report over 10 M events needs most of 256MB.

So the limit is `INGEST_MEMORY` while only the loader works, and the configured one from the
moment a report (or a bulk load) starts until `REPORT_LINGER_S` after the last one ended: the
blocks a dashboard reads stay cached while someone is using it, and a server nobody looks at
stays small. The loader lowers it between its batches (never inside one).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import duckdb

INGEST_MEMORY = "64MB"
# What merging the loader's row groups may use while the ingest limit is in force
# (`merging`): on the 10 M-event benchmark store a merge of 128 row groups raised the process
# by 88 MB within 64MB, 56 within 32MB and 47 within 24MB, 25% slower than at 64MB either way;
# at 16MB it failed. Within this, a merge holds less than a loader batch.
MERGE_MEMORY = "32MB"
# How long the configured limit outlives the last report: the reports of one dashboard view
# follow each other within seconds, and a user clicking through stays within a minute.
REPORT_LINGER_S = 60.0


class MemoryLimit:
    """Raises DuckDB's limit for reports and bulk work; lowers it when they are over."""

    def __init__(self, con: duckdb.DuckDBPyConnection, configured: str) -> None:
        self._cur = con.cursor()  # for SET only (under `_lock`): the limit is the database's
        row = self._cur.execute("SELECT current_setting('memory_limit')").fetchone()
        current = str(row[0]) if row else ""  # DuckDB's spelling ("244.1 MiB"), whatever ours
        self.configured = configured or current
        # A configured limit at or below INGEST_MEMORY is kept for everything.
        self.ingest = INGEST_MEMORY if _bytes(current) > _bytes(INGEST_MEMORY) else None
        self._lock = threading.Lock()
        self._running = 0  # reports and bulk loads running now
        self._raised = True  # the configured limit is in force
        self._quiet_since = float("-inf")  # when the last of them ended
        self.lower_when_quiet()

    @property
    def lowered(self) -> bool:
        """Whether `INGEST_MEMORY` is in force (not the configured limit)."""
        return not self._raised

    def configure(self, limit: str) -> None:
        """Give reports and bulk loads `limit` from their next statement on."""
        with self._lock:
            self.configured = limit
            if self._raised or self.ingest is None:
                self._set(limit)

    @contextlib.contextmanager
    def wide(self) -> Iterator[None]:
        """Run a report or a bulk load with the configured limit."""
        with self._lock:
            self._running += 1
            if not self._raised:
                self._set(self.configured)  # raising always succeeds
                self._raised = True
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._quiet_since = time.monotonic()

    @contextlib.contextmanager
    def merging(self) -> Iterator[bool]:
        """Run a merge of row groups within `MERGE_MEMORY` if the ingest limit is in force
        (yields whether it is); a report that starts meanwhile raises the limit as usual,
        and keeps it."""
        with self._lock:
            narrowed = not self._raised and self.ingest is not None and self._set(MERGE_MEMORY)
        try:
            yield narrowed
        finally:
            if narrowed:
                with self._lock:
                    if not self._raised and self.ingest is not None:
                        self._set(self.ingest)

    def lower_when_quiet(self) -> bool:
        """Go back to `INGEST_MEMORY` when nothing wide has run for `REPORT_LINGER_S` (the
        loader calls this between batches). True if the limit is now the ingest one."""
        if self.ingest is None:
            return False
        with self._lock:
            if not self._raised:
                return True
            if self._running or time.monotonic() - self._quiet_since < REPORT_LINGER_S:
                return False
            # Lowered, DuckDB first evicts cached blocks; what it cannot free (a statement
            # still holding memory) fails the SET, and the next call tries again.
            self._raised = not self._set(self.ingest)
            return not self._raised

    def _set(self, limit: str) -> bool:
        try:
            self._cur.execute(f"SET memory_limit = '{limit}'")
        except duckdb.Error:
            return False
        return True


_UNITS = {"": 1, "b": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def _bytes(limit: str) -> float:
    """A DuckDB memory size ("128MB", "244.1 MiB") in bytes; 0 for one it does not know."""
    number = limit.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ")
    try:
        return float(number) * _UNITS[limit[len(number) :].strip().lower()]
    except (ValueError, KeyError):
        return 0.0
