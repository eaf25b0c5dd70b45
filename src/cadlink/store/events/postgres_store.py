"""The server-mode event store on PostgreSQL: the `EventStore` contract of the DuckDB store.

Writes go through one writer connection guarded by a lock (the loader thread). A batch is
sent with COPY (`postgres_io.py`) into a temporary staging table, then, in one transaction:
the rows not already stored are inserted, the sessions they touch rebuilt, the drop counts
added and the buffer positions recorded. A transaction-scoped advisory lock serialises that
part across processes, so several loaders still load each event exactly once and never
rebuild the same sessions concurrently. Reads use short autocommit connections kept in a
small idle list (psycopg_pool is not a dependency).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from cadlink.events import EVENT_COLUMN_NAMES
from cadlink.store.events import postgres_bookkeeping, rollups, subjects
from cadlink.store.events.arrow_schema import EVENT_ARROW_SCHEMA
from cadlink.store.events.base import EventPage, Loaded, StoreBatch
from cadlink.store.events.postgres_io import Row, add_drops, arrow_batches, connect, copy_rows
from cadlink.store.events.postgres_schema import (
    DDL_LOCK_KEY,
    DEFAULT_PARTITION_DDL,
    EVENT_INDEXES,
    EVENTS_DDL,
    EVENTS_STREAM_SCHEMA,
    RETIRED_INDEXES,
    SCHEMA_VERSION,
    SESSION_INDEXES,
    SESSIONS_DDL,
    SESSIONS_STREAM_SCHEMA,
    STAGING_DDL,
    SUPPORT_DDL,
    WRITE_LOCK_KEY,
    months_between,
    partition_ddl,
    partition_name,
)
from cadlink.store.events.postgres_sessions import (
    AFFECTED_SQL,
    BOUNCE_MAX_MS,
    BOUNDS_SQL,
    DELETE_SQL,
    INSERT_SQL,
)
from cadlink.store.events.staged import Staged, Staging
from cadlink.store.events.staging import Stager, memory_stager, stage_to_arrow

_COLUMNS = ", ".join(EVENT_COLUMN_NAMES)
_ADD_ROLLUPS = [rollups.render(sql, "postgresql") for sql in rollups.add_statements()]
_COMPACT_ROLLUPS = [rollups.render(sql, "postgresql") for sql in rollups.compact_statements()]
_SELECT_NEW = ", ".join("properties::jsonb" if c == "properties" else c for c in EVENT_COLUMN_NAMES)
_MAX_IDLE_READERS = 4
T = TypeVar("T")


class PostgresEventStore:
    engine = "postgresql"

    def __init__(
        self, url: str, *, session_timeout_minutes: int = 30, dedup_window_hours: int = 1
    ) -> None:
        self.url = url
        self.gap = timedelta(minutes=session_timeout_minutes)
        self.dedup_window = timedelta(hours=dedup_window_hours)
        self._write_lock = threading.Lock()
        self._stager: Stager | None = None
        self._writer_con: psycopg.Connection[Row] | None = None
        self._readers_lock = threading.Lock()
        self._idle_readers: list[psycopg.Connection[Row]] = []
        self._partitions: set[date] = set()
        self._closed = False
        self._compacted_at = 0.0  # time.monotonic() of the last rollup compaction
        self.init_schema()

    # -- connections ----------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Row]:
        return connect(self.url)

    def _writer(self) -> psycopg.Connection[Row]:
        """The writer connection (caller holds `_write_lock`), reconnected after a failure."""
        if self._closed:
            raise RuntimeError("the event store is closed")
        con = self._writer_con
        if con is not None:
            try:
                con.execute("SELECT 1")  # outside any transaction: safe to find it dead here
                return con
            except psycopg.OperationalError:
                con.close()
                self._writer_con = None
        con = self._connect()
        with con.transaction():
            for ddl in STAGING_DDL:
                con.execute(ddl)
        self._writer_con = con
        return con

    @contextmanager
    def _writing(self) -> Iterator[psycopg.Connection[Row]]:
        """The writer in a transaction; a connection that broke is dropped and rebuilt later."""
        with self._write_lock:
            con = self._writer()
            try:
                with con.transaction():
                    yield con
            finally:
                if con.broken:
                    con.close()
                    self._writer_con = None

    def _read(self, fn: Callable[[psycopg.Connection[Row]], T]) -> T:
        """Runs `fn` on an idle read connection (retried once on a fresh one if it went stale)."""
        for attempt in range(2):
            with self._readers_lock:
                con = self._idle_readers.pop() if self._idle_readers else None
            reused = con is not None
            if con is None:
                con = self._connect()
            try:
                result = fn(con)
            except psycopg.OperationalError:
                stale = reused and attempt == 0 and con.broken  # (close() clears `broken`)
                con.close()
                if stale:
                    continue
                raise
            except BaseException:
                con.close()
                raise
            with self._readers_lock:
                if not self._closed and len(self._idle_readers) < _MAX_IDLE_READERS:
                    self._idle_readers.append(con)
                    con = None
            if con is not None:
                con.close()
            return result
        raise AssertionError("unreachable")

    def _fetch(self, query: str, params: dict[str, Any] | list[Any] | None = None) -> list[Row]:
        return self._read(lambda con: con.execute(query, params).fetchall())

    # -- schema ---------------------------------------------------------------------------

    def init_schema(self) -> None:
        with self._writing() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", [DDL_LOCK_KEY])
            for ddl in (EVENTS_DDL, DEFAULT_PARTITION_DDL, *EVENT_INDEXES, SESSIONS_DDL):
                con.execute(ddl)
            for name in RETIRED_INDEXES:
                con.execute(f"DROP INDEX IF EXISTS {name}")
            for ddl in (*SESSION_INDEXES, *SUPPORT_DDL):
                con.execute(ddl)
            con.execute(rollups.render(rollups.DIRTY_DDL, "postgresql"))
            for table in rollups.TABLES:
                name = table.name
                existed = con.execute(
                    "SELECT to_regclass(%s) IS NOT NULL AS present", [name]
                ).fetchone()
                con.execute(rollups.render(table.ddl, "postgresql"))
                con.execute(
                    f"CREATE INDEX IF NOT EXISTS {name}_key "
                    f"ON {name} (site_id, hour_no, visitor_id)"
                )
                if existed is not None and not existed["present"]:
                    # A store from before this rollup existed: derive it once from the events.
                    insert = rollups.render(table.rebuild()[1], "postgresql")
                    for row in con.execute(
                        "SELECT DISTINCT site_id FROM analytics_events"
                    ).fetchall():
                        con.execute(insert, {"site": row["site_id"]})
            con.execute(
                "INSERT INTO schema_info VALUES ('version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [SCHEMA_VERSION],
            )

    def _ensure_partitions(self, rows: pa.Table) -> None:
        """Creates the monthly partitions the batch needs, in a short transaction of its own.

        Outside the load transaction: creating a partition locks the parent table, which must
        not be held for the whole load.
        """
        months = pc.unique(pc.floor_temporal(rows.column("ts"), unit="month")).to_pylist()
        missing = sorted({m.date() for m in months if m is not None} - self._partitions)
        if not missing:
            return
        with self._writing() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", [DDL_LOCK_KEY])
            for month in missing:
                con.execute(partition_ddl(month))
        self._partitions.update(missing)

    # -- writes ---------------------------------------------------------------------------

    def write(self, batch: StoreBatch) -> int:
        rows = batch.rows
        if rows.num_rows:
            self._ensure_partitions(rows)
        with self._writing() as con:
            inserted = self._insert(con, rows) if rows.num_rows else 0
            postgres_bookkeeping.finish(con, batch.drops, batch.positions, batch.rejected)
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
        """Stage buffer records on a private in-memory DuckDB, then `write` its rows."""
        stager = self._stager
        if stager is None or stager.staging is not staging:
            stager = self._stager = memory_stager(staging)
        if records:
            rows, staged = stage_to_arrow(stager, records)
        else:
            rows, staged = EVENT_ARROW_SCHEMA.empty_table(), Staged()
        stored = self.write(StoreBatch(rows, staged.drops, positions, rejected or []))
        return Loaded(stored, staged)

    def append(self, batch: StoreBatch) -> int:
        """Bulk path for generated or imported history: COPY straight into the events table,
        without the duplicate check or session upkeep; call `rebuild_sessions` afterwards."""
        rows = batch.rows
        if rows.num_rows:
            self._ensure_partitions(rows)
        with self._writing() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
            if rows.num_rows:
                copy_rows(con, "analytics_events", rows)
            add_drops(con, batch.drops)
        return int(rows.num_rows)

    def rebuild_sessions(self, site_id: str) -> int:
        """Recompute every session of a site from its events; returns the session count."""
        with self._writing() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
            con.execute(
                "INSERT INTO affected (site_id, visitor_id, lo, hi) "
                "SELECT site_id, visitor_id, min(ts), max(ts) FROM analytics_events "
                "WHERE site_id = %s GROUP BY site_id, visitor_id",
                [site_id],
            )
            con.execute("DELETE FROM sessions WHERE site_id = %s", [site_id])
            con.execute("DELETE FROM rollup_dirty_hours WHERE site_id = %s", [site_id])
            for table in rollups.TABLES:
                for sql in table.rebuild():
                    con.execute(rollups.render(sql, "postgresql"), {"site": site_id})
            self._insert_sessions(con)
            row = con.execute(
                "SELECT count(*) AS n FROM sessions WHERE site_id = %s", [site_id]
            ).fetchone()
        return int(row["n"]) if row else 0

    def erase_visitors(self, site_id: str, visitor_ids: Sequence[int]) -> dict[str, int]:
        """Delete every row of these visitors of the site, in one transaction (after the
        loads' lock: a batch being stored finishes first); rows deleted per table."""
        ids = sorted(set(visitor_ids))
        deleted = dict.fromkeys(subjects.TABLES, 0)
        if not ids:
            return deleted
        with self._writing() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
            for table in subjects.TABLES:
                sql = subjects.marks(subjects.delete_from(table), self.engine)
                deleted[table] = con.execute(sql, [site_id, ids]).rowcount
        return deleted

    def _insert(self, con: psycopg.Connection[Row], rows: pa.Table) -> int:
        copy_rows(con, "tmp_batch", rows)
        ts = rows.column("ts")
        lo = pc.min(ts).as_py() - self.dedup_window
        hi = pc.max(ts).as_py() + self.dedup_window
        # After the lock every statement sees all committed loads (READ COMMITTED).
        con.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
        # One row per event id within the batch, then only ids not already stored. As in the
        # DuckDB store, a repeat carries the original's event time (tracker retries resend the
        # event as it was; a replayed buffer record is identical), so only stored rows within
        # the window of each new row's time match, in the partitions of the months the batch's
        # windows reach. An
        # identical repeat is always found, so the unique index never rejects an INSERT.
        # The plan that stays fast as the table grows probes the dedup index once per new row.
        # Given a time range, the planner (its statistics lagging behind the newest rows)
        # would rather scan the window by (site_id, ts) per new row (measured: 2 s → 30 s per
        # 10k batch). So the partitions of the window are named instead of pruned, the window
        # is a per-row range test no index can take, and OFFSET 0 keeps the EXISTS a per-row probe.
        months = [partition_name(m) for m in months_between(lo.date(), hi.date())]
        found = con.execute(
            "SELECT n FROM unnest(%s::text[]) n WHERE to_regclass(n) IS NOT NULL", [months]
        ).fetchall()
        stored = " UNION ALL ".join(
            f"SELECT site_id, event_id, ts FROM {name}"
            for name in [*(r["n"] for r in found), "analytics_events_default"]
        )
        con.execute(
            f"""
            INSERT INTO new_rows ({_COLUMNS})
            SELECT {_SELECT_NEW} FROM (
                SELECT DISTINCT ON (site_id, event_id) *
                FROM tmp_batch ORDER BY site_id, event_id, received_at
            ) b
            WHERE NOT EXISTS (
                SELECT 1 FROM ({stored}) e
                WHERE e.site_id = b.site_id AND e.event_id = b.event_id
                  AND tstzrange(b.ts - %(window)s, b.ts + %(window)s, '[]') @> e.ts
                OFFSET 0
            )
            """,
            {"window": self.dedup_window},
        )
        cur = con.execute(
            f"INSERT INTO analytics_events ({_COLUMNS}) "
            f"SELECT {_COLUMNS} FROM new_rows ORDER BY site_id, ts"
        )
        inserted = max(cur.rowcount, 0)
        if inserted:
            self._rebuild_sessions(con)
            self._update_rollups(con)
        return inserted

    def _update_rollups(self, con: psycopg.Connection[Row]) -> None:
        """Add the new events' counts to the rollups (rollups.py); merge the rows of the hours
        before the newest one at most once a minute."""
        for sql in _ADD_ROLLUPS:
            con.execute(sql)
        now = time.monotonic()
        if now - self._compacted_at < rollups.COMPACT_EVERY_SECONDS:
            return
        self._compacted_at = now
        row = con.execute(
            f"SELECT max({rollups.render('{hour_e}', 'postgresql')}) AS hour FROM new_rows e"
        ).fetchone()
        if row is None or row["hour"] is None:
            return
        before = {"before": int(row["hour"])}
        for sql in _COMPACT_ROLLUPS:
            con.execute(sql, before if "%(before)s" in sql else None)

    def _rebuild_sessions(self, con: psycopg.Connection[Row]) -> None:
        """The sessions of the visitors in `new_rows`, around the new events."""
        con.execute(AFFECTED_SQL, {"gap": self.gap})
        con.execute(DELETE_SQL)
        self._insert_sessions(con)

    def _insert_sessions(self, con: psycopg.Connection[Row]) -> None:
        """Builds the sessions of the ranges in `affected` (already deleted)."""
        bounds = con.execute(BOUNDS_SQL).fetchone()
        if bounds is None or bounds["lo"] is None:
            return
        params = {"gap": self.gap, "lo": bounds["lo"], "hi": bounds["hi"]}
        con.execute(INSERT_SQL, params | {"bounce_ms": BOUNCE_MAX_MS})

    def positions(self) -> dict[str, int]:
        rows = self._fetch("SELECT segment, position FROM loader_positions")
        return {str(r["segment"]): int(r["position"]) for r in rows}

    def memory(self) -> dict[str, int]:
        """Nothing here: the rows live in PostgreSQL's memory, not this process's."""
        return {}

    def settle(self) -> None:
        """Nothing to do: PostgreSQL checkpoints and vacuums on its own."""

    def upkeep(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum keeps its tables."""

    def forget_positions(self, segments: list[str]) -> None:
        if not segments:
            return
        with self._writing() as con:
            con.execute("DELETE FROM loader_positions WHERE segment = ANY(%s)", [segments])

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
            keyset = "AND (ts, event_id) > (%(after_ts)s, %(after_id)s)"
            params |= {"after_ts": after[0], "after_id": after[1]}
        rows = self._fetch(
            f"""
            SELECT {_COLUMNS} FROM analytics_events
            WHERE site_id = %(site)s AND ts >= %(start)s AND ts < %(end)s {keyset}
            ORDER BY ts, event_id LIMIT %(limit)s
            """,
            params,
        )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = (rows[-1]["ts"], rows[-1]["event_id"])
        return EventPage(rows=rows, next_cursor=next_cursor)

    def list_sessions(self, site_id: str, start: datetime, end: datetime, limit: int) -> list[Row]:
        return self._fetch(
            "SELECT * FROM sessions WHERE site_id = %s AND started_at >= %s AND started_at < %s "
            "ORDER BY started_at, session_key LIMIT %s",
            [site_id, start, end, limit],
        )

    def dead_letters(self) -> list[Row]:
        """Buffer records the loader could not load, oldest first."""
        return self._fetch(
            "SELECT stored_at, error, payload FROM dead_letters ORDER BY stored_at, n"
        )

    def dropped(self, site_id: str, start: date, end: date) -> list[Row]:
        return self._fetch(
            "SELECT day, reason, count FROM dropped_events "
            "WHERE site_id = %s AND day BETWEEN %s AND %s ORDER BY day, reason",
            [site_id, start, end],
        )

    def count_events(self, site_id: str | None = None) -> int:
        if site_id is None:
            rows = self._fetch("SELECT count(*) AS n FROM analytics_events")
        else:
            rows = self._fetch(
                "SELECT count(*) AS n FROM analytics_events WHERE site_id = %s", [site_id]
            )
        return int(rows[0]["n"]) if rows else 0

    def stream(
        self, table: str, site_id: str, start: datetime, end: datetime, batch_rows: int = 50_000
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Rows of `events` or `sessions` in time order, as Arrow batches (constant memory)."""
        if table == "events":
            schema, sql = (
                EVENTS_STREAM_SCHEMA,
                (
                    f"SELECT {_COLUMNS} FROM analytics_events WHERE site_id = %s AND ts >= %s "
                    "AND ts < %s ORDER BY ts, event_id"
                ),
            )
        elif table == "sessions":
            schema, sql = (
                SESSIONS_STREAM_SCHEMA,
                (
                    "SELECT * FROM sessions WHERE site_id = %s AND started_at >= %s "
                    "AND started_at < %s ORDER BY started_at, session_key"
                ),
            )
        else:
            raise ValueError(f"cannot stream {table!r}")
        return schema, arrow_batches(self._connect, sql, [site_id, start, end], schema, batch_rows)

    def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """Run a read-only statement from the query layer (`%s` placeholders)."""
        return self._fetch(sql, list(params))

    def ping(self) -> dict[str, Any]:
        def info(con: psycopg.Connection[Row]) -> dict[str, Any]:
            row = con.execute("SELECT version() AS version").fetchone()
            # No host (a socket directory, or the internal network's) nor database name: this
            # answers the public health probe.
            return {"engine": "postgresql", "version": row["version"] if row else None}

        return self._read(info)

    def close(self) -> None:
        with self._write_lock:
            self._closed = True
            if self._writer_con is not None:
                self._writer_con.close()
                self._writer_con = None
        with self._readers_lock:
            idle, self._idle_readers = self._idle_readers, []
        for con in idle:
            con.close()
