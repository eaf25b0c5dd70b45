"""The loader: buffer → enrichment → event store, in batches, off the request path.

Exactly-once: rows, drop counts and the buffer positions they came from are committed in one
store transaction, and the store skips event ids it already holds. A crash anywhere replays
from the last committed position and changes nothing twice.

A batch is whole buffer records, read into one buffer with a `readinto()` per segment and
handed to the store as it is (the store empties it once staged): the store parses and
enriches them in DuckDB (store/events/staging.py), which runs without the interpreter lock,
so loading takes little from the request path beyond the CPU it uses. Python sees a
batch's new distinct user agents, places, referrers and consented visitors, not its events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypedDict, Unpack

import msgspec

from cadlink.events import Envelope, decode_envelope, encode_envelope
from cadlink.ingest.buffer import Backlog, ReadBatch, SpoolReader
from cadlink.store.events.base import AlreadyStored, EventStore, Loaded, StoreBatch
from cadlink.store.events.staged import Identity, Lookups

if TYPE_CHECKING:
    from cadlink.pipeline.enrichment import Enricher

log = logging.getLogger(__name__)

BUSY_SHARE = 5.0  # a caught-up loader's period, in multiples of its last batch's duration
DEFAULT_BATCH_BYTES = 16 << 20
MIN_BATCH_BYTES = 64 << 10  # the smallest batch the loader shrinks to when memory runs out
SETTLE_AFTER_S = 5.0  # quiet time after the last batch before the store settles (`idle`)


@dataclass
class LoaderStats:
    batches: int = 0
    events_stored: int = 0
    events_dropped: int = 0
    last_batch_at: float = 0.0
    last_event_received_ms: int = 0  # newest arrival time loaded: loader lag = now - this
    errors: int = 0
    dead_letters: int = 0  # buffer records that could not be loaded, kept in `dead_letters`
    sessions_rebuilt: int = 0  # visitors whose sessions took the slow path (`Loaded`)
    batches_widened: int = 0  # batches loaded again within the configured limit (`Loaded`)
    store_reattached: int = 0  # times the event store attached its file anew (DuckDB store)
    store_merges: int = 0  # times it merged the loader's row groups (DuckDB store: `upkeep`)


class LoaderControl(Protocol):
    """What the web process holds of the loader: the loader itself, or the store process
    that runs it (pipeline/store_process.py)."""

    @property
    def stats(self) -> LoaderStats: ...

    on_loaded: Callable[[int], None] | None

    def start(self) -> None: ...

    def stop(self) -> None:
        """Stop loading once what the buffer holds is stored."""


class LoaderOptions(TypedDict, total=False):
    """`LoaderBase`'s keyword options, which every loader passes on."""

    batch_bytes: int
    interval: float
    max_delay: float
    on_identities: Callable[[list[Identity]], None] | None
    on_loaded: Callable[[int], None] | None
    settle_after: float


class Failures:
    """The log of a run of failed batches: the first with its traceback, then a line a minute
    while they go on (a store or queue down for an hour must not write thousands of
    tracebacks), and one when loading works again."""

    EVERY = 60.0

    def __init__(self) -> None:
        self.count = 0
        self._since = 0.0
        self._logged = 0.0

    def failed(self, error: Exception) -> None:
        now = time.monotonic()
        self.count += 1
        if self.count == 1:
            self._since = self._logged = now
            log.exception("loader batch failed; retrying")
        elif now - self._logged >= self.EVERY:
            self._logged = now
            log.error(
                "loader batches still failing (%d in %.0f s; retrying): %s",
                self.count,
                now - self._since,
                error,
            )

    def recovered(self) -> None:
        if self.count:
            log.warning(
                "loading works again after %d failed batches in %.0f s",
                self.count,
                time.monotonic() - self._since,
            )
            self.count = 0


class LoaderBase:
    """What every loader shares: enrichment, stats, pacing, settling, the thread. A
    subclass reads its buffer in `run_once` and says what stopping leaves (`_finish`)."""

    def __init__(
        self,
        store: EventStore,
        enricher: Enricher,
        *,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        interval: float = 0.5,
        max_delay: float = 1.0,
        on_identities: Callable[[list[Identity]], None] | None = None,
        on_loaded: Callable[[int], None] | None = None,
        settle_after: float = SETTLE_AFTER_S,
    ) -> None:
        self.store = store
        self.enricher = enricher
        self.batch_bytes = batch_bytes
        # What the next batch may take: `batch_bytes`, or less after a batch ran out of memory
        # (a small CADLINK_DUCKDB_MEMORY_LIMIT); it grows back by an eighth per batch that fits.
        self.budget = batch_bytes
        self.interval = interval
        self.max_delay = max(interval, max_delay)
        self.on_identities = on_identities
        self.on_loaded = on_loaded
        self.stats = LoaderStats()
        self.last_batch_full = False
        self.arrived_meanwhile = False  # did records arrive while the last batch was loaded?
        self.settle_after = settle_after
        self._loaded_at: float | None = None  # monotonic time of the last batch not yet settled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Load what the buffer holds now (up to one batch); returns events stored, or -1
        when there was nothing to load."""
        raise NotImplementedError

    def _store_records(
        self, data: bytearray, positions: dict[str, int], reread: Callable[[], bytes]
    ) -> int:
        """Store a batch's records with the positions they end at. If the store fails, the
        records are read again (`reread`: the store empties `data` once it has staged its
        own copy) and checked one by one: those that cannot be loaded are kept as dead
        letters with the rest; if all are fine, the store's error is raised (the batch is
        retried later)."""
        staging = self.enricher.staging
        busy = self.arrived_meanwhile  # records arrived while the last batch was loaded
        try:
            return self._record(self.store.load(data, positions, staging, busy=busy))
        except (MemoryError, AlreadyStored):
            raise  # run_once retries with a smaller batch; the queue's loader skips them
        except Exception:
            good, rejected = _split_bad(reread(), staging.lookups)
            if not rejected:
                raise  # the records are fine: the store failed; retry the batch later
        log.error("%d buffer records cannot be loaded: kept as dead letters", len(rejected))
        loaded = self.store.load(good, positions, staging, rejected, busy=busy)
        return self._record(loaded, len(rejected))

    def _shrink(self, size: int) -> bool:
        """A batch of `size` bytes did not fit in memory: the next ones take half as much.
        False when the budget is already the smallest (the caller raises the error)."""
        if self.budget <= MIN_BATCH_BYTES:
            return False
        self.budget = max(MIN_BATCH_BYTES, min(self.budget, size) // 2)
        log.warning(
            "a batch of %d bytes did not fit in memory; trying %d bytes at a time "
            "(raise CADLINK_DUCKDB_MEMORY_LIMIT to load faster)",
            size,
            self.budget,
        )
        self.last_batch_full = True  # try again at once, smaller
        return True

    def _loaded(self) -> None:
        """A batch was stored: grow the budget back slowly (a budget that failed once is
        tried again only after a while); settle once quiet."""
        self.budget = min(self.batch_bytes, self.budget + self.budget // 8)
        self._loaded_at = time.monotonic()

    def load_envelopes(self, envelopes: Iterable[Envelope]) -> int:
        """Enrich and store envelopes directly (the demo generator and imports use this)."""
        records = b"".join(encode_envelope(e) for e in envelopes)
        return self._record(self.store.load(records, {}, self.enricher.staging))

    def load_history(self, chunks: Iterable[list[Envelope]], batch_events: int = 100_000) -> int:
        """Bulk-load generated or imported history: enrich, append in large batches, then
        rebuild the sessions of the sites touched once. Event ids must be unique."""
        sites: set[str] = set()
        stored = 0
        pending: list[Envelope] = []
        count = 0

        def flush() -> int:
            enriched = self.enricher.enrich(pending)
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
                self._upkeep()  # a long history is stored as a running loader keeps it
                pending, count = [], 0
        if pending:
            stored += flush()
        for site in sorted(sites):
            self.store.rebuild_sessions(site)
        self._upkeep()
        self.stats.events_stored += stored
        return stored

    def _record(self, loaded: Loaded, rejected: int = 0) -> int:
        staged = loaded.staged
        self.stats.batches += 1
        self.stats.dead_letters += rejected
        self.stats.events_stored += loaded.stored
        self.stats.sessions_rebuilt += loaded.sessions_rebuilt
        self.stats.batches_widened += loaded.widened
        self._count_store()
        self.stats.events_dropped += sum(staged.drops.values())
        self.stats.last_batch_at = time.time()
        self.stats.last_event_received_ms = max(
            self.stats.last_event_received_ms, staged.newest_received_ms
        )
        if staged.identities and self.on_identities is not None:
            try:
                self.on_identities(staged.identities)
            except Exception:  # identities are a convenience; never block loading on them
                log.exception("could not record identified users")
        if loaded.stored and self.on_loaded is not None:
            self.on_loaded(loaded.stored)
        return loaded.stored

    def idle(self) -> bool:
        """Called when there was nothing to load: once `settle_after` seconds have passed
        since the last batch, let the store settle what it wrote (a burst's memory goes back
        to the system). Returns whether it did."""
        if self._loaded_at is None or time.monotonic() - self._loaded_at < self.settle_after:
            return False
        self.store.settle()  # if it raises, the next idle call asks again
        self._count_store()
        self._loaded_at = None
        return True

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
        failing = Failures()
        while not self._stop.is_set():
            try:
                started = time.monotonic()
                if self.run_once() < 0:
                    self.idle()
                    self._upkeep()
                    failing.recovered()
                    self._stop.wait(self.interval)
                    continue
                failing.recovered()
                if not self.last_batch_full:
                    took = time.monotonic() - started
                    # Pace only a steady stream: after a burst that has ended, the next event
                    # is stored within an interval, however long the burst's batch took.
                    period = self.period(took) if self.arrived_meanwhile else self.interval
                    self._upkeep()  # caught up: upkeep takes no time from a backlog
                    self._stop.wait(max(0.0, period - (time.monotonic() - started)))
            except Exception as e:
                self.stats.errors += 1
                failing.failed(e)
                self._stop.wait(min(5.0, self.interval * 4))

    def _upkeep(self) -> None:
        self.store.upkeep()
        self._count_store()

    def _count_store(self) -> None:
        """The DuckDB store's counters (duckdb_attach.py; other stores have no file)."""
        self.stats.store_reattached = int(getattr(self.store, "reattached", 0))
        self.stats.store_merges = int(getattr(self.store, "merges", 0))

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
        self._finish()

    def _finish(self) -> None:
        """What stopping does once the thread has ended: store what the buffer holds (the
        spool has one loader; a queue's loader leaves the rest to the others)."""
        try:
            self.drain()
        except Exception:
            log.exception("final drain failed; the buffer keeps the events for the next start")


class Loader(LoaderBase):
    """The spool's loader (embedded mode): positions per segment, committed with the rows."""

    def __init__(
        self,
        reader: SpoolReader,
        store: EventStore,
        enricher: Enricher,
        *,
        backlog: Backlog | None = None,
        **options: Unpack[LoaderOptions],
    ) -> None:
        super().__init__(store, enricher, **options)
        self.reader = reader
        self.backlog = backlog
        self._positions = store.positions()
        present = {p.name for p in reader.segments()}
        # Only this spool's positions: the store may also hold a queue loader's markers
        # (redis_stream.py) and other spools' positions (other hosts, `cadlink demo`).
        ours = {s: p for s, p in self._positions.items() if reader.owns(s)}
        self.store.forget_positions([s for s in ours if s not in present])
        self._positions = {s: p for s, p in ours.items() if s in present}
        if backlog is not None:
            backlog.set(reader.unloaded_bytes(self._positions))

    def _load(self, batch: ReadBatch) -> int:
        return self._store_records(
            batch.data, batch.positions, lambda: self.reader.reread(batch.spans)
        )

    def run_once(self) -> int:
        """Load what the buffer holds now (up to one batch); returns events stored, or -1
        when there was nothing to load."""
        batch = self.reader.read(self._positions, self.budget)
        self.last_batch_full = batch.more  # more is waiting: load it at once
        stored = -1
        if batch.positions:
            try:
                stored = self._load(batch)
            except MemoryError:
                if not self._shrink(batch.size):
                    raise
                return 0
            self._loaded()
            self._positions.update(batch.positions)
        removed = self.reader.cleanup(self._positions)
        if removed:
            self.store.forget_positions(removed)
            for name in removed:
                self._positions.pop(name, None)
        unloaded = self.reader.unloaded_bytes(self._positions)
        self.arrived_meanwhile = unloaded > 0
        if self.backlog is not None:
            self.backlog.set(unloaded)
        return stored


def _split_bad(records: bytes, lookups: Lookups) -> tuple[bytes, list[tuple[bytes, str]]]:
    """The records of a batch that failed, less those that cannot be loaded: they do not
    decode (a writer of another version, a damaged file), or a lookup fails on a value of
    theirs (a parser bug). Each bad record is returned with why."""
    good: list[bytes] = []
    rejected: list[tuple[bytes, str]] = []
    for line in records.split(b"\n"):
        if not line:
            continue
        try:
            envelope = decode_envelope(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            rejected.append((line, f"undecodable: {e}"))
            continue
        try:
            _check_lookups(envelope, lookups)
        except MemoryError:
            raise
        except Exception as e:
            rejected.append((line, f"enrichment failed: {e!r}"[:1000]))
            continue
        good.append(line + b"\n")
    return b"".join(good), rejected


def _check_lookups(env: Envelope, lookups: Lookups) -> None:
    """Ask the lookups everything staging `env` would ask (raises what they raise)."""
    lookups.user_agents([env.user_agent])
    if env.ip_prefix:
        lookups.places([env.ip_prefix])
    lookups.attributions(
        [
            (e.referrer, e.page_url, e.utm_source, e.utm_medium, e.utm_campaign, e.utm_term,
             e.utm_content)
            for e in env.events
        ]
    )  # fmt: skip
    lookups.visitors(
        [(env.site_id, e.visitor_id) for e in env.events if e.consent and e.visitor_id]
    )
