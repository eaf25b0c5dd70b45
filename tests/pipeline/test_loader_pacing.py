"""A loader that has caught up paces its batches by how long the last one took: light traffic
is stored within an interval, steady traffic in fewer, larger batches."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.buffer import SpoolReader, SpoolWriter
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import BUSY_SHARE, Loader
from cadlink.store.events.duckdb_store import DuckDBEventStore

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _loader(tmp_path: Path, interval: float, max_delay: float) -> Loader:
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    enricher = Enricher(UserAgentParser(), GeoLocator())
    return Loader(
        SpoolReader(tmp_path / "spool"), store, enricher, interval=interval, max_delay=max_delay
    )


def test_period_follows_the_last_batch_between_interval_and_max_delay(tmp_path: Path) -> None:
    loader = _loader(tmp_path, interval=0.2, max_delay=1.0)
    assert loader.period(0.01) == 0.2  # light traffic: every interval
    assert loader.period(0.1) == 0.1 * BUSY_SHARE  # busy: upkeep takes a fifth of the time
    assert loader.period(0.5) == 1.0  # never longer than max_delay
    assert _loader(tmp_path / "b", interval=0.5, max_delay=0.1).period(0.0) == 0.5


def test_a_steady_stream_is_stored_in_batches_that_grow_with_their_cost(tmp_path: Path) -> None:
    """Each batch costs at least `slow` s here, so the loader must wait BUSY_SHARE times that
    between batches instead of polling every interval: 3 s of a steady stream take a handful
    of batches, not one per interval, and every event is stored."""
    loader = _loader(tmp_path, interval=0.02, max_delay=0.5)
    slow = 0.05
    load = loader.store.load

    def slow_load(records, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(slow)  # a store under load: the batch's fixed cost
        return load(records, *args, **kwargs)

    loader.store.load = slow_load  # type: ignore[method-assign]
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    loader.start()
    sent = 0
    stop = time.monotonic() + 3.0
    while time.monotonic() < stop:
        event = IncomingEvent(event_type="page_view", event_id=f"e{sent}",
                              timestamp=int(time.time() * 1000), page_url="https://s.example/")  # fmt: skip
        env = Envelope(int(time.time() * 1000), "site-1", sent % 50, "203.0.113.0", UA, [event])
        writer.put(encode_envelope(env))
        sent += 1
        time.sleep(0.002)
    deadline = time.monotonic() + 10
    while loader.stats.events_stored < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    loader.stop()
    writer.close()
    assert loader.stats.events_stored == sent
    # Polling every interval would take 3 s / (0.02 + 0.05) s ≈ 43 batches; pacing at
    # 5 x 0.05 s takes about 3 s / 0.25 s = 12.
    assert loader.stats.batches <= 20, loader.stats.batches


def test_after_a_burst_has_ended_the_next_event_is_stored_within_an_interval(
    tmp_path: Path,
) -> None:
    """The burst's batch took long (its period would be 2.5 s), but nothing arrived while it
    was written: traffic is light again, so the loader looks again after an interval."""
    loader = _loader(tmp_path, interval=0.05, max_delay=3.0)
    load = loader.store.load

    def slow_load(records, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.5 if records.count(b"\n") > 100 else 0.0)  # the burst's batch is slow
        return load(records, *args, **kwargs)

    loader.store.load = slow_load  # type: ignore[method-assign]
    writer = SpoolWriter(tmp_path / "spool", fsync="never")

    def put(event_id: str) -> None:
        now = int(time.time() * 1000)
        event = IncomingEvent(event_type="page_view", event_id=event_id, timestamp=now,
                              page_url="https://s.example/")  # fmt: skip
        writer.put(encode_envelope(Envelope(now, "site-1", 7, "", UA, [event])))

    # The next event must arrive after the burst's batch has ended, i.e. after the loader has
    # looked for what arrived meanwhile (else it rightly counts as a steady stream's event).
    burst_done = threading.Event()
    unloaded_bytes = loader.reader.unloaded_bytes

    def looked(positions):  # type: ignore[no-untyped-def]
        unloaded = unloaded_bytes(positions)
        if loader.stats.events_stored >= 500:
            burst_done.set()
        return unloaded

    loader.reader.unloaded_bytes = looked  # type: ignore[method-assign]
    for i in range(500):
        put(f"burst-{i}")
    loader.start()
    assert burst_done.wait(10)
    assert loader.stats.events_stored == 500
    assert not loader.arrived_meanwhile
    assert loader.period(0.5) == 2.5  # what a steady stream would wait
    sent = time.monotonic()
    put("after")
    while loader.stats.events_stored < 501 and time.monotonic() < sent + 10:
        time.sleep(0.01)
    waited = time.monotonic() - sent
    loader.stop()
    writer.close()
    assert loader.stats.events_stored == 501
    assert waited < 1.0, f"stored {waited:.2f} s after it arrived"
