"""What only the PostgreSQL event store has: monthly partitions, COPY, concurrent loaders.

The behaviour every store shares is in test_event_store_contract.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from cadlink.store.events.base import EVENT_ARROW_SCHEMA, StoreBatch, open_event_store
from cadlink.store.events.postgres_store import PostgresEventStore

pytestmark = pytest.mark.postgres

SITE = "site-pg"
T0 = datetime(2026, 1, 31, 23, 50, tzinfo=UTC)


def rows(*events: tuple[int, datetime, str], **extra: Any) -> pa.Table:
    """Events as `(visitor, ts, event_id)`, page views unless `event_type` says otherwise."""
    base: dict[str, Any] = dict.fromkeys(EVENT_ARROW_SCHEMA.names)
    base |= {"site_id": SITE, "event_type": "page_view", "consent": False, "page_path": "/"}
    table = [
        base | {"visitor_id": v, "ts": ts, "received_at": ts, "event_id": eid} | extra
        for v, ts, eid in events
    ]
    return pa.Table.from_pylist(table, schema=EVENT_ARROW_SCHEMA)


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresEventStore]:
    s = open_event_store(postgres_url, 30)
    assert isinstance(s, PostgresEventStore)
    try:
        yield s
    finally:
        s.close()


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as con:
        cur = con.execute(sql)
        return cur.fetchall() if cur.description else []


def test_partitions_are_created_for_the_months_a_batch_touches(
    store: PostgresEventStore, postgres_url: str
) -> None:
    store.write(
        StoreBatch(
            rows(
                (1, T0, "a"),  # 31 January 23:50 ...
                (1, T0 + timedelta(minutes=20), "b"),  # ... 1 February 00:10, one session
                (2, datetime(2025, 12, 15, tzinfo=UTC), "c"),
                (3, datetime(2026, 4, 30, 23, 59, 59, 999_000, tzinfo=UTC), "d"),
            )
        )
    )
    partitions = query(
        postgres_url,
        "SELECT c.relname, (SELECT count(*) FROM analytics_events e WHERE e.tableoid = c.oid) "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'analytics_events'::regclass ORDER BY 1",
    )
    assert partitions == [
        ("analytics_events_default", 0),
        ("analytics_events_p2025_12", 1),
        ("analytics_events_p2026_01", 1),
        ("analytics_events_p2026_02", 1),
        ("analytics_events_p2026_04", 1),
    ]
    [crossing] = store.list_sessions(SITE, T0 - timedelta(hours=1), T0 + timedelta(hours=1), 10)
    assert (crossing["events"], crossing["duration_s"]) == (2, 1200.0)
    # Indexes made on the parent exist on every partition, including the ones made later.
    indexed = query(
        postgres_url,
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'analytics_events_p2026_04'",
    )
    assert indexed == [(4,)]
    # A second store (another process) finds the partitions in place.
    other = open_event_store(postgres_url)
    try:
        assert other.write(StoreBatch(rows((4, T0, "e")))) == 1
        assert other.count_events(SITE) == 5
    finally:
        other.close()


def test_copy_loads_a_20k_row_batch_once(store: PostgresEventStore) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    events = [(i % 700, start + timedelta(seconds=i * 7), f"ev-{i:06d}") for i in range(20_000)]
    batch = rows(*events, page_title='quote " comma , newline \n', properties='{"k":"v"}')
    assert store.write(StoreBatch(batch, positions={"seg": 20_000})) == 20_000
    assert store.count_events(SITE) == 20_000
    assert store.write(StoreBatch(batch, positions={"seg": 20_000})) == 0  # a replay
    assert store.count_events(SITE) == 20_000
    page = store.list_events(SITE, start, start + timedelta(days=30), 3)
    assert [r["event_id"] for r in page.rows] == ["ev-000000", "ev-000001", "ev-000002"]
    assert page.rows[0]["page_title"] == 'quote " comma , newline \n'
    assert page.rows[0]["properties"] == '{"k":"v"}'


def test_nul_characters_are_removed_instead_of_failing_the_batch(
    store: PostgresEventStore,
) -> None:
    batch = rows((1, T0, "a"), page_title="x\x00y", properties='{"k\\u0000":"v\\u0000w"}')
    assert store.write(StoreBatch(batch)) == 1
    [row] = store.list_events(SITE, T0, T0 + timedelta(seconds=1), 10).rows
    assert (row["page_title"], row["properties"]) == ("xy", '{"k":"vw"}')


def test_concurrent_replays_load_each_event_once(postgres_url: str) -> None:
    """Several loaders (processes in server mode) racing on overlapping batches."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    events = [(i % 50, start + timedelta(minutes=i), f"ev-{i}") for i in range(600)]
    batches = [rows(*events[lo : lo + 300]) for lo in (0, 150, 300)]
    stores = [open_event_store(postgres_url, 30) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def loader(i: int) -> None:
        try:
            barrier.wait()
            for batch in batches[i % 3 :] + batches[: i % 3]:
                stores[i].write(StoreBatch(batch))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=loader, args=(i,)) for i in range(len(stores))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert stores[0].count_events(SITE) == 600
        lo, hi = start - timedelta(days=1), start + timedelta(days=2)
        concurrent = stores[0].list_sessions(SITE, lo, hi, 10_000)
    finally:
        for s in stores:
            s.close()
    # The same events loaded once, in one batch, by one loader in a fresh database.
    query(postgres_url, "TRUNCATE analytics_events, sessions")
    single = open_event_store(postgres_url, 30)
    try:
        assert single.write(StoreBatch(rows(*events))) == 600
        assert single.list_sessions(SITE, lo, hi, 10_000) == concurrent
    finally:
        single.close()
    assert sum(s["events"] for s in concurrent) == 600


def test_reads_recover_after_the_server_drops_idle_connections(
    store: PostgresEventStore, postgres_url: str
) -> None:
    assert store.count_events() == 0  # leaves an idle read connection behind
    query(
        postgres_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    assert store.count_events() == 0
    assert store.ping()["engine"] == "postgresql"
    assert store.write(StoreBatch(rows((1, T0, "a")))) == 1  # the writer reconnects


def test_a_writer_frozen_in_its_transaction_does_not_hold_up_the_others(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker stopped (SIGSTOP, a paused VM) inside its batch transaction held the write
    # lock until TCP gave up, and every other worker waited behind it. PostgreSQL now ends a
    # session idle in its transaction (60 s; 1 s here), and the lock goes with it.
    import time

    from cadlink.store.events import postgres_io
    from cadlink.store.events.postgres_schema import WRITE_LOCK_KEY

    monkeypatch.setattr(postgres_io, "IDLE_IN_TRANSACTION_MS", 1000)
    store = open_event_store(postgres_url, 30, 72)
    frozen = postgres_io.connect(postgres_url)
    try:
        frozen.execute("BEGIN")
        frozen.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
        started = time.monotonic()
        store.erase_visitors("site-1", [1])  # takes the same lock
        assert time.monotonic() - started < 30
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            frozen.execute("SELECT 1")  # its session was ended
    finally:
        frozen.close()
        store.close()
