"""The DuckDB event store's reads: raw events and sessions, drop counts, dead letters,
exports and the query layer's statements, each on its own cursor of the store's connection
(DuckDB runs cursors concurrently with the loader's writes)."""

from __future__ import annotations

import threading
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


class DuckDBReads:
    """Mixed into `DuckDBEventStore`, which opens `_con` and makes `_report_slots`."""

    _con: duckdb.DuckDBPyConnection
    _report_slots: threading.BoundedSemaphore
    _memory: MemoryLimit
    _catalog: str  # the database file's catalog ("" for an in-memory store)

    def _reader(self) -> duckdb.DuckDBPyConnection:
        cur = self._con.cursor()
        if self._catalog:
            cur.execute(f"USE {self._catalog}")  # a new connection starts in the in-memory one
        return cur

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
        cur = self._reader()
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
        cur = self._reader()
        cur.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE site_id = ? AND started_at >= ? "
            "AND started_at < ? "
            "ORDER BY started_at, session_key LIMIT ?",
            [site_id, start, end, limit],
        )
        return _dicts(cur)

    def dead_letters(self) -> list[dict[str, Any]]:
        """Buffer records the loader could not load, oldest first."""
        cur = self._reader()
        cur.execute("SELECT stored_at, error, payload FROM dead_letters ORDER BY stored_at, n")
        return _dicts(cur)

    def dropped(self, site_id: str, start: date, end: date) -> list[dict[str, Any]]:
        cur = self._reader()
        cur.execute(
            "SELECT day, reason, count FROM dropped_events "
            "WHERE site_id = ? AND day BETWEEN ? AND ? ORDER BY day, reason",
            [site_id, start, end],
        )
        return _dicts(cur)

    def count_events(self, site_id: str | None = None) -> int:
        cur = self._reader()
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
        relation = self._reader().sql(sql, params=[site_id, start, end])
        reader: pa.RecordBatchReader = relation.to_arrow_reader(batch_rows)
        return reader.schema, iter(reader)

    def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Run a read-only statement from the query layer on a reader cursor, once one of the
        `REPORT_SLOTS` is free, with the configured memory limit (duckdb_memory.py)."""
        with self._report_slots, self._memory.wide():
            return self._fetch(sql, params)

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        cur = self._reader()
        try:
            cur.execute(sql, list(params))
            return _dicts(cur)
        except duckdb.OutOfMemoryException:
            # Not the caller's fault, and not a crash: say what to change (DuckDB's own
            # message lists settings of its own the product does not expose).
            row = cur.execute("SELECT current_setting('memory_limit')").fetchone()
            limit = row[0] if row else "its limit"
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
        rows = self._reader().execute(sql).fetchall()
        return {str(tag): int(n) for tag, n in rows}


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
