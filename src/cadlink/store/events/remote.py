"""An event store owned by another process: the store process of `cadlink serve`.

DuckDB lets one process open its file, and whatever runs in the web server's process competes
with the request path for the interpreter lock. So `cadlink serve` runs the loader and the
DuckDB store in a child process (pipeline/store_process.py), and the web process reads through
`RemoteEventStore`: each call is one request on a Unix socket, answered by a thread of the
store process on its own DuckDB cursor, so reports still run concurrently. Arguments and
results cross as pickles (datetimes, dates and decimals arrive as they left); an export
streams its Arrow batches one message at a time.

Writes are the store process's alone: the write half of the interface raises here.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from multiprocessing.connection import Client, Connection
from typing import TYPE_CHECKING, Any

from cadlink.store.events.base import EventPage, Loaded, StoreBatch

if TYPE_CHECKING:
    import pyarrow as pa

    from cadlink.store.events.staged import Staging

log = logging.getLogger(__name__)

# Answers on the wire: (OK, value), (ERROR, exception), and for a stream (OK, schema), then
# (BATCH, record batch)…, then (END, None).
OK, ERROR, BATCH, END = "ok", "error", "batch", "end"


class StoreUnavailable(Exception):
    """The store process cannot be reached (starting, restarting after a crash, stopped)."""


class RemoteError(Exception):
    """An error raised in the store process whose exception could not be sent as it was."""


class RemoteEventStore:
    """The read half of `EventStore`, served by the store process at `address`."""

    def __init__(self, address: str, authkey: bytes, engine: str = "duckdb") -> None:
        self.address = address
        self.authkey = authkey
        self.engine = engine
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._closed = threading.Event()

    # -- transport ----------------------------------------------------------------------------

    def _connect(self) -> Connection:
        if self._closed.is_set():
            raise StoreUnavailable("the event store is closed")
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        try:
            return Client(self.address, family="AF_UNIX", authkey=self.authkey)
        except (OSError, EOFError) as e:
            raise StoreUnavailable(f"the event store process is not reachable: {e}") from None

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Run `method(*args)` on the store process's store; its exception is raised here.
        With `timeout`, a store process that has not answered within it is unavailable (a
        report may take long; the keeper's polls may not)."""
        conn, (kind, value) = self._ask(method, args, timeout)
        self._idle.put(conn)
        if kind == ERROR:
            raise value
        return value

    def _ask(
        self, method: str, args: tuple[Any, ...], timeout: float | None = None
    ) -> tuple[Connection, tuple[str, Any]]:
        """Send one request and read the first answer, on a connection the caller then owns;
        a connection left out of step (no answer, an interrupted read) is closed."""
        conn = self._connect()
        try:
            conn.send((method, args))
            if timeout is not None and not conn.poll(timeout):
                conn.close()
                raise StoreUnavailable(f"the event store process did not answer in {timeout} s")
            answer: tuple[str, Any] = conn.recv()
        except (OSError, EOFError) as e:
            conn.close()
            raise StoreUnavailable(f"the event store process went away: {e}") from None
        except BaseException:
            conn.close()
            raise
        return conn, answer

    # -- reads --------------------------------------------------------------------------------

    def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.call("fetch", sql, list(params))
        return rows

    def erase_visitors(self, site_id: str, visitor_ids: Sequence[int]) -> dict[str, int]:
        """The store process erases them (`cadlink gdpr delete` beside a running server)."""
        deleted: dict[str, int] = self.call("erase_visitors", site_id, list(visitor_ids))
        return deleted

    def caught_up(self) -> bool:
        """Whether the store process's loader has stored all the spool holds and the web
        process has recorded every identified user it found."""
        status = self.call("status", 0)  # 0: acknowledges nothing (the keeper does)
        return bool(status.backlog_bytes == 0 and not status.identities)

    def copy_file(self, target: str) -> int:
        """The store process copies its DuckDB file to `target` (`DuckDBEventStore.copy_file`)."""
        size: int = self.call("copy_file", target)
        return size

    def stream(
        self, table: str, site_id: str, start: datetime, end: datetime, batch_rows: int = 50_000
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        conn, (kind, value) = self._ask("stream", (table, site_id, start, end, batch_rows))
        if kind == ERROR:
            self._idle.put(conn)
            raise value
        return value, self._batches(conn)

    def _batches(self, conn: Connection) -> Iterator[pa.RecordBatch]:
        done = False
        try:
            while True:
                try:
                    kind, value = conn.recv()
                except (OSError, EOFError) as e:
                    raise StoreUnavailable(f"the event store process went away: {e}") from None
                if kind == END:
                    done = True
                    return
                if kind == ERROR:
                    done = True
                    raise value
                yield value
        finally:
            # A stream abandoned half way leaves batches on the wire: that connection goes.
            if done:
                self._idle.put(conn)
            else:
                conn.close()

    def list_events(
        self,
        site_id: str,
        start: datetime,
        end: datetime,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> EventPage:
        page: EventPage = self.call("list_events", site_id, start, end, limit, after)
        return page

    def list_sessions(
        self, site_id: str, start: datetime, end: datetime, limit: int
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.call("list_sessions", site_id, start, end, limit)
        return rows

    def dropped(self, site_id: str, start: date, end: date) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.call("dropped", site_id, start, end)
        return rows

    def dead_letters(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.call("dead_letters")
        return rows

    def count_events(self, site_id: str | None = None) -> int:
        return int(self.call("count_events", site_id))

    def ping(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.call("ping")
        return {**answer, "process": "store"}

    def memory(self) -> dict[str, int]:
        """DuckDB's accounting in the store process (whose memory it is)."""
        answer: dict[str, int] = self.call("memory")
        return answer

    def close(self) -> None:
        self._closed.set()
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    # -- the write half belongs to the store process ------------------------------------------

    def _writes_elsewhere(self) -> NotImplementedError:
        return NotImplementedError("the store process writes this event store, not the web process")

    def init_schema(self) -> None:
        raise self._writes_elsewhere()

    def write(self, batch: StoreBatch) -> int:
        raise self._writes_elsewhere()

    def load(
        self,
        records: bytes | bytearray,
        positions: dict[str, int],
        staging: Staging,
        rejected: list[tuple[bytes, str]] | None = None,
        *,
        busy: bool = False,
    ) -> Loaded:
        raise self._writes_elsewhere()

    def append(self, batch: StoreBatch) -> int:
        raise self._writes_elsewhere()

    def rebuild_sessions(self, site_id: str) -> int:
        raise self._writes_elsewhere()

    def positions(self) -> dict[str, int]:
        raise self._writes_elsewhere()

    def forget_positions(self, segments: list[str]) -> None:
        raise self._writes_elsewhere()

    def settle(self) -> None:
        raise self._writes_elsewhere()

    def upkeep(self) -> None:
        raise self._writes_elsewhere()
