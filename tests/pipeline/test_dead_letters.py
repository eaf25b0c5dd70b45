"""A buffer record the loader cannot load (it does not decode, or enrichment fails on it) is
kept as a dead letter with the batch: it never blocks the records after it, and nothing
accepted disappears without a trace."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.buffer import SpoolReader, SpoolWriter
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentInfo, UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.store.events.duckdb_store import DuckDBEventStore

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CURSED_UA = "Mozilla/5.0 (cursed)"
NOW = int(time.time() * 1000)
# One whole line, but not an envelope: a record written by another version, say.
UNDECODABLE = b'{"not": "an envelope"}\n'
# Not even JSON: a damaged file.
GARBAGE = b"\x00\x00\x00garbage\n"


class _CursedParser(UserAgentParser):
    """Stands in for a parser bug that one user agent triggers."""

    def parse(self, user_agent: str) -> UserAgentInfo:
        if user_agent == CURSED_UA:
            raise ValueError("parser bug")
        return super().parse(user_agent)


def _fill(spool: Path) -> tuple[list[str], list[bytes]]:
    """Good records around an undecodable, a damaged and a cursed record; returns the good
    event ids and the bad records (without their newlines)."""
    writer = SpoolWriter(spool, fsync="never")
    ids: list[str] = []
    bad: list[bytes] = []
    for i in range(12):
        event = IncomingEvent(event_type="page_view", event_id=f"e{i}", timestamp=NOW - 1000 + i,
                              page_url=f"https://shop.example/p/{i}")  # fmt: skip
        if i == 4:
            record = UNDECODABLE
        elif i == 6:
            record = GARBAGE
        elif i == 8:
            record = encode_envelope(
                Envelope(NOW + i, "site-1", 1, "203.0.113.0", CURSED_UA, [event])
            )
        else:
            record = encode_envelope(
                Envelope(NOW + i, "site-1", 1000 + i, "203.0.113.0", UA, [event])
            )
            ids.append(f"e{i}")
        if i in (4, 6, 8):
            bad.append(record.rstrip(b"\n"))
        writer.put(record)
    writer.close()
    return ids, bad


@pytest.mark.parametrize("batch_bytes", [300, 1 << 20])
def test_bad_records_become_dead_letters(tmp_path: Path, batch_bytes: int) -> None:
    ids, bad = _fill(tmp_path / "spool")
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    enricher = Enricher(_CursedParser(), GeoLocator(country_path=None), 72)
    loader = Loader(SpoolReader(tmp_path / "spool"), store, enricher, batch_bytes=batch_bytes)
    assert loader.drain() == len(ids)
    rows = store.fetch("SELECT event_id FROM analytics_events ORDER BY event_id", [])
    assert [r["event_id"] for r in rows] == sorted(ids)
    letters = store.dead_letters()
    assert [bytes(d["payload"]) for d in letters] == bad
    assert letters[0]["error"].startswith("undecodable")
    assert letters[1]["error"].startswith("undecodable")
    assert "parser bug" in letters[2]["error"]
    assert loader.stats.dead_letters == 3
    assert loader.run_once() == -1  # nothing left: the bad records do not come back
    assert SpoolReader(loader.reader.directory).read(store.positions(), 100).data == b""
    store.close()


def test_a_store_failure_is_retried_not_dead_lettered(tmp_path: Path) -> None:
    """Good records in a batch the store fails on are not the records' fault: the batch stays
    in the buffer and the next attempt stores it."""
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    event = IncomingEvent(event_type="page_view", event_id="x1", timestamp=NOW)
    writer.put(encode_envelope(Envelope(NOW, "site-1", 1, "", UA, [event])))
    writer.close()
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    loader = Loader(
        SpoolReader(tmp_path / "spool"), store, Enricher(UserAgentParser(), GeoLocator())
    )
    load = store.load
    calls = []

    def failing_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk hiccup")
        return load(*args, **kwargs)

    store.load = failing_once  # type: ignore[method-assign]
    with pytest.raises(OSError):
        loader.run_once()
    assert store.count_events() == 0 and store.dead_letters() == []
    assert loader.run_once() == 1
    assert store.count_events() == 1 and store.dead_letters() == []
    store.close()
