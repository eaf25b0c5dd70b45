"""The queue's loader (server mode): Redis Streams → enrichment → event store.

Several run at once (`cadlink worker` on any host), each taking its own entries through the
consumer group (ingest/buffer/redis_stream.py). Exactly-once, as with the spool: each batch
commits a marker per entry in the store transaction that stores its rows; the entries are
then acknowledged and deleted, and their markers forgotten. A loader that dies between the
commit and the acknowledgement leaves markers behind: whoever is handed those entries again
finds them and only acknowledges them, so neither events (those without an id get a new one
each time they are loaded) nor drop counts are counted twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Unpack

import redis

from cadlink.ingest.buffer.redis_stream import (
    RedisStreamReader,
    StreamBatch,
    entry_order,
    loaded_channel,
    marker,
    marker_entry,
)
from cadlink.pipeline.loader import LoaderBase, LoaderOptions, LoaderStats
from cadlink.store.events.base import ONCE, AlreadyStored, EventStore

if TYPE_CHECKING:
    from cadlink.pipeline.enrichment import Enricher

log = logging.getLogger(__name__)

# How long the markers of a claimed batch outlive its acknowledgement: the loader it was
# claimed from (frozen, not dead) may resume and try to store it within this time.
KEEP_MARKERS_MS = 24 * 3600 * 1000


class StreamLoader(LoaderBase):
    def __init__(
        self,
        reader: RedisStreamReader,
        store: EventStore,
        enricher: Enricher,
        **options: Unpack[LoaderOptions],
    ) -> None:
        super().__init__(store, enricher, **options)
        self.reader = reader
        self._tidied = False
        self._markers_checked = 0.0
        try:
            self._tidy()
        except redis.RedisError as e:  # Redis is down: the first batch that reaches it tidies
            log.warning("the queue is unavailable (%s); loading starts once it answers", e)

    def _tidy(self) -> None:
        """Once, before the first batch: forget what loaders that stopped left behind."""
        if self._tidied:
            return
        self._forget_old_markers()
        for name in self.reader.forget_idle_consumers():
            log.info("removed queue consumer %s (gone, nothing pending)", name)
        self._tidied = True

    def _forget_old_markers(self) -> None:
        """Forget the markers older than `KEEP_MARKERS_MS` whose entries are gone from the
        stream: those of claimed batches, kept in case the loader they were taken from
        resumes, and those a loader left when it stopped between acknowledging and
        forgetting."""
        stream = self.reader.stream
        oldest = int(time.time() * 1000) - KEEP_MARKERS_MS
        entries = {
            entry: key
            for key in self.store.positions()
            if (entry := marker_entry(stream, key)) is not None and entry_order(entry)[0] < oldest
        }
        if entries:
            present = self.reader.existing(list(entries))
            self.store.forget_positions([k for e, k in entries.items() if e not in present])
        self._markers_checked = time.monotonic()

    def idle(self) -> bool:
        if time.monotonic() - self._markers_checked >= 600:
            try:
                self._forget_old_markers()
            except redis.RedisError as e:
                log.warning("could not look for old queue markers: %s", e)
        return super().idle()

    def run_once(self) -> int:
        self._tidy()
        batch = self.reader.read(self.budget)
        self.last_batch_full = batch.more  # more is waiting: load it at once
        stored = -1
        if not batch.empty:
            ids = list(batch.ids)  # the store empties the batch's data, not its ids
            try:
                with self._holding(ids):
                    stored = self._load(batch)
            except MemoryError:
                if not self._shrink(batch.size):
                    raise
                return 0  # the entries stay pending to this loader: read first next time
            self._loaded()
            self._acknowledge(ids, batch)
            if stored > 0:
                try:
                    self.reader.announce(stored)
                except redis.RedisError as e:  # only the live view's promptness depends on it
                    log.warning("could not announce stored events: %s", e)
        self.arrived_meanwhile = self.reader.unloaded() > 0
        return stored

    def _acknowledge(self, ids: list[bytes], batch: StreamBatch) -> None:
        """Acknowledge a stored batch's entries and forget their markers, but only those
        still pending to this loader: an entry another claimed meanwhile (this one was
        thought dead) keeps its marker, so that the other's load of it fails as
        `AlreadyStored` instead of storing it again. A claimed batch keeps its markers
        for `KEEP_MARKERS_MS`, in case the loader it was taken from resumes."""
        owned = self.reader.owned(ids, fresh=not batch.redelivered)
        lost = len(ids) - len(owned)
        if lost:
            log.warning("%d queue entries were claimed by another loader while this one "
                        "held them; their markers stay", lost)  # fmt: skip
        self.reader.ack([i for i in dict.fromkeys(ids + batch.gone) if i in owned or i not in ids])
        if not batch.claimed:
            self.store.forget_positions([marker(self.reader.stream, i) for i in ids if i in owned])

    @contextmanager
    def _holding(self, ids: list[bytes]) -> Iterator[None]:
        """While a batch loads, touch its entries every quarter of the claim idle time: a
        slow load (a store waiting for a lock) must not look like a dead loader, whose
        entries another would claim and store a second time. (A loader frozen whole, a
        stopped process, stops touching them: then they are claimed, as they should be.)"""
        stop = threading.Event()
        every = max(0.05, self.reader.claim_idle_ms / 4000)

        def beat() -> None:
            while not stop.wait(every):
                try:
                    self.reader.touch(ids)
                except redis.RedisError as e:
                    log.warning("could not tell the queue this loader is alive: %s", e)

        thread = threading.Thread(target=beat, name="queue-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _load(self, batch: StreamBatch) -> int:
        stream = self.reader.stream
        if batch.redelivered:
            self._skip_stored(batch)
        for _ in range(3):
            if not batch.ids:
                return 0
            positions = {marker(stream, i): ONCE for i in batch.ids}
            try:
                return self._store_records(batch.data, positions, self._rereader(batch.ids))
            except AlreadyStored as e:  # another loader stored some meanwhile: leave them out
                log.warning("%s by another loader meanwhile; loading the rest", e)
                self._skip_stored(batch)
        raise RuntimeError("queue entries kept being stored by another loader meanwhile")

    def _rereader(self, ids: list[bytes]) -> Callable[[], bytes]:
        """How to read the records of `ids` again (the store empties a batch's data)."""
        return lambda: b"".join(r for _, r in self.reader.reread(ids))

    def _skip_stored(self, batch: StreamBatch) -> None:
        """Leave out of a redelivered batch the entries whose markers say they were stored
        (their acknowledgement was lost): they are acknowledged with the rest."""
        stream = self.reader.stream
        committed = self.store.positions()
        done = [i for i in batch.ids if marker(stream, i) in committed]
        if not done:
            return
        log.info("%d redelivered queue entries were stored already", len(done))
        skip = set(done)
        kept = [(i, r) for i, r in self.reader.reread(batch.ids) if i not in skip]
        batch.gone.extend(done)
        batch.ids = [i for i, _ in kept]
        batch.data = bytearray(b"".join(r for _, r in kept))
        batch.records = len(kept)

    def _finish(self) -> None:
        """Stopping leaves what the queue holds to the other loaders (or the next start):
        it is durable in Redis."""
        try:
            self.reader.leave()
        except Exception:
            log.exception("could not leave the queue's consumer group")
        self.reader.close()


class QueueLoaders:
    """What a server holds of the `cadlink worker`s that load its queue (server mode): it
    hears their announcements of stored events (Redis pub/sub), which drive its live
    dashboard (`on_loaded`) and count in its `events_stored`. Their other numbers are in
    their own logs."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client = client
        self.channel = loaded_channel(stream)
        self.stats = LoaderStats()
        self.on_loaded: Callable[[int], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._listen, name="queue-loaded", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        deaf = False  # said so once per outage, not every second of it
        while not self._stop.is_set():
            try:
                with self.client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    pubsub.subscribe(self.channel)
                    if deaf:
                        log.warning("hearing the queue's loaders again")
                        deaf = False
                    while not self._stop.is_set():
                        message = pubsub.get_message(timeout=0.5)
                        if message is not None:
                            self._heard(int(message["data"]))
            except (redis.RedisError, ValueError) as e:
                if not deaf:
                    log.warning("not hearing the queue's loaders (%s); trying again", e)
                    deaf = True
                self._stop.wait(1.0)

    def _heard(self, stored: int) -> None:
        self.stats.events_stored += stored
        self.stats.last_batch_at = time.time()
        if self.on_loaded is not None:
            try:
                self.on_loaded(stored)
            except Exception:
                log.exception("on_loaded failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.client.close()
