"""The event store interface the loader and the API use."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from cadlink.store.events.staged import Staged, Staging

if TYPE_CHECKING:
    import pyarrow as pa

    from cadlink.store.events.arrow_schema import EVENT_ARROW_SCHEMA as EVENT_ARROW_SCHEMA


def __getattr__(name: str) -> object:
    # pyarrow costs the server ~25 MB resident; only exports, imports and the PostgreSQL store
    # need it, so the Arrow schema (and pyarrow) loads on first use.
    if name == "EVENT_ARROW_SCHEMA":
        from cadlink.store.events.arrow_schema import EVENT_ARROW_SCHEMA

        return EVENT_ARROW_SCHEMA
    raise AttributeError(name)


class ReportTooLarge(Exception):
    """A report's statement needed more memory than the event store may use (DuckDB's
    `CADLINK_DUCKDB_MEMORY_LIMIT`, shared by the statements that run at the same time)."""


# A buffer position of this value is a once-marker (a queue's entry, redis_stream.py): a load
# carrying one that is committed already raises `AlreadyStored` and writes nothing. Spool
# positions are byte offsets after loaded records, never 0.
ONCE = 0


class AlreadyStored(Exception):
    """A load carried once-markers that are committed already: another loader stored those
    records meanwhile (it held them while this one was thought dead, or the other way
    round). Nothing of the load was written."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(f"{len(keys)} buffer records were stored already")
        self.keys = keys

    def __reduce__(self) -> tuple[type[AlreadyStored], tuple[list[str]]]:
        return (AlreadyStored, (self.keys,))


def once_markers(positions: dict[str, int]) -> list[str]:
    return [key for key, position in positions.items() if position == ONCE]


@dataclass
class StoreBatch:
    """One loader write: enriched rows, drop counts and the buffer positions they came from.

    The store writes all three in one transaction, which is what makes loading exactly-once:
    a replay after a crash finds the positions already committed, and a replayed row finds
    its `event_id` already stored.
    """

    rows: pa.Table
    drops: dict[tuple[str, date, str], int] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    # Buffer records that could not be loaded, with why: kept in `dead_letters`.
    rejected: list[tuple[bytes, str]] = field(default_factory=list)


@dataclass
class Loaded:
    """What one `load` did: events stored (duplicates excluded) and what staging found."""

    stored: int
    staged: Staged
    # Visitors whose sessions the batch rebuilt from their stored events (late events, ties
    # the ids cannot order: the session upkeep's slow path) instead of merging (DuckDB store).
    sessions_rebuilt: int = 0
    # The batch did not fit DuckDB's ingest memory and was loaded again within the configured
    # limit (DuckDB store; duckdb_memory.py).
    widened: bool = False


@dataclass(frozen=True)
class EventPage:
    rows: list[dict[str, Any]]
    next_cursor: tuple[datetime, str] | None


class EventStore(Protocol):
    engine: str  # "duckdb" | "postgresql": which SQL dialect `fetch` speaks

    def init_schema(self) -> None: ...

    def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Run a read-only statement built by the query layer; rows as dicts."""

    def stream(
        self, table: str, site_id: str, start: datetime, end: datetime, batch_rows: int = 50_000
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """`events` or `sessions` rows in time order as Arrow batches, in constant memory."""

    def write(self, batch: StoreBatch) -> int:
        """Store a batch; returns how many new events were stored (duplicates excluded)."""

    def load(
        self,
        records: bytes | bytearray,
        positions: dict[str, int],
        staging: Staging,
        rejected: list[tuple[bytes, str]] | None = None,
        *,
        busy: bool = False,
    ) -> Loaded:
        """Enrich buffer records (whole lines, staging.py) and store them with the buffer
        positions they end at (and any records that cannot be loaded, as dead letters), in
        one transaction. `busy`: requests keep arriving, so take as little CPU at a time as
        the engine allows rather than loading fastest. A `bytearray` is emptied once staged
        (the store keeps its own copy, on disk): the loader's batch is not held twice."""

    def append(self, batch: StoreBatch) -> int:
        """Bulk-append generated/imported rows (no duplicate check, no session upkeep)."""

    def rebuild_sessions(self, site_id: str) -> int:
        """Recompute every session of a site from its events (after `append`)."""

    def erase_visitors(self, site_id: str, visitor_ids: Sequence[int]) -> dict[str, int]:
        """Delete every row of these visitors of the site (events, sessions, rollups) in one
        transaction; rows deleted per table (store/events/subjects.py)."""

    def positions(self) -> dict[str, int]:
        """Buffer positions committed so far."""

    def forget_positions(self, segments: list[str]) -> None: ...

    def settle(self) -> None:
        """The loader has stored nothing for a while: put what it wrote into its resting form
        (DuckDB checkpoints it; PostgreSQL has nothing to do)."""

    def upkeep(self) -> None:
        """The loader keeps up (its last batch did not fill, or there was nothing to load):
        do the upkeep that waits for that, a few seconds at most (DuckDB merges the loader's
        row groups once enough were written; PostgreSQL has none)."""

    def list_events(
        self,
        site_id: str,
        start: datetime,
        end: datetime,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> EventPage: ...

    def list_sessions(
        self, site_id: str, start: datetime, end: datetime, limit: int
    ) -> list[dict[str, Any]]: ...

    def dropped(self, site_id: str, start: date, end: date) -> list[dict[str, Any]]: ...

    def dead_letters(self) -> list[dict[str, Any]]:
        """Accepted buffer records the loader could not load (`stored_at`, `error`,
        `payload`), oldest first."""
        ...

    def count_events(self, site_id: str | None = None) -> int: ...

    def ping(self) -> dict[str, Any]: ...

    def memory(self) -> dict[str, int]:
        """Bytes of this process's memory the store accounts for, by use (empty for a store
        whose memory is another server's)."""
        ...

    def close(self) -> None: ...


def duckdb_path(url: str) -> str | None:
    """The file of a `duckdb://` events URL ("" for an in-memory store), None for another
    engine's. As SQLAlchemy's sqlite URLs: duckdb:///relative/path, duckdb:////absolute/path."""
    if not url.startswith("duckdb://"):
        return None
    path = url.removeprefix("duckdb://")
    return path[1:] if path.startswith("/") else path


def open_event_store(
    url: str,
    session_timeout_minutes: int = 30,
    dedup_window_hours: int = 1,
    duckdb_memory_limit: str = "",
) -> EventStore:
    """Pick the event store from its URL (`duckdb:///path` or `postgresql://…`)."""
    if url.startswith("duckdb://"):
        from cadlink.store.events.duckdb_store import DuckDBEventStore

        return DuckDBEventStore(
            duckdb_path(url) or ":memory:",
            session_timeout_minutes=session_timeout_minutes,
            dedup_window_hours=dedup_window_hours,
            memory_limit=duckdb_memory_limit,
        )
    scheme, sep, rest = url.partition("://")
    if sep and scheme in {"postgresql", "postgres", "postgresql+psycopg"}:
        from cadlink.store.events.postgres_store import PostgresEventStore

        # libpq takes postgresql:// URLs; a SQLAlchemy driver suffix is accepted and dropped.
        return PostgresEventStore(
            f"postgresql://{rest}",
            session_timeout_minutes=session_timeout_minutes,
            dedup_window_hours=dedup_window_hours,
        )
    raise ValueError(
        f"unsupported CADLINK_EVENTS_URL scheme in {url!r}; use duckdb:///path or postgresql://…"
    )
