"""Redis Streams: the server mode's durable buffer (`CADLINK_QUEUE_URL=redis://…`).

Every `cadlink serve` appends each buffer record as one stream entry (`XADD`, field `r`);
the loaders (`cadlink worker`, or the store process of a `cadlink serve` on the embedded
DuckDB store, which allows one writer) share them through one consumer group, so each
entry is delivered to one loader at a time. An entry is acknowledged and deleted only after
the store committed it; entries a loader took and never acknowledged (it died) are claimed
by another after `claim_idle_ms`.

An entry is durable when `XADD` returned, as far as Redis keeps what it was told: run it
with `appendonly yes` (`appendfsync everysec` matches the spool's once-a-second fsync).

Redelivery is at-least-once; the store makes it exactly-once: a loader commits a marker per
entry (`marker`) in the same transaction as the entry's rows, and a redelivered entry whose
marker is there was stored already (its ack was lost) and is only acknowledged.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from cadlink.ingest.buffer.base import BufferFull

log = logging.getLogger(__name__)

GROUP = "cadlink-loaders"
FIELD = b"r"
MARKER_PREFIX = "redis:"
READ_COUNT = 2_000  # entries per XREADGROUP: about 1 to 2 MB of records
ACK_CHUNK = 5_000  # ids per XACK/XDEL
FORGET_CONSUMERS_IDLE_MS = 24 * 3600 * 1000  # consumers gone this long with nothing pending


def connect(url: str, *, retries: int = 3) -> redis.Redis:
    """A client for the queue. The collect endpoint's (`retries=0`) waits for Redis on the
    event loop: it must fail at once, not retry with backoff for seconds."""
    return redis.Redis.from_url(
        url,
        socket_timeout=5 if retries else 2,
        socket_connect_timeout=3 if retries else 1,
        retry=Retry(ExponentialBackoff(cap=1.0), retries),
    )


def loaded_channel(stream: str) -> str:
    """The pub/sub channel on which loaders announce how many events they stored."""
    return f"{stream}:loaded"


def entry_order(entry_id: bytes) -> tuple[int, int]:
    """An entry id (`<ms>-<seq>`) as numbers: ids sort by them, not by their text."""
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def marker(stream: str, entry_id: bytes) -> str:
    """The store's key (a once-marker among its positions) for an entry loaded and not yet
    acknowledged."""
    return f"{MARKER_PREFIX}{stream}:{entry_id.decode()}"


def marker_entry(stream: str, key: str) -> bytes | None:
    """The entry id of one of `stream`'s markers, or None when `key` is not one."""
    prefix = f"{MARKER_PREFIX}{stream}:"
    return key[len(prefix) :].encode() if key.startswith(prefix) else None


class RedisStreamWriter:
    """Appends buffer records to the stream; answers `BufferFull` (503) when the stream
    holds `max_entries` unloaded entries or Redis cannot be reached.

    The stream's length is read every `refresh` seconds by a thread, not per request. The
    collect fast path `defer`s its records and `flush`es them once per turn of the event
    loop (web/collect_protocol.py `Answers`): one round trip for up to 64
    requests, before any of their answers is written; `put` (the ASGI path) is one `XADD`.
    After a failed round trip the writer answers 503 at once for `DOWN_FOR` seconds, or
    until the thread reaches Redis again, instead of every request waiting for a connection
    that fails.
    """

    DOWN_FOR = 1.0

    def __init__(
        self, client: redis.Redis, stream: str, *, max_entries: int, refresh: float = 0.5
    ) -> None:
        self.client = client
        self.stream = stream
        self.max_entries = max_entries
        self._length = 0
        self._error = ""
        self._down_until = 0.0
        self._pending: list[bytes] = []  # deferred records (`defer`), stored by `flush`
        name = stream.encode()
        # `XADD <stream> * r`, before each record's length and bytes (RESP: an array of 5).
        self._xadd_head = b"*5\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$%d\r\n%s\r\n" % (
            len(name),
            name,
            len(FIELD),
            FIELD,
        )
        self._stop = threading.Event()
        self._refresh_length()
        self._thread = threading.Thread(
            target=self._refresh_loop, args=(refresh,), name="queue-depth", daemon=True
        )
        self._thread.start()

    defers = True

    def _admit(self) -> None:
        if self._length + len(self._pending) >= self.max_entries:
            raise BufferFull("event queue is full; the loaders are behind", retry_after=5)
        if self._down_until and time.monotonic() < self._down_until:
            raise BufferFull("event queue unavailable", retry_after=5)

    def _failed(self, e: redis.RedisError) -> BufferFull:
        self._error = str(e) or type(e).__name__
        self._down_until = time.monotonic() + self.DOWN_FOR
        # The answer is public: the address in the driver's message stays in the log.
        log.warning("event queue unavailable: %s", self._error)
        return BufferFull("event queue unavailable", retry_after=5)

    def put(self, record: bytes | bytearray) -> None:
        self._admit()
        try:
            # bytes(): the collect endpoint reuses its record buffer for the next request.
            self.client.xadd(self.stream, {FIELD: bytes(record)})
        except redis.RedisError as e:
            raise self._failed(e) from None
        self._length += 1

    def defer(self, record: bytes | bytearray) -> None:
        self._admit()
        self._pending.append(bytes(record))

    def flush(self) -> None:
        """`XADD` what `defer` kept, in one round trip for a turn's requests."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            self._xadd_all(pending)
        except redis.RedisError as e:
            raise self._failed(e) from None
        self._length += len(pending)

    def _xadd_all(self, records: list[bytes]) -> None:
        """One `XADD` per record, written as one packet of the protocol's own encoding, then
        their replies read. redis-py's pipeline spends about 5 µs a command in Python building
        and parsing them, on the event loop (8.5 against 3.4 µs a record, measured: 32
        records of 660 bytes a round trip). An error reply raises; the connection is then
        dropped, as its other replies are still unread."""
        pool = self.client.connection_pool
        conn: Any = pool.get_connection()  # (redis-py's connection methods are not typed)
        try:
            head = self._xadd_head
            conn.send_packed_command(
                [b"".join(head + b"$%d\r\n" % len(r) + r + b"\r\n" for r in records)],
                check_health=False,
            )
            for _ in records:
                conn.read_response()
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def _refresh_length(self) -> None:
        try:
            self._length = int(self.client.xlen(self.stream))
            self._error = ""
            self._down_until = 0.0
        except redis.RedisError as e:
            self._error = str(e) or type(e).__name__

    def _refresh_loop(self, every: float) -> None:
        while not self._stop.wait(every):
            self._refresh_length()

    def depth(self) -> dict[str, int]:
        return {"envelopes": self._length}

    @property
    def error(self) -> str:
        """Why the last look at the stream failed ("" when it did not)."""
        return self._error

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._pending:  # every answer that waited on them has been written: not expected
            try:
                self.flush()
            except BufferFull:
                log.exception("deferred queue records could not be stored at shutdown")
        self.client.close()


@dataclass
class StreamBatch:
    """Entries taken from the stream for one loader batch.

    `redelivered`: the entries were delivered before (to this loader, whose load failed, or
    to one that died): some may have been stored already (see the module's doc).
    `gone`: ids still pending whose entries were deleted meanwhile: only to acknowledge.
    """

    data: bytearray = field(default_factory=bytearray)
    ids: list[bytes] = field(default_factory=list)
    records: int = 0
    redelivered: bool = False
    claimed: bool = False  # taken from a loader thought dead (which may yet resume)
    gone: list[bytes] = field(default_factory=list)
    more: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def empty(self) -> bool:
        return not self.ids and not self.gone


class RedisStreamReader:
    """One loader's side of the consumer group: read, acknowledge, claim the dead's entries."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        *,
        consumer: str | None = None,
        claim_idle_ms: int = 60_000,
    ) -> None:
        self.client = client
        self.stream = stream
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"
        self.claim_idle_ms = claim_idle_ms
        self._entry_bytes = 1024  # the average entry's size, as last read
        self._grouped = False

    def ensure_group(self) -> None:
        """Create the stream and its consumer group if missing (from the stream's start, so
        that entries added before the first loader ran are loaded too). Asked again after
        Redis lost them (a restart without persistence)."""
        if self._grouped:
            return
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._grouped = True

    def read(self, max_bytes: int) -> StreamBatch:
        """About `max_bytes` of records: this loader's own unacknowledged entries first (its
        last load failed), then entries idle for `claim_idle_ms` in a dead loader's hands,
        then new ones."""
        budget = max(max_bytes, 1)
        self.ensure_group()
        try:
            own = self._entries(
                self.client.xreadgroup(GROUP, self.consumer, {self.stream: "0"}, count=READ_COUNT)
            )
        except redis.ResponseError as e:
            if "NOGROUP" in str(e):
                self._grouped = False  # Redis forgot the stream: create it at the next read
            raise
        if own:
            return self._batch(own, budget, redelivered=True)
        claimed: Any = self.client.xautoclaim(
            self.stream, GROUP, self.consumer, self.claim_idle_ms, "0-0", count=READ_COUNT
        )
        entries = list(claimed[1])
        gone = [bytes(i) for i in claimed[2]] if len(claimed) > 2 else []
        if entries or gone:
            batch = self._batch(entries, budget, redelivered=True)
            batch.claimed = True
            batch.gone = gone
            log.warning(
                "claimed %d queue entries from a loader that stopped answering", len(entries)
            )
            return batch
        batch = StreamBatch()
        while batch.size < budget:
            # New entries are delivered to this loader as they are read: ask for about as
            # many as the budget holds (a batch that ran out of memory must shrink).
            count = min(READ_COUNT, (budget - batch.size) // self._entry_bytes + 1)
            found = self._entries(
                self.client.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=count)
            )
            for entry_id, fields in found:
                self._add(batch, entry_id, fields)
            if batch.records:
                self._entry_bytes = max(1, batch.size // batch.records)
            if len(found) < count:
                return batch
        batch.more = True
        return batch

    @staticmethod
    def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        """The entries of an XREADGROUP reply on one stream (RESP2: [[stream, entries]])."""
        if not reply:
            return []
        return [(bytes(i), f) for i, f in reply[0][1]]

    def _batch(
        self,
        entries: list[tuple[bytes, dict[bytes, bytes] | None]],
        budget: int,
        *,
        redelivered: bool,
    ) -> StreamBatch:
        """Entries delivered before, up to the budget (a batch that ran out of memory is
        retried smaller): those left stay pending to this loader and come next."""
        batch = StreamBatch(redelivered=redelivered)
        taken = 0
        for entry_id, fields in entries:
            self._add(batch, entry_id, fields)
            taken += 1
            if batch.size >= budget:
                break
        batch.more = taken < len(entries) or len(entries) >= READ_COUNT
        return batch

    @staticmethod
    def _add(batch: StreamBatch, entry_id: bytes, fields: dict[bytes, bytes] | None) -> None:
        record = fields.get(FIELD) if fields else None
        if record is None:  # deleted after it was delivered: nothing to load
            batch.gone.append(entry_id)
            return
        batch.ids.append(entry_id)
        batch.data += record
        batch.records += 1

    def reread(self, ids: list[bytes]) -> list[tuple[bytes, bytes]]:
        """The records of `ids` read again (the store empties a batch's data once staged)."""
        pipe = self.client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xrange(self.stream, entry_id, entry_id)
        out: list[tuple[bytes, bytes]] = []
        for entry_id, found in zip(ids, pipe.execute(), strict=True):
            if found and found[0][1] and FIELD in found[0][1]:
                out.append((entry_id, found[0][1][FIELD]))
        return out

    def ack(self, ids: list[bytes]) -> None:
        """Acknowledge and delete loaded entries (the stream keeps only what is unloaded)."""
        for start in range(0, len(ids), ACK_CHUNK):
            chunk = ids[start : start + ACK_CHUNK]
            pipe = self.client.pipeline(transaction=False)
            pipe.xack(self.stream, GROUP, *chunk)
            pipe.xdel(self.stream, *chunk)
            pipe.execute()

    def touch(self, ids: list[bytes]) -> None:
        """Tell the group this loader still works on `ids` (their idle time starts again), so
        that no other loader claims them while a slow load runs."""
        for start in range(0, len(ids), ACK_CHUNK):
            chunk = ids[start : start + ACK_CHUNK]
            ids_: list[Any] = list(chunk)  # (the stubs say one id, not a sequence)
            self.client.xclaim(self.stream, GROUP, self.consumer, 0, ids_, justid=True)

    def owned(self, ids: list[bytes], *, fresh: bool = False) -> set[bytes]:
        """Which of `ids` are still pending to this loader (not claimed by another).

        `fresh`: the batch was new entries (`XREADGROUP >`), read when nothing else was
        pending to this loader (else that would have been read first), so what is pending to
        it now is the batch less what others claimed: its count answers, without listing
        20 k entries (0.3 s of a 5 s probe)."""
        if not ids:
            return set()
        if fresh:
            summary: Any = self.client.xpending(self.stream, GROUP)
            for consumer in summary.get("consumers") or []:
                if _name(consumer) == self.consumer and int(consumer["pending"]) == len(ids):
                    return set(ids)
        keys = sorted(ids, key=entry_order)
        found: Any = self.client.xpending_range(
            self.stream,
            GROUP,
            min=keys[0],
            max=keys[-1],
            count=len(ids) + READ_COUNT,  # (its other pending entries may lie between)
            consumername=self.consumer,
        )
        mine = {bytes(e["message_id"]) for e in found}
        return {i for i in ids if i in mine}

    def existing(self, ids: list[bytes]) -> set[bytes]:
        """Which of `ids` are still in the stream."""
        pipe = self.client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xrange(self.stream, entry_id, entry_id, count=1)
        return {i for i, found in zip(ids, pipe.execute(), strict=True) if found}

    def unloaded(self) -> int:
        """Entries not yet loaded (loaded ones are deleted), delivered or not."""
        return int(self.client.xlen(self.stream))

    def forget_idle_consumers(self, idle_ms: int = FORGET_CONSUMERS_IDLE_MS) -> list[str]:
        """Remove consumers (loaders that stopped) idle this long with nothing pending, so
        that the group's list does not grow with every restart. Returns their names."""
        self.ensure_group()
        removed: list[str] = []
        for info in self.client.xinfo_consumers(self.stream, GROUP):
            name = _name(info)
            if name != self.consumer and not info["pending"] and info["idle"] >= idle_ms:
                self.client.xgroup_delconsumer(self.stream, GROUP, name)
                removed.append(name)
        return removed

    def announce(self, stored: int) -> None:
        """Tell the servers (their live dashboards) that `stored` events were stored."""
        self.client.publish(loaded_channel(self.stream), str(stored))

    def others(self) -> list[str]:
        """The other loaders that took entries within the claim idle time (alive)."""
        self.ensure_group()
        return [
            _name(info)
            for info in self.client.xinfo_consumers(self.stream, GROUP)
            if _name(info) != self.consumer and info["idle"] < self.claim_idle_ms
        ]

    def leave(self) -> None:
        """Leave the group when nothing is pending to this loader (what is stays, for
        another loader to claim)."""
        for info in self.client.xinfo_consumers(self.stream, GROUP):
            if _name(info) == self.consumer and not info["pending"]:
                self.client.xgroup_delconsumer(self.stream, GROUP, self.consumer)

    def close(self) -> None:
        self.client.close()


def _name(info: dict[str, Any]) -> str:
    name = info["name"]
    return name.decode() if isinstance(name, bytes) else str(name)
