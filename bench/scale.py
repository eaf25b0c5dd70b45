"""A 10x larger event store from a built one, for the 100 M query benchmark.

Generating 100 M demo events through the enrichment path takes over an hour on two cores, so
the large store is the 10 M demo month replicated: each copy gets its own visitors (the
visitor id mixed with the copy number), event ids and client session ids, over the same 30
days, so a site has ten times the traffic with the same shape. Sessions and rollups are then
rebuilt by the store itself, exactly as after an import.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from cadlink.store.events.duckdb_store import DuckDBEventStore

# Multipliers below 2^31 keep the mixed visitor id a distinct 64-bit value per copy.
_MIX = 0x5DEECE66D


def replicate(source: Path, target: Path, site: str, copies: int) -> DuckDBEventStore:
    """Builds `target` (once) with `copies` copies of `source`'s events of `site`."""
    fresh = not target.exists()
    store = DuckDBEventStore(str(target))
    if not fresh and store.count_events(site) > 0:
        return store
    t0 = time.perf_counter()
    con = store._con  # a bench-only bulk copy between two DuckDB files
    con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
    columns = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_catalog = 'src' AND table_name = 'analytics_events' "
            "ORDER BY ordinal_position"
        ).fetchall()
    ]
    mixed = {
        "visitor_id": "CASE WHEN k.k = 0 THEN visitor_id ELSE xor(visitor_id, k.k * $mix) END",
        "event_id": "CASE WHEN k.k = 0 THEN event_id ELSE event_id || '.' || k.k END",
        "session_id": "CASE WHEN k.k = 0 THEN session_id ELSE session_id || '.' || k.k END",
    }
    select = ", ".join(mixed.get(c, c) for c in columns)
    lo, hi = con.execute(
        "SELECT min(ts), max(ts) FROM src.analytics_events WHERE site_id = ?", [site]
    ).fetchone() or (None, None)
    day = lo
    while day is not None and day <= hi:
        # A day at a time: the table stays in time order without sorting 100 M wide rows.
        con.execute(
            f"INSERT INTO analytics_events SELECT {select} FROM src.analytics_events, "
            "range($copies) k(k) WHERE site_id = $site AND ts >= $lo AND ts < $hi ORDER BY ts",
            {"mix": _MIX, "copies": copies, "site": site, "lo": day,
             "hi": day + timedelta(days=1)},
        )  # fmt: skip
        day += timedelta(days=1)
    con.execute("DETACH src")
    copied = time.perf_counter() - t0
    store.rebuild_sessions(site)
    con.execute("CHECKPOINT")
    took = time.perf_counter() - t0
    print(
        f"replicated {store.count_events(site):,} events in {copied:.0f} s, "
        f"sessions and rollups rebuilt in {took - copied:.0f} s"
    )
    return store
