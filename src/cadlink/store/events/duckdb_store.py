"""The embedded event store: one DuckDB file, one writer, many readers.

DuckDB allows a single writing process. The loader thread owns `self._con` for writes; API
reads use cursors (`con.cursor()`), which DuckDB runs concurrently with the writer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from cadlink.events import EVENT_COLUMN_NAMES
from cadlink.store.events import rollups
from cadlink.store.events.base import EventPage, StoreBatch
from cadlink.store.events.duckdb_schema import (
    EVENTS_DDL,
    SCHEMA_VERSION,
    SESSIONS_DDL,
    SESSIONS_MIGRATIONS,
    SUPPORT_DDL,
)
from cadlink.store.events.duckdb_sessions import (
    BOUNCE_MAX_MS,
    DELETE_SQL,
    FAST_DELETE_SQL,
    FAST_INSERT_SQL,
    FAST_SQL,
    INSERT_SQL,
    RUNS_SQL,
    SLOW_AFFECTED_SQL,
    VISITORS_SQL,
)

_COLUMNS = ", ".join(EVENT_COLUMN_NAMES)
_ADD_ROLLUPS = [rollups.render(sql, "duckdb") for sql in rollups.add_statements()]
_COMPACT_ROLLUPS = [rollups.render(sql, "duckdb") for sql in rollups.compact_statements()]
_SESSION_COLUMNS = "* EXCLUDE (last_event_id)"  # the store's own bookkeeping stays inside


# DuckDB checkpoints (compresses the write-ahead log's rows into the database file) once the
# log holds this much. Its default, 16MB, is about two loader batches: every checkpoint then
# re-compresses the same partly filled row groups again, and commits took 6.8 µs per event
# (40 k-event batches, 600 k stored); at 64MB they take 3.0 µs, the loader's whole write
# 14.8 -> 10.8 µs, and peak memory is lower too (fewer, larger checkpoints).
CHECKPOINT_THRESHOLD = "64MB"


class DuckDBEventStore:
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
        self._compacted_at = 0.0  # time.monotonic() of the last rollup compaction
        config: dict[str, str | bool | int | float | list[str]] = {
            "checkpoint_threshold": CHECKPOINT_THRESHOLD
        }
        if memory_limit:
            config["memory_limit"] = memory_limit
        self._con = duckdb.connect(path, config=config)
        self._write_lock = threading.Lock()
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

    def _reader(self) -> duckdb.DuckDBPyConnection:
        return self._con.cursor()

    # -- writes ---------------------------------------------------------------------------

    def write(self, batch: StoreBatch) -> int:
        with self._write_lock:
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                inserted = self._insert(con, batch) if batch.rows.num_rows else 0
                self._add_drops(con, batch.drops)
                for n, (payload, why) in enumerate(batch.rejected):
                    con.execute(
                        "INSERT INTO dead_letters VALUES (now(), ?, ?, ?)", [n, why, payload]
                    )
                for segment, position in batch.positions.items():
                    con.execute(
                        "INSERT OR REPLACE INTO loader_positions VALUES (?, ?)", [segment, position]
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return inserted

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
        with self._write_lock:
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("batch_in", batch.rows)
                con.execute(
                    f"INSERT INTO analytics_events SELECT {_COLUMNS} FROM batch_in "
                    "ORDER BY site_id, ts"
                )
                con.unregister("batch_in")
                self._add_drops(con, batch.drops)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return int(batch.rows.num_rows)

    def rebuild_sessions(self, site_id: str) -> int:
        """Recompute every session of a site from its events; returns the session count."""
        with self._write_lock:
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE affected AS SELECT site_id, visitor_id, "
                    "min(ts) AS lo, max(ts) AS hi FROM analytics_events WHERE site_id = ? "
                    "GROUP BY ALL",
                    [site_id],
                )
                bounds = con.execute("SELECT min(lo), max(hi) FROM affected").fetchone()
                con.execute("DELETE FROM sessions WHERE site_id = ?", [site_id])
                con.execute("DELETE FROM rollup_dirty_hours WHERE site_id = ?", [site_id])
                for table in rollups.TABLES:
                    for sql in table.rebuild():
                        con.execute(rollups.render(sql, "duckdb"), {"site": site_id})
                if bounds is not None and bounds[0] is not None:
                    con.execute(
                        INSERT_SQL,
                        {"gap": self.gap_seconds, "lo": bounds[0], "hi": bounds[1],
                         "bounce_ms": BOUNCE_MAX_MS},
                    )  # fmt: skip
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            row = con.execute(
                "SELECT count(*) FROM sessions WHERE site_id = ?", [site_id]
            ).fetchone()
        return int(row[0]) if row else 0

    def _insert(self, con: duckdb.DuckDBPyConnection, batch: StoreBatch) -> int:
        rows = self._new_rows(con, batch.rows)
        if not rows.num_rows:
            return 0
        newest = pc.max(rows.column("ts")).as_py()
        # The sessions and rollup upkeep read the new rows as `new_rows`: a view of the
        # Arrow table, not a copy.
        con.register("new_rows", rows)
        try:
            con.execute(
                f"INSERT INTO analytics_events SELECT {_COLUMNS} FROM new_rows ORDER BY site_id, ts"
            ).fetchall()  # completes the statement before the view goes
            self._rebuild_sessions(con, rows)
            for sql in _ADD_ROLLUPS:
                con.execute(sql)
            self._compact_rollups(con, newest)
        finally:
            con.unregister("new_rows")
        return int(rows.num_rows)

    def _new_rows(self, con: duckdb.DuckDBPyConnection, rows: pa.Table) -> pa.Table:
        """The batch without the rows to skip: repeats of an event id inside the batch (the
        earliest arrival stays) and ids already stored.

        A repeat carries the original's event time (tracker retries resend the event as it
        was; a replayed buffer record is identical), so searching stored rows whose time is
        within the window of the batch finds it, and reads only those row groups. Only the
        key columns take part, and the answer is the (usually empty) list of rows to drop, so
        the batch itself is never copied.
        """
        ts = rows.column("ts")
        lo = pc.min(ts).as_py() - self.dedup_window
        hi = pc.max(ts).as_py() + self.dedup_window
        keys = pa.table(
            {
                "i": pa.array(range(rows.num_rows), pa.int64()),
                "site_id": rows.column("site_id"),
                "event_id": rows.column("event_id"),
                "received_at": rows.column("received_at"),
            }
        )
        con.register("batch_keys", keys)
        try:
            drop = con.execute(
                """
                SELECT i FROM (
                    SELECT i, row_number() OVER (
                        PARTITION BY site_id, event_id ORDER BY received_at, i
                    ) AS rn
                    FROM batch_keys
                ) WHERE rn > 1
                UNION ALL
                SELECT b.i FROM batch_keys b
                WHERE EXISTS (
                    SELECT 1 FROM analytics_events e
                    WHERE e.ts >= $lo AND e.ts <= $hi AND e.site_id = b.site_id
                      AND e.event_id = b.event_id
                )
                """,
                {"lo": lo, "hi": hi},
            ).fetchall()
        finally:
            con.unregister("batch_keys")
        if not drop:
            return rows
        skip = pa.array(sorted({int(i) for (i,) in drop}), pa.int64())
        return rows.filter(pc.invert(pc.is_in(keys.column("i"), value_set=skip)))

    def _compact_rollups(self, con: duckdb.DuckDBPyConnection, newest: datetime) -> None:
        """Merge the rollup rows of the hours before `newest`'s, at most once a minute."""
        now = time.monotonic()
        if now - self._compacted_at < rollups.COMPACT_EVERY_SECONDS:
            return
        self._compacted_at = now
        before = int(newest.timestamp()) // 3600
        for sql in _COMPACT_ROLLUPS:
            con.execute(sql, {"before": before} if "$before" in sql else None)

    def _rebuild_sessions(self, con: duckdb.DuckDBPyConnection, rows: pa.Table) -> None:
        """Bring the sessions of the visitors in `rows` (the new rows, stored already) up to
        date (duckdb_sessions.py): merge where their new events follow their stored
        sessions, else rebuild from the stored events."""
        gap = self.gap_seconds
        since = pc.min(rows.column("ts")).as_py() - timedelta(seconds=gap)
        con.register("new_runs", _numbered(rows, gap * 1_000_000))
        try:
            con.execute(RUNS_SQL)
        finally:
            con.unregister("new_runs")
        con.execute(VISITORS_SQL, {"gap": gap, "since": since})
        con.execute(FAST_SQL, {"since": since, "bounce_ms": BOUNCE_MAX_MS})
        con.execute(FAST_DELETE_SQL, {"since": since})
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

    def forget_positions(self, segments: list[str]) -> None:
        if not segments:
            return
        with self._write_lock:
            self._con.execute(
                "DELETE FROM loader_positions WHERE list_contains(?, segment)", [segments]
            )

    # -- reads ----------------------------------------------------------------------------

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
            SELECT {_COLUMNS} FROM analytics_events
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
                f"SELECT {_COLUMNS} FROM analytics_events WHERE site_id = ? AND ts >= ? "
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
        """Run a read-only statement from the query layer on a reader cursor."""
        cur = self._reader()
        cur.execute(sql, list(params))
        return _dicts(cur)

    def ping(self) -> dict[str, Any]:
        row = self._reader().execute("SELECT version()").fetchone()
        return {"engine": "duckdb", "version": row[0] if row else None, "path": self.path}

    def close(self) -> None:
        with self._write_lock:
            self._con.close()


def _numbered(rows: pa.Table, gap_us: int) -> pa.Table:
    """`rows` with `seq`, each row's position in (site, visitor, time, event id) order, and
    `n`, its run: a new run starts at each visitor's first event and after every gap longer
    than `gap_us` microseconds. The numbering INSERT_SQL's window functions give, done with
    Arrow kernels on the key columns only."""
    order = pc.sort_indices(
        rows.select(["site_id", "visitor_id", "ts", "event_id"]),
        sort_keys=[(k, "ascending") for k in ("site_id", "visitor_id", "ts", "event_id")],
    )
    site = rows.column("site_id").take(order)
    visitor = rows.column("visitor_id").take(order)
    micros = pc.cast(pc.cast(rows.column("ts"), pa.timestamp("us", "UTC")), pa.int64())
    us = micros.take(order)
    same_visitor = pc.and_(pc.equal(site[1:], site[:-1]), pc.equal(visitor[1:], visitor[:-1]))
    continues = pc.and_(same_visitor, pc.less_equal(pc.subtract(us[1:], us[:-1]), gap_us))
    starts = pa.chunked_array(
        [pa.array([1], pa.int64()), pc.cast(pc.invert(continues), pa.int64())]
    )
    runs = pc.cumulative_sum(starts)
    seq = pc.sort_indices(order)  # inverse permutation: row i is at position seq[i]
    return rows.append_column("seq", seq).append_column("n", runs.take(seq))


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
