"""Several spools loading into one store: servers on other hosts sharing a PostgreSQL store,
or `cadlink demo`'s private spool beside the server's. Each loader keeps and forgets only its
own spool's positions, so a restart never loads what another spool's loader stored."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.buffer import SpoolReader, SpoolWriter
from cadlink.ingest.buffer.spool import ID_FILE, segment_spool, spool_id
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.store.events import open_event_store
from cadlink.store.events.base import EventStore

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SITE = "site-1"
NOW = int(time.time() * 1000)
_visitor = itertools.count(1)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'events.duckdb'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def enricher() -> Enricher:
    return Enricher(UserAgentParser(), GeoLocator(country_path=None), late_event_hours=72)


def _put_idless(writer: SpoolWriter, n: int) -> None:
    """`n` page views without event ids: the store gives each an id as it loads it, so one
    loaded twice is stored twice (nothing else would show a lost position)."""
    for i in range(n):
        event = IncomingEvent(event_type="page_view", timestamp=NOW + i, page_url="https://s.ex/")
        writer.put(encode_envelope(Envelope(NOW + i, SITE, next(_visitor), "", UA, [event])))


@pytest.fixture
def stores(store_url: str) -> Iterator[Callable[[], EventStore]]:
    """Opens stores on one database (a host each), closed after the test."""
    opened: list[EventStore] = []

    def open_store() -> EventStore:
        opened.append(open_event_store(store_url, 30))
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()


@pytest.mark.parametrize("other_has_events", [True, False], ids=["other-host", "demo-spool"])
def test_another_spools_loader_leaves_this_spools_positions(
    tmp_path: Path,
    store_url: str,
    stores: Callable[[], EventStore],
    enricher: Enricher,
    other_has_events: bool,
) -> None:
    # Host A's server: its active segment (still held by its writer) is loaded, not deleted.
    store_a = stores()
    writer_a = SpoolWriter(tmp_path / "a", fsync="never")
    _put_idless(writer_a, 3)
    assert Loader(SpoolReader(tmp_path / "a"), store_a, enricher).drain() == 3
    # Host B's server starts with its own spool (or `cadlink demo` with its private one;
    # one process holds a DuckDB file).
    store_b = store_a if store_url.startswith("duckdb") else stores()
    writer_b = SpoolWriter(tmp_path / "b", fsync="never")
    _put_idless(writer_b, 2 if other_has_events else 0)
    stored_b = Loader(SpoolReader(tmp_path / "b"), store_b, enricher).drain()
    assert stored_b == (2 if other_has_events else 0)
    # A restarts: it goes on from its committed position, not from the start of its segment.
    assert Loader(SpoolReader(tmp_path / "a"), store_a, enricher).drain() == 0
    assert store_a.count_events(SITE) == 3 + stored_b
    # B restarted after A: likewise.
    assert Loader(SpoolReader(tmp_path / "b"), store_b, enricher).drain() == 0
    assert store_a.count_events(SITE) == 3 + stored_b
    writer_a.close()
    writer_b.close()


def _position_names(store: EventStore) -> set[str]:
    return set(store.positions())


def test_a_loader_forgets_only_its_own_gone_segments(tmp_path: Path, enricher: Enricher) -> None:
    """At start a loader forgets the positions of its spool's segments that are gone; other
    spools' positions, and those of segments named before spools had ids that it does not
    hold (whose they are cannot be told), are left alone. An old-named segment it holds is
    its own: loading goes on from its position."""
    store = open_event_store(f"duckdb:///{tmp_path / 'events.duckdb'}", 30)
    reader = SpoolReader(tmp_path / "spool")
    held = f"{1:020d}-7-000001.spool"
    records = b"".join(
        encode_envelope(Envelope(NOW + i, SITE, 100 + i, "", UA, [IncomingEvent(
            event_type="page_view", timestamp=NOW + i, page_url="https://s.ex/")]))
        for i in range(2)
    )  # fmt: skip
    (reader.directory / held).write_bytes(records)
    first = records.index(b"\n") + 1
    mine_gone = f"{2:020d}-{reader.spool_id}-7-000001.spool"
    legacy_gone = f"{3:020d}-7-000001.spool"
    theirs = f"{4:020d}-0123456789ab-7-000001.spool"
    marker = "redis:cadlink:events:1-0"
    positions = {held: first, mine_gone: 10, legacy_gone: 10, theirs: 10}
    store.load(records[:first], positions, enricher.staging)
    store.load(b"", {marker: 0}, enricher.staging)
    loader = Loader(reader, store, enricher)
    assert _position_names(store) == {held, legacy_gone, theirs, marker}
    assert loader.drain() == 1  # the held segment's second record only
    assert store.count_events(SITE) == 2
    assert held not in _position_names(store)  # loaded, sealed: deleted and forgotten
    store.close()


def test_the_spool_id_is_made_once_and_names_the_segments(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    reader = SpoolReader(directory)  # the store process may ask first
    writer = SpoolWriter(directory, fsync="never")
    assert writer.spool_id == reader.spool_id == spool_id(directory)
    assert len(reader.spool_id) == 12 and int(reader.spool_id, 16) >= 0
    _put_idless(writer, 1)
    writer.close()
    [segment] = reader.segments()  # the id file is not a segment
    assert segment_spool(segment.name) == reader.spool_id
    assert reader.owns(segment.name)
    assert (directory / ID_FILE).read_text().strip() == reader.spool_id
    (tmp_path / "another").mkdir()
    assert spool_id(tmp_path / "another") != reader.spool_id


@pytest.mark.parametrize(
    ("name", "spool"),
    [
        ("00000000000000000001-123-000001.spool", ""),
        ("00000000000000000001-0123456789ab-123-000001.spool", "0123456789ab"),
        ("redis:cadlink:events:1-0", None),
        ("01-02.spool", None),
    ],
)
def test_segment_spool(name: str, spool: str | None) -> None:
    assert segment_spool(name) == spool


def test_racing_processes_agree_on_one_id(tmp_path: Path) -> None:
    """The web process's writer and the store process's reader may ask at the same moment."""
    directory = tmp_path / "race"
    directory.mkdir()
    ids: list[str] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        ids.append(spool_id(directory))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    assert [p.name for p in directory.iterdir()] == [ID_FILE]  # no temporary file left
