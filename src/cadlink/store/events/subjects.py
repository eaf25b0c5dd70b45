"""A data subject's rows in the event store (GDPR access and erasure), the same SQL on both
engines.

A person is found by the visitor ids their events were stored under: those given (a
consented tracker id hashed as the loader hashes it, or a stored id as the API shows it) and
every visitor id that carried their `userId`. Erasing deletes every row of those visitors on
the site: events, sessions and each rollup (all are keyed by visitor), in one transaction, so
reports never see half a person. Statements use `?` marks; `marks` turns them into the
engine's own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from cadlink.events import EVENT_COLUMN_NAMES
from cadlink.store.events import rollups

EVENT_COLUMNS = ", ".join(EVENT_COLUMN_NAMES)


class Executor(Protocol):
    """A store's read statements (`EventStore.fetch`)."""

    engine: str

    def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]: ...


# Every table holding a visitor's rows, erased in this order (events first: the rest is
# derived from them).
TABLES: tuple[str, ...] = ("analytics_events", "sessions", *(t.name for t in rollups.TABLES))

VISITORS_OF_USER = """
SELECT DISTINCT visitor_id FROM analytics_events WHERE site_id = ? AND user_id = ?
UNION
SELECT DISTINCT visitor_id FROM sessions WHERE site_id = ? AND user_id = ?
"""

# Of the given visitor ids, those the site has events or sessions of.
KNOWN_VISITORS = """
SELECT DISTINCT visitor_id FROM analytics_events
WHERE site_id = ? AND visitor_id IN (SELECT unnest(?::BIGINT[]))
UNION
SELECT DISTINCT visitor_id FROM sessions
WHERE site_id = ? AND visitor_id IN (SELECT unnest(?::BIGINT[]))
"""


def visitors(
    store: Executor, site_id: str, user_ids: Sequence[str], visitor_ids: Sequence[int]
) -> list[int]:
    """The site's visitor ids of a person: those of `visitor_ids` it has rows of, and every
    visitor id that carried one of `user_ids`."""
    found: set[int] = set()
    for user_id in user_ids:
        sql = marks(VISITORS_OF_USER, store.engine)
        found |= {int(r["visitor_id"]) for r in store.fetch(sql, [site_id, user_id] * 2)}
    if visitor_ids:
        sql = marks(KNOWN_VISITORS, store.engine)
        ids = sorted(set(visitor_ids))
        found |= {int(r["visitor_id"]) for r in store.fetch(sql, [site_id, ids] * 2)}
    return sorted(found)


def user_ids(store: Executor, site_id: str, visitor_ids: Sequence[int]) -> list[str]:
    """The user ids the visitors' events carried (after `identify()`)."""
    if not visitor_ids:
        return []
    sql = (
        "SELECT DISTINCT user_id FROM analytics_events "
        "WHERE site_id = ? AND visitor_id IN (SELECT unnest(?::BIGINT[])) "
        "AND user_id IS NOT NULL AND user_id <> ''"
    )
    rows = store.fetch(marks(sql, store.engine), [site_id, sorted(set(visitor_ids))])
    return sorted(str(r["user_id"]) for r in rows)


def events(
    store: Executor, site_id: str, visitor_ids: Sequence[int], page_rows: int = 10_000
) -> Iterator[dict[str, Any]]:
    """The visitors' events in (ts, event_id) order, read a page at a time."""
    ids = sorted(set(visitor_ids))
    after: list[Any] = []
    while ids:
        keyset = "AND (ts, event_id) > (?, ?) " if after else ""
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM analytics_events "
            "WHERE site_id = ? AND visitor_id IN (SELECT unnest(?::BIGINT[])) "
            f"{keyset}ORDER BY ts, event_id LIMIT ?"
        )
        rows = store.fetch(marks(sql, store.engine), [site_id, ids, *after, page_rows])
        yield from rows
        if len(rows) < page_rows:
            return
        after = [rows[-1]["ts"], rows[-1]["event_id"]]


def sessions(store: Executor, site_id: str, visitor_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The visitors' sessions, oldest first (without the store's own bookkeeping)."""
    if not visitor_ids:
        return []
    columns = "* EXCLUDE (last_event_id)" if store.engine == "duckdb" else "*"
    sql = (
        f"SELECT {columns} FROM sessions "
        "WHERE site_id = ? AND visitor_id IN (SELECT unnest(?::BIGINT[])) "
        "ORDER BY started_at, session_key"
    )
    return store.fetch(marks(sql, store.engine), [site_id, sorted(set(visitor_ids))])


def delete_from(table: str) -> str:
    """Delete the visitors' rows of `table` (one of `TABLES`): site, ids."""
    if table not in TABLES:
        raise ValueError(f"{table!r} holds no visitor rows")
    return f"DELETE FROM {table} WHERE site_id = ? AND visitor_id IN (SELECT unnest(?::BIGINT[]))"


def marks(sql: str, engine: str) -> str:
    """`?` placeholders as the engine takes them (psycopg: `%s`). The statements above hold
    no other `?` or `%`."""
    return sql.replace("?", "%s") if engine == "postgresql" else sql
