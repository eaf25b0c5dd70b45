"""A batch too large for DuckDB's memory limit is not retried as it is forever: the loader
halves its batch until it fits, and grows it back afterwards."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.buffer import SpoolReader, SpoolWriter
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.store.events.duckdb_store import DuckDBEventStore

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
NOW = int(time.time() * 1000)


def test_a_batch_that_runs_out_of_memory_is_loaded_in_smaller_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    n = 60_000
    for i in range(n):
        event = IncomingEvent(
            event_type="page_view", event_id=f"m{i}", timestamp=NOW,
            page_url=f"https://shop.example/p/{i}?q=" + "x" * 400, visitor_id=f"v{i}",
            consent=True, properties={"i": i, "pad": "y" * 200},
        )  # fmt: skip
        writer.put(encode_envelope(Envelope(NOW, "site-1", i, "203.0.113.0", UA, [event])))
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"), memory_limit="64MB")
    loader = Loader(
        SpoolReader(tmp_path / "spool"),
        store,
        Enricher(UserAgentParser(), GeoLocator()),
        batch_bytes=64 << 20,
    )
    assert loader.drain() == n
    assert store.count_events() == n
    assert "did not fit in memory" in caplog.text
    shrunk = loader.budget
    assert shrunk < 64 << 20
    # Each batch that fits grows the budget back by an eighth, up to the configured size.
    event = IncomingEvent(event_type="page_view", event_id="later", timestamp=NOW)
    writer.put(encode_envelope(Envelope(NOW, "site-1", 1, "", UA, [event])))
    assert loader.run_once() == 1
    assert loader.budget == shrunk + shrunk // 8
    writer.close()
    store.close()
