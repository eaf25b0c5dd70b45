"""The store process of `cadlink serve`: it loads what the web process appends to the spool,
answers the web process's reads, survives its own crash and dies with the web process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from cadlink.config import Settings
from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.buffer import Backlog, SpoolWriter
from cadlink.pipeline.store_process import StoreProcess
from cadlink.pipeline.store_status import IdentityOutbox
from cadlink.services import build_meta
from cadlink.store.events.remote import RemoteError, RemoteEventStore, StoreUnavailable
from cadlink.store.events.staged import Identity
from server_process import process_running

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SITE = "site-remote"


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        secret_key="s" * 40,
        env="test",
        loader_interval_seconds=0.05,
        log_level="warning",
    )


def _put(writer: SpoolWriter, ids: list[str], when: datetime) -> None:
    ms = int(when.timestamp() * 1000)
    for n, event_id in enumerate(ids):
        event = IncomingEvent(
            event_type="page_view", event_id=event_id, timestamp=ms,
            page_path=f"/p/{n % 7}", page_url=f"https://shop.example/p/{n % 7}",
        )  # fmt: skip
        writer.put(encode_envelope(Envelope(ms, SITE, n % 13, "203.0.113.0", UA, [event])))


def _wait(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[StoreProcess, SpoolWriter, Settings]]:
    settings = _settings(tmp_path)
    build_meta(settings)  # the web process migrates the metadata before it starts the child
    backlog = Backlog()
    writer = SpoolWriter(settings.spool_dir, fsync="never", backlog=backlog)
    keeper = StoreProcess(settings, backlog, poll_interval=0.05)
    keeper.start()
    try:
        yield keeper, writer, settings
    finally:
        keeper.stop()
        writer.close()


def _stored(keeper: StoreProcess, n: int) -> Callable[[], bool]:
    return lambda: keeper.stats.events_stored >= n


def test_the_store_process_loads_the_spool_and_answers_reads(
    running: tuple[StoreProcess, SpoolWriter, Settings],
) -> None:
    keeper, writer, _ = running
    store = keeper.client
    assert isinstance(store, RemoteEventStore)
    assert store.engine == "duckdb"
    now = datetime.now(UTC).replace(microsecond=0)
    ids = [f"e{i:03d}" for i in range(120)]
    _put(writer, ids, now)
    _wait(_stored(keeper, 120))
    assert keeper.stats.batches >= 1
    _wait(lambda: keeper.backlog.bytes == 0)

    assert store.count_events(SITE) == 120
    lo, hi = now - timedelta(hours=1), now + timedelta(hours=1)
    page = store.list_events(SITE, lo, hi, limit=50)
    assert len(page.rows) == 50 and page.next_cursor is not None
    assert page.rows[0]["ts"].tzinfo is not None  # values cross as they are: datetimes
    rest = store.list_events(SITE, lo, hi, limit=500, after=page.next_cursor)
    assert {r["event_id"] for r in page.rows + rest.rows} == set(ids)
    assert store.list_sessions(SITE, lo, hi, limit=100)  # sessions were kept up too
    rows = store.fetch(
        "SELECT page_path, count(*) AS n FROM analytics_events WHERE site_id = ? "
        "GROUP BY 1 ORDER BY 1",
        [SITE],
    )
    assert sum(r["n"] for r in rows) == 120 and rows[0]["page_path"] == "/p/0"
    assert store.ping()["process"] == "store"
    assert store.memory()  # DuckDB's accounting, from the process that holds it

    schema, batches = store.stream("events", SITE, lo, hi, batch_rows=50)
    assert "event_id" in schema.names
    assert sum(b.num_rows for b in batches) == 120
    # A stream abandoned half way costs its connection, not the next call's answer.
    _, batches = store.stream("events", SITE, lo, hi, batch_rows=10)
    next(iter(batches))
    del batches
    assert store.count_events(SITE) == 120


def test_errors_in_the_store_process_are_raised_in_the_caller(
    running: tuple[StoreProcess, SpoolWriter, Settings],
) -> None:
    store = running[0].client
    with pytest.raises(ValueError, match="cannot stream"):
        store.stream("nope", SITE, datetime.now(UTC), datetime.now(UTC))
    # DuckDB's own exceptions are named, not shipped (the web process never imports DuckDB).
    with pytest.raises(RemoteError, match="CatalogException"):
        store.fetch("SELECT * FROM no_such_table", [])
    assert store.count_events() == 0  # the connection is still in step
    with pytest.raises(NotImplementedError):
        store.rebuild_sessions(SITE)


def test_a_crashed_store_process_is_restarted_and_loads_what_waited(
    running: tuple[StoreProcess, SpoolWriter, Settings],
) -> None:
    keeper, writer, _ = running
    store = keeper.client
    now = datetime.now(UTC).replace(microsecond=0)
    _put(writer, [f"a{i}" for i in range(30)], now)
    _wait(_stored(keeper, 30))
    first = keeper.status.pid
    os.kill(first, signal.SIGKILL)  # as a crash inside DuckDB would
    # Meanwhile the web process keeps accepting: events wait in the spool.
    _put(writer, [f"b{i}" for i in range(40)], now)

    def back() -> bool:
        try:
            return store.count_events(SITE) == 70
        except StoreUnavailable:
            return False

    _wait(back, timeout=60)
    # The new process may answer before the keeper has finished counting its start.
    _wait(lambda: keeper.restarts == 1, timeout=10)
    assert keeper.restarts == 1
    _wait(lambda: keeper.status.pid != first, timeout=10)  # (its status is polled)
    # What the first store process counted carries on in the numbers `/metrics` shows.
    _wait(_stored(keeper, 70))
    assert keeper.stats.events_stored == 70


def test_a_store_process_that_stops_answering_is_restarted(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    build_meta(settings)
    backlog = Backlog()
    writer = SpoolWriter(settings.spool_dir, fsync="never", backlog=backlog)
    keeper = StoreProcess(
        settings, backlog, poll_interval=0.05, status_timeout=0.3, stuck_after=1.0
    )
    keeper.start()
    try:
        stuck = keeper.status.pid
        os.kill(stuck, signal.SIGSTOP)  # alive, holding the file, answering nothing
        _wait(lambda: keeper.restarts == 1, timeout=30)
        _put(writer, [f"c{i}" for i in range(10)], datetime.now(UTC))
        _wait(_stored(keeper, 10), timeout=30)
        assert keeper.status.pid != stuck
    finally:
        keeper.stop()
        writer.close()


def test_stop_stores_what_the_spool_holds(tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(update={"loader_interval_seconds": 3600.0})
    build_meta(settings)
    backlog = Backlog()
    writer = SpoolWriter(settings.spool_dir, fsync="never", backlog=backlog)
    keeper = StoreProcess(settings, backlog)
    keeper.start()
    time.sleep(0.5)  # the loader has looked once and now waits an hour
    _put(writer, [f"s{i}" for i in range(25)], datetime.now(UTC))
    keeper.stop()
    writer.close()
    with pytest.raises(StoreUnavailable):
        keeper.client.count_events()
    con = duckdb.connect(str(settings.data_dir / "events.duckdb"), read_only=True)
    stored = con.execute("SELECT count(*) FROM analytics_events").fetchone()
    con.close()
    assert stored == (25,)


def test_a_store_that_cannot_open_fails_the_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    build_meta(settings)
    holder = duckdb.connect(str(settings.data_dir / "events.duckdb"))  # another writer
    keeper = StoreProcess(settings, Backlog(), ready_timeout=60)
    try:
        with pytest.raises(RuntimeError, match=r"(?i)lock"):
            keeper.start()
    finally:
        keeper.stop()
        holder.close()


def test_the_store_process_dies_with_the_web_process(tmp_path: Path) -> None:
    """`kill -9` of the server must not leave a child holding the DuckDB file."""
    settings = _settings(tmp_path)
    build_meta(settings)
    script = textwrap.dedent(
        f"""
        import sys, time
        from cadlink.config import Settings
        from cadlink.ingest.buffer import Backlog
        from cadlink.pipeline.store_process import StoreProcess
        settings = Settings(data_dir={str(settings.data_dir)!r}, secret_key="s" * 40, env="test")
        keeper = StoreProcess(settings, Backlog())
        keeper.start()
        print(keeper.status.pid, flush=True)
        time.sleep(600)
        """
    )
    web = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert web.stdout is not None
        with web.stdout:
            child = int(web.stdout.readline())
        assert process_running(child)
        web.kill()
        web.wait()
        _wait(lambda: not process_running(child), timeout=10)
    finally:
        if web.poll() is None:
            web.kill()
    con = duckdb.connect(str(settings.data_dir / "events.duckdb"))  # the lock is free
    con.close()


def _identify(writer: SpoolWriter, users: list[str], when: datetime) -> None:
    ms = int(when.timestamp() * 1000)
    for n, user in enumerate(users):
        event = IncomingEvent(
            event_type="identify", event_id=f"id-{user}", timestamp=ms + n, user_id=user,
            properties={"plan": "pro"},
        )  # fmt: skip
        writer.put(encode_envelope(Envelope(ms, SITE, n, "203.0.113.0", UA, [event])))


def test_identified_users_are_handed_to_the_web_process_at_least_once(tmp_path: Path) -> None:
    """The keeper records what the child's loader identified; a recording that fails is not
    acknowledged, so the child sends those users again."""
    settings = _settings(tmp_path)
    build_meta(settings)
    backlog = Backlog()
    writer = SpoolWriter(settings.spool_dir, fsync="never", backlog=backlog)
    recorded: list[Identity] = []
    failures = [RuntimeError("metadata store busy")]

    def record(identities: list[Identity]) -> None:
        if failures:
            raise failures.pop()
        recorded.extend(identities)

    keeper = StoreProcess(settings, backlog, poll_interval=0.05, on_identities=record)
    keeper.start()
    try:
        _identify(writer, [f"u{i}" for i in range(5)], datetime.now(UTC))
        _wait(lambda: len(recorded) >= 5)
        assert sorted(i.user_id for i in recorded) == [f"u{i}" for i in range(5)]
        assert recorded[0].site_id == SITE and recorded[0].traits == {"plan": "pro"}
        assert not failures  # the first attempt failed and was sent again
        time.sleep(0.3)
        assert len(recorded) == 5  # acknowledged: not sent a third time
        with open(f"/proc/{keeper.status.pid}/maps") as maps:
            mapped = maps.read()
        assert "sqlalchemy" not in mapped  # the child never opens the metadata
        assert "pydantic_core" not in mapped  # it reads its settings as a `StoreConfig`
        assert "_asyncio." not in mapped and "_ssl." not in mapped  # it runs no event loop
    finally:
        keeper.stop()
        writer.close()


def test_users_identified_while_stopping_are_recorded_before_the_child_exits(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path).model_copy(update={"loader_interval_seconds": 3600.0})
    build_meta(settings)
    backlog = Backlog()
    writer = SpoolWriter(settings.spool_dir, fsync="never", backlog=backlog)
    recorded: list[Identity] = []
    keeper = StoreProcess(settings, backlog, on_identities=recorded.extend)
    keeper.start()
    time.sleep(0.5)  # the loader has looked once and now waits an hour
    _identify(writer, ["late-1", "late-2"], datetime.now(UTC))
    keeper.stop()  # the child drains the spool on the way out
    writer.close()
    assert sorted(i.user_id for i in recorded) == ["late-1", "late-2"]


def _ident(n: int) -> Identity:
    return Identity(SITE, f"u{n}", {}, datetime(2026, 12, 6, tzinfo=UTC))


def test_the_identity_outbox_numbers_bounds_and_forgets_what_was_acknowledged() -> None:
    box = IdentityOutbox(limit=5, per_poll=2)
    box.add([_ident(n) for n in range(3)])
    first, upto = box.take(0)
    assert [i.user_id for i in first] == ["u0", "u1"] and upto == 2
    again, upto_again = box.take(0)  # nothing acknowledged: the same ones again
    assert again == first and upto_again == 2
    rest, upto = box.take(2)
    assert [i.user_id for i in rest] == ["u2"] and upto == 3
    assert not box.wait_recorded(timeout=0.01)
    assert box.take(3) == ((), 3)
    assert box.wait_recorded(timeout=0.01)
    box.add([_ident(n) for n in range(10, 18)])  # 8 waiting, room for 5: the 3 oldest go
    assert box.dropped == 3
    assert [i.user_id for i in box.take(3)[0]] == ["u13", "u14"]


def test_the_counts_of_store_processes_add_up_counter_by_counter() -> None:
    """After a restart the web process reports the earlier store processes' counts plus the
    current one's: every counter of `LoaderStats` (the slow session path and the widened
    batches were once left out, so /metrics said 0 for them), and the newest times."""
    from dataclasses import fields

    from cadlink.pipeline.loader import LoaderStats
    from cadlink.pipeline.store_process import _sum

    names = [f.name for f in fields(LoaderStats)]
    earlier = LoaderStats(**{n: 1 + i for i, n in enumerate(names)})
    later = LoaderStats(**{n: 100 + i for i, n in enumerate(names)})
    total = _sum(earlier, later)
    for i, name in enumerate(names):
        if name == "last_batch_at":
            assert total.last_batch_at == later.last_batch_at
        elif name == "last_event_received_ms":
            assert total.last_event_received_ms == later.last_event_received_ms
        else:
            assert getattr(total, name) == 101 + 2 * i, name
    assert _sum(earlier, LoaderStats()).last_batch_at == earlier.last_batch_at
