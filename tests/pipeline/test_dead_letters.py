"""A buffer record the loader cannot load (it does not decode, or enrichment fails on it) is
kept as a dead letter with the batch: it never blocks the records after it, and nothing
accepted disappears without a trace."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from cadlink.events import Envelope, IncomingEvent
from cadlink.ingest.buffer import SpoolReader, SpoolWriter
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentInfo, UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.pipeline.prepare import ChildSource, WorkerConfig
from cadlink.store.events.duckdb_store import DuckDBEventStore

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CURSED_UA = "Mozilla/5.0 (cursed)"
NOW = int(time.time() * 1000)
# Passes its checksum (the writer computes it) but is not an envelope: a record written by
# another version, say.
UNDECODABLE = msgspec.msgpack.encode({"not": "an envelope"})


class _CursedParser(UserAgentParser):
    """Stands in for a parser bug that one user agent triggers."""

    def parse(self, user_agent: str) -> UserAgentInfo:
        if user_agent == CURSED_UA:
            raise ValueError("parser bug")
        return super().parse(user_agent)


def _fill(spool: Path) -> tuple[list[str], list[bytes]]:
    """Ten good records around one undecodable and one cursed record; returns the good event
    ids and the two bad payloads."""
    writer = SpoolWriter(spool, fsync="never")
    ids: list[str] = []
    bad: list[bytes] = []
    for i in range(12):
        event = IncomingEvent(event_type="page_view", event_id=f"e{i}", timestamp=NOW - 1000 + i,
                              page_url=f"https://shop.example/p/{i}")  # fmt: skip
        env = Envelope(NOW + i, "site-1", 1000 + i, "203.0.113.0", UA, [event])
        if i == 4:
            payload = UNDECODABLE
        elif i == 8:
            payload = msgspec.msgpack.encode(
                Envelope(NOW + i, "site-1", 1, "203.0.113.0", CURSED_UA, [event])
            )
        else:
            payload = msgspec.msgpack.encode(env)
            ids.append(f"e{i}")
        if i in (4, 8):
            bad.append(payload)
        writer.put(payload, 1)
    writer.close()
    return ids, bad


def _check(store: DuckDBEventStore, loader: Loader, ids: list[str], bad: list[bytes]) -> None:
    assert loader.drain() == len(ids)
    rows = store.fetch("SELECT event_id FROM analytics_events ORDER BY event_id", [])
    assert [r["event_id"] for r in rows] == sorted(ids)
    letters = store.dead_letters()
    assert [bytes(d["payload"]) for d in letters] == bad
    assert letters[0]["error"].startswith("undecodable")
    assert "parser bug" in letters[1]["error"]
    assert loader.stats.dead_letters == 2
    assert loader.run_once() == -1  # nothing left: the bad records do not come back
    assert SpoolReader(loader.reader.directory).read(store.positions(), 100).payloads == []


def test_bad_records_become_dead_letters_in_the_loader_thread(tmp_path: Path) -> None:
    ids, bad = _fill(tmp_path / "spool")
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    enricher = Enricher(_CursedParser(), GeoLocator(country_path=None), 72)
    loader = Loader(SpoolReader(tmp_path / "spool"), store, enricher, batch_events=5)
    _check(store, loader, ids, bad)
    store.close()


@pytest.mark.parametrize("batch_events", [5, 100])
def test_undecodable_records_become_dead_letters_in_the_child(
    tmp_path: Path, batch_events: int
) -> None:
    """The child process (real parsers: only the undecodable record is bad there)."""
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    ids = []
    for i in range(10):
        if i == 3:
            writer.put(UNDECODABLE, 1)
            continue
        event = IncomingEvent(event_type="page_view", event_id=f"c{i}", timestamp=NOW,
                              page_url="https://shop.example/")  # fmt: skip
        writer.put(msgspec.msgpack.encode(Envelope(NOW, "s", i, "", UA, [event])), 1)
        ids.append(f"c{i}")
    writer.close()
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    reader = SpoolReader(tmp_path / "spool")
    source = ChildSource(WorkerConfig(str(reader.directory), 72, None, None, nice=0))
    loader = Loader(reader, store, None, batch_events=batch_events, source=source)
    try:
        assert loader.drain() == len(ids)
    finally:
        source.close()
    rows = store.fetch("SELECT event_id FROM analytics_events ORDER BY event_id", [])
    assert [r["event_id"] for r in rows] == sorted(ids)
    assert [bytes(d["payload"]) for d in store.dead_letters()] == [UNDECODABLE]
    store.close()
