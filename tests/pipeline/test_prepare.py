"""Batches prepared by the enrichment child process equal those prepared in the loader, and
the child's work-ahead never skips or repeats a record, whatever fails in between."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from cadlink.events import Envelope, IncomingEvent
from cadlink.ingest.buffer import SpoolReader, SpoolWriter
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.pipeline.prepare import ChildSource, InlineSource, PreparedBatch, WorkerConfig
from cadlink.store.events.base import StoreBatch
from cadlink.store.events.duckdb_store import DuckDBEventStore

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
NOW = int(time.time() * 1000)


def _fill(spool: Path, envelopes: int, per: int = 3, segment_bytes: int = 4000) -> list[str]:
    """Writes `envelopes` records (one is a bot's, one identifies a user); returns the ids."""
    writer = SpoolWriter(spool, segment_bytes=segment_bytes, fsync="never")
    ids = []
    for i in range(envelopes):
        events = []
        for j in range(per):
            ids.append(f"e{i}-{j}")
            kind = "identify" if (i, j) == (3, 0) else "page_view"
            events.append(
                IncomingEvent(
                    event_type=kind,
                    event_id=ids[-1],
                    timestamp=NOW - 1000 + i,
                    page_url=f"https://shop.example/p/{i % 5}?utm_source=news",
                    user_id="u-1" if kind == "identify" else None,
                    properties={"n": i},
                )
            )
        agent = "curl/8.5.0" if i == 7 else UA
        env = Envelope(NOW + i, "site-1", 1000 + i % 4, "203.0.113.0", agent, events)
        writer.put(msgspec.msgpack.encode(env), per)
    writer.close()
    return ids


def _config(spool: Path) -> WorkerConfig:
    return WorkerConfig(str(spool), 72, None, None, nice=0)


@pytest.fixture
def child(tmp_path: Path) -> Iterator[ChildSource]:
    source = ChildSource(_config(tmp_path / "spool"))
    try:
        yield source
    finally:
        source.close()


def _enricher() -> Enricher:
    return Enricher(UserAgentParser(), GeoLocator(country_path=None), 72)


def _same(a: PreparedBatch, b: PreparedBatch) -> None:
    assert a.rows.equals(b.rows)
    assert (a.drops, a.positions, a.records, a.events) == (
        b.drops,
        b.positions,
        b.records,
        b.events,
    )
    assert a.newest_received_ms == b.newest_received_ms
    assert [(i.site_id, i.user_id, i.traits, i.seen_at) for i in a.identities] == [
        (i.site_id, i.user_id, i.traits, i.seen_at) for i in b.identities
    ]


def test_the_child_prepares_what_the_loader_would(tmp_path: Path, child: ChildSource) -> None:
    _fill(tmp_path / "spool", 40)
    inline = InlineSource(SpoolReader(tmp_path / "spool"), _enricher())
    positions: dict[str, int] = {}
    batches, drops, identities = 0, 0, 0
    while True:
        expected = inline.next(positions, 25)
        child.prefetch(positions, 25)
        got = child.next(positions, 25)
        _same(got, expected)
        if not got.records:
            break
        batches += 1
        drops += sum(got.drops.values())
        identities += len(got.identities)
        positions |= got.positions
    assert (batches > 3, drops, identities) == (True, 3, 1)


def test_work_ahead_is_dropped_when_the_write_fails(tmp_path: Path, child: ChildSource) -> None:
    _fill(tmp_path / "spool", 20)
    first = child.next({}, 12)
    child.prefetch(first.positions, 12)  # the batch after `first`, while `first` is written
    # the write failed: the loader asks again from the committed (empty) positions
    again = child.next({}, 12)
    _same(again, first)


def test_a_killed_child_is_started_again(tmp_path: Path, child: ChildSource) -> None:
    _fill(tmp_path / "spool", 20)
    first = child.next({}, 12)
    child.prefetch(first.positions, 12)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)  # with or without its answer written
    try:
        second = child.next(first.positions, 12)
    except (EOFError, OSError):  # the answer was lost: the loader asks again
        second = child.next(first.positions, 12)
    expected = InlineSource(SpoolReader(tmp_path / "spool"), _enricher())
    _same(second, expected.next(first.positions, 12))
    assert second.records


class _FailingStore(DuckDBEventStore):
    """Fails every third write after committing nothing."""

    calls = 0

    def write(self, batch: StoreBatch) -> int:
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError("disk trouble")
        return super().write(batch)


def test_the_loader_with_a_child_stores_every_event_once(tmp_path: Path) -> None:
    ids = _fill(tmp_path / "spool", 60)
    store = _FailingStore(str(tmp_path / "events.duckdb"))
    reader = SpoolReader(tmp_path / "spool")
    loader = Loader(
        reader, store, None, batch_events=20, source=ChildSource(_config(reader.directory))
    )
    try:
        failures = 0
        while True:
            try:
                if loader.run_once() < 0:
                    break
            except RuntimeError:
                failures += 1
        assert failures > 3
        rows = store.fetch("SELECT event_id FROM analytics_events", [])
        bot = {f"e7-{j}" for j in range(3)}
        assert sorted(r["event_id"] for r in rows) == sorted(set(ids) - bot)
        assert reader.segments() == []  # every sealed, loaded segment was deleted
    finally:
        loader.source.close()
        store.close()


class _BusyReader(SpoolReader):
    """A buffer the server keeps appending to: every read is followed by one more record."""

    def __init__(self, directory: Path, writer: SpoolWriter) -> None:
        super().__init__(directory)
        self.writer = writer
        self.reads = 0

    def read(self, positions: dict[str, int], max_events: int):  # type: ignore[no-untyped-def]
        self.reads += 1
        batch = super().read(positions, max_events)
        event = IncomingEvent(event_type="page_view", event_id=f"late-{self.reads}", timestamp=NOW)
        env = Envelope(NOW, "site-1", 1, "203.0.113.0", UA, [event])
        self.writer.put(msgspec.msgpack.encode(env), 1)
        return batch


def test_a_batch_ends_where_the_buffer_ended_when_it_was_read(tmp_path: Path) -> None:
    """Records appended while a batch is prepared belong to the next batch: chasing them in
    chunks of one record would cost a chunk's overhead per record."""
    _fill(tmp_path / "spool", 5, segment_bytes=1 << 20)
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    reader = _BusyReader(tmp_path / "spool", writer)
    batch = InlineSource(reader, _enricher()).next({}, 10_000)
    writer.close()
    assert (batch.records, batch.events, reader.reads) == (5, 15, 1)
