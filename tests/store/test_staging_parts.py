"""A loader batch is staged from several scratch files (`SCRATCH_PART_BYTES` each): every record
is read once, in batch order, whichever file it landed in, and a record larger than a part
gets a file of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from duck_memory import NOW, UA

from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events import staging
from cadlink.store.events.duckdb_store import DuckDBEventStore


def _record(i: int, pad: int = 0) -> bytes:
    event = IncomingEvent(
        event_type="page_view", event_id=f"e{i:04d}", timestamp=NOW,
        properties={"pad": "y" * pad} if pad else None,
    )  # fmt: skip
    return encode_envelope(Envelope(NOW, "site-1", 7, "203.0.113.0", UA, [event]))


def test_a_batch_in_many_parts_is_stored_whole_and_in_order(
    tmp_path: Path, enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staging, "SCRATCH_PART_BYTES", 2_000)
    records = [_record(i, pad=5_000 if i == 17 else 0) for i in range(60)]
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    loaded = store.load(b"".join(records), {}, enricher.staging)
    assert loaded.stored == 60
    stager = store._stager
    assert stager is not None
    assert len(stager._parts) >= 5  # about 250 bytes a record, one of 5 kB: several parts
    # The batch's order (`i`, which the session upkeep breaks ties with) spans the parts.
    rows = enricher.enrich_records(b"".join(records)).rows
    assert rows.column("event_id").to_pylist() == [f"e{i:04d}" for i in range(60)]
    # Emptied after the batch, all of them.
    assert all(p.stat().st_size == 0 for p in stager._parts)
    store.close()
