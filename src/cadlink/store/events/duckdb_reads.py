"""The DuckDB event store's reads: raw events and sessions, drop counts, dead letters,
exports and the query layer's statements, each on its own cursor of the store's connection
(DuckDB runs cursors concurrently with the loader's writes)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from cadlink.events import EVENT_COLUMN_NAMES
from cadlink.store.events.base import EventPage, ReportTooLarge
from cadlink.store.events.duckdb_memory import MemoryLimit

if TYPE_CHECKING:
    import pyarrow as pa

EVENT_COLUMNS = ", ".join(EVENT_COLUMN_NAMES)
_SESSION_COLUMNS = "* EXCLUDE (last_event_id)"  # the store's own bookkeeping stays inside
# The query layer's statements that run at once; the others wait for a slot. They share
# DuckDB's memory limit: over 10 M events at the default 256MB, four dashboards opened at once
# (twelve statements) ran out of it in half the cases, while one dashboard's own three
# statements side by side fit. On two cores the wait costs no throughput: DuckDB already
# runs each statement on every core.
REPORT_SLOTS = 3


class ReadsInFlight:
    """Counts the reads running on the store's cursors, so that the store can attach its
    file anew (`duckdb_file.attach_anew`) when none is: a read that starts meanwhile waits for
    it (about 15 ms)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._paused = False

    @contextlib.contextmanager
    def one(self) -> Iterator[None]:
        with self._cond:
            while self._paused:
                self._cond.wait()
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def paused(self, wait: float = 0.0) -> Iterator[bool]:
        """Hold new reads while the block runs; yields False (and holds none) if a read is
        still running after `wait` seconds (new ones held meanwhile), so that the caller
        does not wait for a long one (an export)."""
        with self._cond:
            self._paused = True
            deadline = time.monotonic() + wait
            while self._running and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            if self._running:
                self._paused = False
                self._cond.notify_all()
                yield False
                return
        try:
            yield True
        finally:
            with self._cond:
                self._paused = False
                self._cond.notify_all()


class DuckDBReads:
    """Mixed into `DuckDBEventStore`, which opens `_con` and makes `_report_slots` and
    `_reads` (reads in flight; the store attaches its file anew only when there are none)."""

    _con: duckdb.DuckDBPyConnection
    _report_slots: threading.BoundedSemaphore
    _memory: MemoryLimit
    _catalog: str  # the database file's catalog ("" for an in-memory store)
    _reads: ReadsInFlight

    @contextlib.contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one read, closed after it."""
        with self._reads.one():
            cur = self._con.cursor()
            try:
                if self._catalog:
                    cur.execute(f"USE {self._catalog}")  # a new cursor starts in-memory
                yield cur
            finally:
                cur.close()

    def list_events(
        self,
        site_id: str,
        start: datetime,
        end: datetime,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> EventPage:
        params: dict[str, Any] = {"site": site_id, "start": start, "end": end, "limit": limit + 1}
        keyset = ""
        if after is not None:
            keyset = "AND (ts, event_id) > ($after_ts, $after_id)"
            params |= {"after_ts": after[0], "after_id": after[1]}
        with self._reading() as cur:
            cur.execute(
                f"""
                SELECT {EVENT_COLUMNS} FROM analytics_events
                WHERE site_id = $site AND ts >= $start AND ts < $end {keyset}
                ORDER BY ts, event_id LIMIT $limit
                """,
                params,
            )
            rows = _dicts(cur)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = (rows[-1]["ts"], rows[-1]["event_id"])
        return EventPage(rows=rows, next_cursor=next_cursor)

    def list_sessions(
        self, site_id: str, start: datetime, end: datetime, limit: int
    ) -> list[dict[str, Any]]:
        with self._reading() as cur:
            cur.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE site_id = ? AND started_at >= ? "
                "AND started_at < ? "
                "ORDER BY started_at, session_key LIMIT ?",
                [site_id, start, end, limit],
            )
            return _dicts(cur)

    def dead_letters(self) -> list[dict[str, Any]]:
        """Buffer records the loader could not load, oldest first."""
        with self._reading() as cur:
            cur.execute("SELECT stored_at, error, payload FROM dead_letters ORDER BY stored_at, n")
            return _dicts(cur)

    def dropped(self, site_id: str, start: date, end: date) -> list[dict[str, Any]]:
        with self._reading() as cur:
            cur.execute(
                "SELECT day, reason, count FROM dropped_events "
                "WHERE site_id = ? AND day BETWEEN ? AND ? ORDER BY day, reason",
                [site_id, start, end],
            )
            return _dicts(cur)

    def count_events(self, site_id: str | None = None) -> int:
        with self._reading() as cur:
            if site_id is None:
                row = cur.execute("SELECT count(*) FROM analytics_events").fetchone()
            else:
                row = cur.execute(
                    "SELECT count(*) FROM analytics_events WHERE site_id = ?", [site_id]
                ).fetchone()
        return int(row[0]) if row else 0

    def stream(
        self, table: str, site_id: str, start: datetime, end: datetime, batch_rows: int = 50_000
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Rows of `events` or `sessions` in time order, as Arrow batches (constant memory)."""
        if table == "events":
            sql = (
                f"SELECT {EVENT_COLUMNS} FROM analytics_events WHERE site_id = ? AND ts >= ? "
                "AND ts < ? ORDER BY ts, event_id"
            )
        elif table == "sessions":
            sql = (
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE site_id = ? AND started_at >= ? "
                "AND started_at < ? ORDER BY started_at, session_key"
            )
        else:
            raise ValueError(f"cannot stream {table!r}")
        with contextlib.ExitStack() as stack:
            cur = stack.enter_context(self._reading())
            reader: pa.RecordBatchReader = cur.sql(
                sql, params=[site_id, start, end]
            ).to_arrow_reader(batch_rows)
            return reader.schema, _Held(reader, stack.pop_all())

    def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Run a read-only statement from the query layer on a reader cursor, once one of the
        `REPORT_SLOTS` is free, with the configured memory limit (duckdb_memory.py)."""
        with self._report_slots, self._memory.wide():
            return self._fetch(sql, params)

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        with self._reading() as cur:
            try:
                cur.execute(sql, list(params))
                return _dicts(cur)
            except duckdb.OutOfMemoryException:
                # Not the caller's fault, and not a crash: say what to change (DuckDB's own
                # message lists settings of its own the product does not expose). The limit
                # is the one reports run with (`wide`); asking DuckDB for it could fail too,
                # while the report's neighbours still hold the memory.
                limit = self._memory.configured or "its limit"
                raise ReportTooLarge(
                    f"this report needs more memory than the event store may use ({limit}, "
                    "shared by the reports running at the same time): try again, choose a "
                    "shorter period, or raise CADLINK_DUCKDB_MEMORY_LIMIT"
                ) from None

    def memory(self) -> dict[str, int]:
        """DuckDB's own accounting, by tag (cached blocks, rows not yet checkpointed, hash
        tables, …); its allocator's spare pages are not in it."""
        sql = (
            "SELECT lower(tag), memory_usage_bytes FROM duckdb_memory() "
            "WHERE memory_usage_bytes > 0"
        )
        with self._reading() as cur:
            rows = cur.execute(sql).fetchall()
        return {str(tag): int(n) for tag, n in rows}


class _Held:
    """`reader`'s batches; the read (and its cursor) ends when they do, when the caller
    closes this iterator, or when it is dropped (even unstarted)."""

    def __init__(self, reader: pa.RecordBatchReader, reading: contextlib.ExitStack) -> None:
        self._reader: pa.RecordBatchReader | None = reader
        self._reading = reading  # holds the read (`_reading`) until closed

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self

    def __next__(self) -> pa.RecordBatch:
        if self._reader is None:
            raise StopIteration
        try:
            return self._reader.read_next_batch()
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        if self._reader is not None:
            self._reader = None
            self._reading.close()

    def __del__(self) -> None:
        self.close()


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
