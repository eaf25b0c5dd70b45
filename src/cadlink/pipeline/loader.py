"""The loader: buffer → enrichment → event store, in batches, off the request path.

Exactly-once: rows, drop counts and the buffer positions they came from are committed in one
store transaction, and the store skips event ids it already holds. A crash anywhere replays
from the last committed position and changes nothing twice.

Batches are prepared (read, decoded, enriched) by a `BatchSource`: in this thread, or in a
child process that works on the next batch while this thread writes the current one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cadlink.events import Envelope
from cadlink.ingest.buffer import Backlog, SpoolReader
from cadlink.pipeline.enrichment import Enricher, Identity
from cadlink.pipeline.prepare import BatchSource, InlineSource, PreparedBatch
from cadlink.store.events.base import EventStore, StoreBatch

log = logging.getLogger(__name__)

BUSY_SHARE = 5.0  # a caught-up loader's period, in multiples of its last batch's duration


@dataclass
class LoaderStats:
    batches: int = 0
    events_stored: int = 0
    events_dropped: int = 0
    last_batch_at: float = 0.0
    last_event_received_ms: int = 0  # newest arrival time loaded: loader lag = now - this
    errors: int = 0
    dead_letters: int = 0  # buffer records that could not be loaded, kept in `dead_letters`


class Loader:
    def __init__(
        self,
        reader: SpoolReader,
        store: EventStore,
        enricher: Enricher | None,
        *,
        batch_events: int = 10_000,
        interval: float = 0.5,
        max_delay: float = 1.0,
        backlog: Backlog | None = None,
        on_identities: Callable[[list[Identity]], None] | None = None,
        on_loaded: Callable[[int], None] | None = None,
        source: BatchSource | None = None,
    ) -> None:
        self.reader = reader
        self.store = store
        self.enricher = enricher
        if source is None:
            if enricher is None:
                raise ValueError("a loader needs an enricher or a batch source")
            source = InlineSource(reader, enricher)
        self.source: BatchSource = source
        self.batch_events = batch_events
        self.interval = interval
        self.max_delay = max(interval, max_delay)
        self.backlog = backlog
        self.on_identities = on_identities
        self.on_loaded = on_loaded
        self.stats = LoaderStats()
        self.last_batch_full = False
        self.arrived_meanwhile = False  # did records arrive while the last batch was loaded?
        self._positions = store.positions()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        present = {p.name for p in reader.segments()}
        self.store.forget_positions([s for s in self._positions if s not in present])
        self._positions = {s: p for s, p in self._positions.items() if s in present}
        if backlog is not None:
            backlog.set(reader.unloaded_bytes(self._positions))

    def load_envelopes(self, envelopes: Iterable[Envelope]) -> int:
        """Enrich and store envelopes directly (the demo generator and imports use this)."""
        batch = list(envelopes)
        enriched = self._enricher().enrich(batch)
        newest = max((e.received_ms for e in batch), default=0)
        return self._write(
            PreparedBatch(
                enriched.rows, enriched.drops, enriched.identities, {}, len(batch), newest
            )
        )

    def load_history(self, chunks: Iterable[list[Envelope]], batch_events: int = 100_000) -> int:
        """Bulk-load generated or imported history: enrich, append in large batches, then
        rebuild the sessions of the sites touched once. Event ids must be unique."""
        sites: set[str] = set()
        stored = 0
        pending: list[Envelope] = []
        count = 0

        enricher = self._enricher()

        def flush() -> int:
            enriched = enricher.enrich(pending)
            n = self.store.append(StoreBatch(enriched.rows, enriched.drops))
            if enriched.identities and self.on_identities is not None:
                self.on_identities(enriched.identities)
            return n

        for chunk in chunks:
            for env in chunk:
                sites.add(env.site_id)
                count += len(env.events)
            pending.extend(chunk)
            if count >= batch_events:
                stored += flush()
                pending, count = [], 0
        if pending:
            stored += flush()
        for site in sorted(sites):
            self.store.rebuild_sessions(site)
        self.stats.events_stored += stored
        return stored

    def _enricher(self) -> Enricher:
        if self.enricher is None:
            raise RuntimeError("this loader enriches in a child process only")
        return self.enricher

    def _write(self, batch: PreparedBatch) -> int:
        stored = self.store.write(
            StoreBatch(batch.rows, batch.drops, batch.positions, batch.rejected)
        )
        self.stats.batches += 1
        self.stats.dead_letters += len(batch.rejected)
        self.stats.events_stored += stored
        self.stats.events_dropped += sum(batch.drops.values())
        self.stats.last_batch_at = time.time()
        self.stats.last_event_received_ms = max(
            self.stats.last_event_received_ms, batch.newest_received_ms
        )
        if batch.identities and self.on_identities is not None:
            try:
                self.on_identities(batch.identities)
            except Exception:  # identities are a convenience; never block loading on them
                log.exception("could not record identified users")
        if stored and self.on_loaded is not None:
            self.on_loaded(stored)
        return stored

    def run_once(self) -> int:
        """Load what the buffer holds now (up to one batch); returns events stored."""
        batch = self.source.next(self._positions, self.batch_events)
        stored = 0
        self.last_batch_full = batch.events >= self.batch_events
        if batch.records:
            if self.last_batch_full:
                # More is waiting: let the source prepare it while this batch is written.
                self.source.prefetch(self._positions | batch.positions, self.batch_events)
            stored = self._write(batch)
            self._positions.update(batch.positions)
        removed = self.reader.cleanup(self._positions)
        if removed:
            self.store.forget_positions(removed)
            self.source.forget(removed)
            for name in removed:
                self._positions.pop(name, None)
        unloaded = self.reader.unloaded_bytes(self._positions)
        self.arrived_meanwhile = unloaded > 0
        if self.backlog is not None:
            self.backlog.set(unloaded)
        return stored if batch.records else -1

    def drain(self) -> int:
        """Load until the buffer is empty; returns events stored."""
        total = 0
        while (n := self.run_once()) >= 0:
            total += n
        return total

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                started = time.monotonic()
                if self.run_once() < 0:
                    self._stop.wait(self.interval)
                elif not self.last_batch_full:
                    took = time.monotonic() - started
                    # Pace only a steady stream: after a burst that has ended, the next event
                    # is stored within an interval, however long the burst's batch took.
                    period = self.period(took) if self.arrived_meanwhile else self.interval
                    self._stop.wait(max(0.0, period - took))
            except Exception:
                self.stats.errors += 1
                log.exception("loader batch failed; retrying")
                self._stop.wait(min(5.0, self.interval * 4))

    def period(self, took: float) -> float:
        """When a loader that has caught up starts its next batch, counted from the start of
        the one that took `took` seconds.

        Not at once: a batch has a fixed cost (two dozen statements, about 80 ms with a few
        hundred thousand events stored), so a steady stream in small batches would cost
        several times what it costs in large ones, and that CPU is taken from the request
        path. Light traffic is loaded every `interval`; under load the loader waits
        `BUSY_SHARE` times as long as its last batch took, up to `max_delay`, so that upkeep
        takes at most about a fifth of the time and batches grow with the traffic. A full
        batch never waits (see `_run`).
        """
        return min(self.max_delay, max(self.interval, took * BUSY_SHARE))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.drain()
        except Exception:
            log.exception("final drain failed; the buffer keeps the events for the next start")
        finally:
            self.source.close()
