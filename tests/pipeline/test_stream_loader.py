"""The queue's loader (server mode) on the local Redis, with each event store: every entry is
stored once, whoever loads it and however often it is delivered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.buffer.redis_stream import (
    RedisStreamReader,
    RedisStreamWriter,
    connect,
    marker_entry,
)
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline import stream_loader
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.stream_loader import StreamLoader
from cadlink.store.events import EventStore, open_event_store

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
BOT = "Googlebot/2.1 (+http://www.google.com/bot.html)"
SITE = "site-q"
NOW = int(time.time() * 1000)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'events.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_url")
    s = open_event_store(url, 30, 1)
    yield s
    s.close()


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(UserAgentParser(), GeoLocator(country_path=None), late_event_hours=72)


@pytest.fixture
def queue(redis_url: tuple[str, str]) -> Iterator[tuple[str, str]]:
    url, prefix = redis_url
    yield url, f"{prefix}events"


def _fill(queue: tuple[str, str], requests: int, bots: int = 0) -> None:
    """`requests` envelopes of two events each, without event ids (the store assigns them:
    a second load would store them again), and `bots` from a crawler (dropped, counted)."""
    url, stream = queue
    writer = RedisStreamWriter(connect(url), stream, max_entries=1 << 20, refresh=60)
    for i in range(requests + bots):
        events = [
            IncomingEvent(event_type="page_view", timestamp=NOW + i, page_path=f"/p/{i}"),
            IncomingEvent(event_type="click", timestamp=NOW + i, page_path=f"/p/{i}"),
        ]
        ua = BOT if i >= requests else UA
        writer.put(encode_envelope(Envelope(NOW + i, SITE, 1000 + i, "", ua, events)))
    writer.close()


def _loader(
    queue: tuple[str, str], store: EventStore, enricher: Enricher, consumer: str, **kw: Any
) -> StreamLoader:
    url, stream = queue
    idle = kw.pop("claim_idle_ms", 60_000)
    reader = RedisStreamReader(connect(url), stream, consumer=consumer, claim_idle_ms=idle)
    return StreamLoader(reader, store, enricher, **kw)


def _bot_drops(store: EventStore) -> int:
    day = datetime.fromtimestamp(NOW / 1000, UTC).date()
    return sum(int(r["count"]) for r in store.dropped(SITE, day, day))


def _markers(store: EventStore, stream: str) -> list[str]:
    return [k for k in store.positions() if marker_entry(stream, k) is not None]


def test_the_queue_is_stored_once_and_emptied(
    queue: tuple[str, str], store: EventStore, enricher: Enricher
) -> None:
    _fill(queue, 30, bots=3)
    loader = _loader(queue, store, enricher, "a", batch_bytes=4096)  # several batches
    assert loader.drain() == 60
    assert loader.stats.batches > 1
    assert store.count_events() == 60
    assert _bot_drops(store) == 6
    assert loader.reader.unloaded() == 0
    assert _markers(store, queue[1]) == []  # forgotten once acknowledged
    loader.stop()


def test_entries_whose_ack_was_lost_are_not_stored_again(
    queue: tuple[str, str], store: EventStore, enricher: Enricher
) -> None:
    """The loader dies after its store transaction committed, before Redis heard: another
    loader is handed the same entries and must store none of them again."""
    _fill(queue, 20, bots=2)
    dying = _loader(queue, store, enricher, "dying")

    def lost(ids: list[bytes]) -> None:
        raise redis.ConnectionError("connection lost")

    dying.reader.ack = lost  # type: ignore[method-assign]
    with pytest.raises(redis.ConnectionError):
        dying.run_once()
    assert store.count_events() == 40 and _bot_drops(store) == 4
    assert len(_markers(store, queue[1])) == 22  # committed with the rows

    heir = _loader(queue, store, enricher, "heir", claim_idle_ms=0)
    assert heir.drain() == 0
    assert store.count_events() == 40 and _bot_drops(store) == 4
    assert heir.reader.unloaded() == 0
    # The heir claimed them: their markers stay (for a day) in case the loader they were
    # taken from was only frozen and resumes.
    assert len(_markers(store, queue[1])) == 22


def test_the_loader_itself_retries_what_it_could_not_acknowledge(
    queue: tuple[str, str], store: EventStore, enricher: Enricher
) -> None:
    _fill(queue, 5)
    loader = _loader(queue, store, enricher, "a")
    ack = loader.reader.ack
    calls: list[int] = []

    def flaky(ids: list[bytes]) -> None:
        calls.append(len(ids))
        if len(calls) == 1:
            raise redis.ConnectionError("blip")
        ack(ids)

    loader.reader.ack = flaky  # type: ignore[method-assign]
    with pytest.raises(redis.ConnectionError):
        loader.run_once()
    assert loader.drain() == 0  # its own pending entries: stored already, only acknowledged
    assert store.count_events() == 10 and loader.reader.unloaded() == 0
    assert calls == [5, 5]


def test_a_store_failure_leaves_the_entries_to_load_again(
    queue: tuple[str, str], store: EventStore, enricher: Enricher
) -> None:
    _fill(queue, 4)
    loader = _loader(queue, store, enricher, "a")
    load = store.load
    calls: list[int] = []

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk hiccup")
        return load(*args, **kwargs)

    store.load = failing_once  # type: ignore[method-assign]
    with pytest.raises(OSError):
        loader.run_once()
    assert store.count_events() == 0 and loader.reader.unloaded() == 4
    assert loader.drain() == 8
    assert store.count_events() == 8 and store.dead_letters() == []


def test_an_entry_that_cannot_be_loaded_becomes_a_dead_letter(
    queue: tuple[str, str], store: EventStore, enricher: Enricher
) -> None:
    url, stream = queue
    _fill(queue, 2)
    client = connect(url)
    client.xadd(stream, {b"r": b'{"not": "an envelope"}\n'})
    client.close()
    _fill(queue, 2)
    loader = _loader(queue, store, enricher, "a")
    assert loader.drain() == 8
    letters = store.dead_letters()
    assert [bytes(d["payload"]) for d in letters] == [b'{"not": "an envelope"}']
    assert loader.reader.unloaded() == 0 and _markers(store, stream) == []


def test_markers_of_acknowledged_entries_are_forgotten_at_start(
    queue: tuple[str, str],
    store: EventStore,
    enricher: Enricher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loader stopped between the acknowledgement and forgetting the markers: the next one
    forgets them once they are older than the markers' retention (the spool's positions, if
    any, are left alone)."""
    _fill(queue, 3)
    first = _loader(queue, store, enricher, "a")
    forget = store.forget_positions
    store.forget_positions = lambda keys: None  # type: ignore[method-assign]
    assert first.drain() == 6
    assert len(_markers(store, queue[1])) == 3
    store.forget_positions = forget  # type: ignore[method-assign]
    _loader(queue, store, enricher, "b")
    assert len(_markers(store, queue[1])) == 3  # younger than a day: kept
    monkeypatch.setattr(stream_loader, "KEEP_MARKERS_MS", 0)
    _loader(queue, store, enricher, "c")
    assert _markers(store, queue[1]) == []


def test_a_slow_load_keeps_its_entries(
    queue: tuple[str, str], store: EventStore, enricher: Enricher
) -> None:
    """A load that outlasts the claim idle time (the store waits for a lock, say) is not a
    dead loader's: nobody else takes its entries meanwhile, so nothing is stored twice."""
    _fill(queue, 6)
    slow = _loader(queue, store, enricher, "slow", claim_idle_ms=1000)
    load = store.load
    loading = threading.Event()

    def sluggish(*args: Any, **kwargs: Any) -> Any:
        loading.set()
        time.sleep(3.0)  # three claim idle times (a second each: room for a busy machine)
        return load(*args, **kwargs)

    store.load = sluggish  # type: ignore[method-assign]
    worker = threading.Thread(target=slow.run_once)
    worker.start()
    assert loading.wait(10)
    other = _loader(queue, store, enricher, "other", claim_idle_ms=1000)
    claimed = 0
    while worker.is_alive():
        claimed += other.reader.read(1 << 20).records
        time.sleep(0.05)
    worker.join()
    assert claimed == 0
    store.load = load  # type: ignore[method-assign]
    assert other.drain() == 0
    assert store.count_events() == 12


class _Gate:
    """Holds a chosen loader's thread inside `store.load` until told to go on."""

    def __init__(self, store: EventStore) -> None:
        self.load = store.load
        self.held: dict[str, tuple[threading.Event, threading.Event]] = {}
        store.load = self  # type: ignore[method-assign]

    def hold(self, thread_name: str) -> tuple[threading.Event, threading.Event]:
        entered, go = threading.Event(), threading.Event()
        self.held[thread_name] = (entered, go)
        return entered, go

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        gate = self.held.get(threading.current_thread().name)
        if gate is not None:
            gate[0].set()
            assert gate[1].wait(30)
        return self.load(*args, **kwargs)


def test_a_loader_thought_dead_that_resumes_stores_nothing_twice(
    queue: tuple[str, str], store: EventStore, enricher: Enricher
) -> None:
    """A loader frozen with a batch in hand (a paused machine) is taken for dead; another
    claims its entries and stores them. When the first resumes and stores what it held, the
    store refuses: the claimer's markers are there (`AlreadyStored`)."""
    _fill(queue, 10, bots=1)
    gate = _Gate(store)
    frozen = _loader(queue, store, enricher, "frozen")
    entered, go = gate.hold("frozen")
    thread = threading.Thread(target=frozen.run_once, name="frozen")
    thread.start()
    assert entered.wait(10)  # it took the entries and is about to store them
    heir = _loader(queue, store, enricher, "heir", claim_idle_ms=0)  # idle 0: it is "dead"
    assert heir.drain() == 20
    go.set()  # it resumes
    thread.join(timeout=30)
    assert store.count_events() == 20 and _bot_drops(store) == 2
    assert heir.reader.unloaded() == 0


def test_a_claimed_batch_stored_second_is_not_stored_again(
    queue: tuple[str, str], store: EventStore, enricher: Enricher
) -> None:
    """The other order: the loader taken for dead stores its batch first, while the claimer
    holds the same entries. It no longer owns them, so it keeps their markers, and the
    claimer's store is refused."""
    _fill(queue, 10, bots=1)
    gate = _Gate(store)
    slow = _loader(queue, store, enricher, "slow")
    slow_in, slow_go = gate.hold("slow")
    heir = _loader(queue, store, enricher, "heir", claim_idle_ms=0)
    heir_in, heir_go = gate.hold("heir")
    first = threading.Thread(target=slow.run_once, name="slow")
    first.start()
    assert slow_in.wait(10)
    second = threading.Thread(target=heir.run_once, name="heir")
    second.start()
    assert heir_in.wait(10)  # the heir claimed the entries and is about to store them
    slow_go.set()
    first.join(timeout=30)  # the slow one stored them, then found them claimed
    assert store.count_events() == 20
    heir_go.set()
    second.join(timeout=30)
    assert store.count_events() == 20 and _bot_drops(store) == 2
    assert heir.reader.unloaded() == 0
