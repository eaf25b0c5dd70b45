"""The Redis Streams buffer (server mode) on the local Redis: writer, reader, consumer group."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import redis

from cadlink.ingest.buffer import BufferFull
from cadlink.ingest.buffer.redis_stream import (
    GROUP,
    RedisStreamReader,
    RedisStreamWriter,
    connect,
    marker,
    marker_entry,
)


@pytest.fixture
def queue(redis_url: tuple[str, str]) -> Iterator[tuple[redis.Redis, str]]:
    url, prefix = redis_url
    client = connect(url)
    yield client, f"{prefix}events"
    client.close()


def _writer(queue: tuple[redis.Redis, str], max_entries: int = 1000) -> RedisStreamWriter:
    client, stream = queue
    return RedisStreamWriter(client, stream, max_entries=max_entries, refresh=60)


def _reader(
    queue: tuple[redis.Redis, str], consumer: str, idle_ms: int = 60_000
) -> RedisStreamReader:
    client, stream = queue
    return RedisStreamReader(client, stream, consumer=consumer, claim_idle_ms=idle_ms)


def _records(n: int, size: int = 50) -> list[bytes]:
    return [f'{{"n":{i},"pad":"{"x" * size}"}}\n'.encode() for i in range(n)]


def test_entries_are_read_in_order_and_deleted_once_acknowledged(
    queue: tuple[redis.Redis, str],
) -> None:
    client, stream = queue
    reader = _reader(queue, "a")
    writer = _writer(queue)
    records = _records(5)
    for r in records:
        writer.put(bytearray(r))  # the collect endpoint hands its reused buffer
    batch = reader.read(1 << 20)
    assert bytes(batch.data) == b"".join(records)
    assert batch.records == 5 and len(batch.ids) == 5
    assert not batch.redelivered and not batch.more
    assert reader.unloaded() == 5  # delivered, not yet loaded
    reader.ack(batch.ids)
    assert reader.unloaded() == 0 and client.xlen(stream) == 0
    assert reader.read(1 << 20).empty


def test_a_group_created_after_writes_still_gets_them(queue: tuple[redis.Redis, str]) -> None:
    writer = _writer(queue)
    writer.put(b'{"early":1}\n')
    batch = _reader(queue, "late").read(1 << 20)
    assert bytes(batch.data) == b'{"early":1}\n'


def test_a_full_queue_answers_buffer_full(queue: tuple[redis.Redis, str]) -> None:
    writer = _writer(queue, max_entries=3)
    for r in _records(3):
        writer.put(r)
    with pytest.raises(BufferFull, match="queue is full") as full:
        writer.put(b"{}\n")
    assert full.value.retry_after > 0
    assert writer.depth() == {"envelopes": 3}


def test_an_unreachable_redis_answers_buffer_full() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    writer = RedisStreamWriter(
        connect(f"redis://127.0.0.1:{port}/0", retries=0), "nowhere", max_entries=10, refresh=60
    )
    assert writer.error  # its first look at the stream failed, and says so
    started = time.monotonic()
    for _ in range(50):  # each answers at once: no retries with backoff on the event loop
        with pytest.raises(BufferFull, match="event queue unavailable") as down:
            writer.put(b"{}\n")
        assert down.value.retry_after > 0
    assert time.monotonic() - started < 1.0
    writer.close()


def test_a_loader_gets_its_own_unacknowledged_entries_first_within_its_budget(
    queue: tuple[redis.Redis, str],
) -> None:
    writer = _writer(queue)
    records = _records(10, size=100)
    for r in records:
        writer.put(r)
    reader = _reader(queue, "a")
    first = reader.read(1 << 20)
    assert first.records == 10  # its load failed: nothing acknowledged
    again = reader.read(3 * len(records[0]))
    assert again.redelivered and again.ids == first.ids[:3] and again.more
    assert bytes(again.data) == b"".join(records[:3])
    reader.ack(again.ids)
    rest = reader.read(1 << 20)
    assert rest.redelivered and rest.ids == first.ids[3:]


def test_entries_of_a_loader_that_stopped_are_claimed_after_the_idle_time(
    queue: tuple[redis.Redis, str],
) -> None:
    writer = _writer(queue)
    for r in _records(4):
        writer.put(r)
    dead = _reader(queue, "dead").read(1 << 20)
    assert dead.records == 4
    patient = _reader(queue, "patient", idle_ms=60_000)
    assert patient.read(1 << 20).empty  # not idle long enough to be taken from "dead"
    eager = _reader(queue, "eager", idle_ms=0)
    claimed = eager.read(1 << 20)
    assert claimed.redelivered and claimed.ids == dead.ids
    eager.ack(claimed.ids)
    assert eager.unloaded() == 0


def test_an_entry_deleted_while_pending_is_only_acknowledged(
    queue: tuple[redis.Redis, str],
) -> None:
    client, stream = queue
    writer = _writer(queue)
    for r in _records(2):
        writer.put(r)
    reader = _reader(queue, "a")
    batch = reader.read(1 << 20)
    client.xdel(stream, batch.ids[0])
    again = reader.read(1 << 20)
    assert again.gone == [batch.ids[0]] and again.ids == [batch.ids[1]]
    reader.ack(again.ids + again.gone)
    assert client.xpending(stream, GROUP)["pending"] == 0


def test_reread_and_existing(queue: tuple[redis.Redis, str]) -> None:
    writer = _writer(queue)
    records = _records(3)
    for r in records:
        writer.put(r)
    reader = _reader(queue, "a")
    batch = reader.read(1 << 20)
    assert [r for _, r in reader.reread(batch.ids)] == records
    reader.ack(batch.ids[:1])
    assert reader.existing(batch.ids) == set(batch.ids[1:])


def test_consumers_leave_the_group(queue: tuple[redis.Redis, str]) -> None:
    client, stream = queue
    writer = _writer(queue)
    writer.put(b"{}\n")
    busy = _reader(queue, "busy")
    busy.read(1 << 20)  # holds an entry
    idle = _reader(queue, "idle")
    idle.read(1 << 20)  # registers, gets nothing
    names = lambda: sorted(c["name"].decode() for c in client.xinfo_consumers(stream, GROUP))  # noqa: E731
    assert names() == ["busy", "idle"]
    busy.leave()  # something pending: stays, so that another loader can claim it
    idle.leave()
    assert names() == ["busy"]
    third = _reader(queue, "third")
    assert third.forget_idle_consumers(idle_ms=0) == []  # "busy" still holds an entry
    busy.ack(busy.read(1 << 20).ids)
    assert third.forget_idle_consumers(idle_ms=0) == ["busy"]


def test_markers_name_their_entry() -> None:
    key = marker("s:events", b"1700000000000-3")
    assert marker_entry("s:events", key) == b"1700000000000-3"
    assert marker_entry("other", key) is None
    assert marker_entry("s:events", "00000001-1-000001.spool") is None


def test_others_names_the_live_loaders(queue: tuple[redis.Redis, str]) -> None:
    writer = _writer(queue)
    writer.put(b"{}\n")
    me = _reader(queue, "me")
    assert me.others() == []
    _reader(queue, "other").read(1 << 20)  # took an entry just now: alive
    assert me.others() == ["other"]
    assert _reader(queue, "patient", idle_ms=0).others() == []  # idle 0: nobody counts alive


def test_deferred_records_are_stored_by_one_flush_in_order(
    queue: tuple[redis.Redis, str],
) -> None:
    client, stream = queue
    writer = _writer(queue)
    records = _records(5, size=600)
    for r in records:
        writer.defer(bytearray(r))  # the collect endpoint reuses its buffer: copied
    assert client.xlen(stream) == 0  # kept until the flush
    writer.flush()
    assert [e[1] for e in client.xrange(stream)] == [{b"r": r} for r in records]
    assert writer.depth() == {"envelopes": 5}
    writer.flush()  # nothing kept: nothing sent
    assert client.xlen(stream) == 5


def test_a_flush_refused_by_redis_fails_whole_and_the_next_one_works(
    queue: tuple[redis.Redis, str],
) -> None:
    client, stream = queue
    writer = _writer(queue)
    client.set(stream, "not a stream")  # every XADD now answers WRONGTYPE
    for r in _records(3):
        writer.defer(r)
    with pytest.raises(BufferFull, match="event queue unavailable"):
        writer.flush()
    assert "WRONGTYPE" in writer.error  # for the log and the health check, not the answer
    client.delete(stream)
    writer._down_until = 0.0  # (the depth thread would clear it within half a second)
    writer.defer(b'{"after":1}\n')
    writer.flush()  # on a fresh connection: the failed one's unread replies are gone
    assert [e[1] for e in client.xrange(stream)] == [{b"r": b'{"after":1}\n'}]


@pytest.mark.parametrize("fresh", [True, False])
def test_owned_leaves_out_what_another_loader_claimed(
    queue: tuple[redis.Redis, str], fresh: bool
) -> None:
    writer = _writer(queue)
    for r in _records(4):
        writer.put(r)
    me = _reader(queue, "me")
    batch = me.read(1 << 20)
    assert not batch.redelivered
    assert me.owned(batch.ids, fresh=fresh) == set(batch.ids)
    client, stream = queue
    client.xclaim(stream, GROUP, "other", 0, [batch.ids[1]])  # taken while "me" was frozen
    assert me.owned(batch.ids, fresh=fresh) == set(batch.ids) - {batch.ids[1]}
