"""Events that share one timestamp across batches keep the sessions on the merge path.

A client without a clock (or a load generator) sends many events with the same timestamp
and no ids; the server assigns time-ordered ids, so each batch's events sort after the stored
session's last event and are merged into it, instead of rebuilding the whole (ever longer)
session from its stored events on every batch. Ties the ids cannot order still rebuild, and
either way the sessions equal a rebuild from the events.
"""

from __future__ import annotations

from pathlib import Path

from session_upkeep import T0_MS, UA, load_both, sessions_of

from cadlink.events import Envelope, IncomingEvent
from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events.duckdb_store import DuckDBEventStore


def _batch(received_ms: int, n: int, ids: list[str] | None = None) -> list[Envelope]:
    kinds = ["page_view", "click", "scroll_depth"]
    events = [
        IncomingEvent(
            event_type=kinds[i % 3],
            event_id=ids[i] if ids else None,
            timestamp=T0_MS,  # every event of every batch at the same instant
            page_url=f"https://shop.example/p{i % 4}",
        )
        for i in range(n)
    ]
    return [Envelope(received_ms, "site-1", 7, "", UA, [e]) for e in events]


def test_same_timestamp_batches_merge_without_a_rebuild(
    store: DuckDBEventStore, enricher: Enricher
) -> None:
    for k in range(6):
        load_both(store, enricher, _batch(T0_MS + 1_000 * k, 40))
    assert store.sessions_rebuilt == 0
    kept = sessions_of(store, "site-1")
    store.rebuild_sessions("site-2")
    assert kept == sessions_of(store, "site-2")
    assert len(kept) == 1 and kept[0]["events"] == 240


def test_requests_of_one_millisecond_loaded_in_different_batches_merge(
    store: DuckDBEventStore, enricher: Enricher
) -> None:
    """The ids the server assigns count on across batches: random bits in their place sorted
    a later batch's events of the same millisecond before the stored ones half the time."""
    for _ in range(6):
        load_both(store, enricher, _batch(T0_MS, 40))  # every request in the same millisecond
    assert store.sessions_rebuilt == 0
    sql = "SELECT event_id FROM analytics_events WHERE site_id = 'site-1' ORDER BY received_at"
    ids = [r[0] for r in store._con.execute(sql).fetchall()]
    assert len(set(ids)) == len(ids) == 240
    assert all(i[:13] == f"{T0_MS:012x}7" and i[16] in "89ab" for i in ids)
    kept = sessions_of(store, "site-1")
    store.rebuild_sessions("site-2")
    assert kept == sessions_of(store, "site-2")
    assert len(kept) == 1 and kept[0]["events"] == 240


def test_same_timestamp_ids_that_sort_first_rebuild_and_stay_exact(
    store: DuckDBEventStore, enricher: Enricher
) -> None:
    load_both(store, enricher, _batch(T0_MS, 3, ids=["m1", "m2", "m3"]))
    load_both(store, enricher, _batch(T0_MS + 1, 3, ids=["z1", "z2", "z3"]))  # after "m3": merged
    assert store.sessions_rebuilt == 0
    load_both(store, enricher, _batch(T0_MS + 2, 3, ids=["a1", "n1", "y1"]))  # "a1" sorts first
    assert store.sessions_rebuilt == 1
    kept = sessions_of(store, "site-1")
    store.rebuild_sessions("site-2")
    assert kept == sessions_of(store, "site-2")
    assert kept[0]["events"] == 9 and kept[0]["client_session_id"] is None


def test_a_store_without_last_event_ids_rebuilds_once_then_merges(
    tmp_path: Path, enricher: Enricher
) -> None:
    path = str(tmp_path / "old.duckdb")
    store = DuckDBEventStore(path)
    load_both(store, enricher, _batch(T0_MS, 5))
    store._con.execute("UPDATE sessions SET last_event_id = NULL")  # as an older store left it
    load_both(store, enricher, _batch(T0_MS + 1_000, 5))
    assert store.sessions_rebuilt == 1
    load_both(store, enricher, _batch(T0_MS + 2_000, 5))
    assert store.sessions_rebuilt == 1
    kept = sessions_of(store, "site-1")
    store.rebuild_sessions("site-2")
    assert kept == sessions_of(store, "site-2")
    store.close()


def test_a_load_reports_the_visitors_it_rebuilt(
    store: DuckDBEventStore, enricher: Enricher, tmp_path: Path
) -> None:
    """`Loaded.sessions_rebuilt` (the loader sums it into /metrics) counts the slow path."""
    from cadlink.events import encode_envelope
    from cadlink.ingest.buffer import SpoolReader, SpoolWriter
    from cadlink.pipeline.loader import Loader

    def records(received_ms: int, ids: list[str]) -> bytes:
        return b"".join(encode_envelope(e) for e in _batch(received_ms, len(ids), ids))

    first = store.load(records(T0_MS, ["m1", "m2"]), {}, enricher.staging)
    assert (first.stored, first.sessions_rebuilt) == (2, 0)
    merged = store.load(records(T0_MS + 1, ["z1"]), {}, enricher.staging)
    assert merged.sessions_rebuilt == 0
    tied = store.load(records(T0_MS + 2, ["a1"]), {}, enricher.staging)  # sorts first
    assert tied.sessions_rebuilt == 1

    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    for envelope in _batch(T0_MS + 3, 2, ["a2", "a3"]):  # ties sorting first again
        writer.put(encode_envelope(envelope))
    loader = Loader(SpoolReader(tmp_path / "spool"), store, enricher)
    assert loader.drain() == 2
    assert loader.stats.sessions_rebuilt == 1
    writer.close()
