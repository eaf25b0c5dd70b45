"""A 10x larger event store from a built one, for the 100 M query benchmark.

Generating 100 M demo events through the enrichment path takes over an hour on two cores, so
the large store is the 10 M demo month replicated: each copy gets its own visitors (the
visitor id mixed with the copy number), event ids and client session ids, over the same 30
days, so a site has ten times the traffic with the same shape.

Sessions and rollups are per visitor, so a copy's sessions and rollup rows are the original's
with the visitor mixed the same way (and the session key, which embeds the visitor id,
recomputed): exactly what the store's own rebuild would derive, without its whole-site pass,
which needed more than 18 GB of memory and 28 GB of spill at 100 M rows on this machine.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import duckdb

from cadlink.config import Settings
from cadlink.store.events.duckdb_store import DuckDBEventStore

# Multipliers below 2^31 keep the mixed visitor id a distinct 64-bit value per copy.
_MIX = 0x5DEECE66D
_VISITOR = "CASE WHEN k.k = 0 THEN visitor_id ELSE xor(visitor_id, k.k * $mix) END"
_SUFFIXED = "CASE WHEN k.k = 0 THEN {c} ELSE {c} || '.' || k.k END"
_SESSION_KEY = "CAST(" + _VISITOR + " AS VARCHAR) || '-' || CAST(epoch_ms(started_at) AS VARCHAR)"


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_catalog = 'src' AND table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]


def _copy(
    con: duckdb.DuckDBPyConnection,
    table: str,
    mixed: dict[str, str],
    where: str,
    params: dict[str, object],
) -> None:
    columns = _columns(con, table)
    select = ", ".join(mixed.get(c, c) for c in columns)
    con.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select} "
        f"FROM src.{table}, range($copies) k(k) WHERE {where}",
        params,
    )


def replicate(source: Path, target: Path, site: str, copies: int) -> DuckDBEventStore:
    """Builds `target` (once) with `copies` copies of `source`'s data for `site`."""
    fresh = not target.exists()
    # The product's default cache size (Settings), as in bench/query.py: the reports are
    # timed as a server runs them, not with DuckDB's 80% of the machine.
    limit = Settings.model_fields["duckdb_memory_limit"].default
    store = DuckDBEventStore(str(target), memory_limit=limit)
    if not fresh and store.count_events(site) > 0:
        return store
    t0 = time.perf_counter()
    con = store._con  # a bench-only bulk copy between two DuckDB files
    con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
    params = {"mix": _MIX, "copies": copies, "site": site}
    events = {
        "visitor_id": _VISITOR,
        "event_id": _SUFFIXED.format(c="event_id"),
        "session_id": _SUFFIXED.format(c="session_id"),
    }
    lo, hi = con.execute(
        "SELECT min(ts), max(ts) FROM src.analytics_events WHERE site_id = ?", [site]
    ).fetchone() or (None, None)
    day = lo
    while day is not None and day <= hi:
        # A day at a time: the table stays in time order without sorting 100 M wide rows.
        _copy(
            con,
            "analytics_events",
            events,
            "site_id = $site AND ts >= $lo AND ts < $hi ORDER BY ts",
            {**params, "lo": day, "hi": day + timedelta(days=1)},
        )
        day += timedelta(days=1)
    sessions = {
        "visitor_id": _VISITOR,
        "session_key": _SESSION_KEY,
        "client_session_id": _SUFFIXED.format(c="client_session_id"),
    }
    _copy(con, "sessions", sessions, "site_id = $site ORDER BY started_at", params)
    for table in _rollups(con):
        # The store backfilled its rollups from the (then empty) events on open: replace them.
        con.execute(f"DELETE FROM {table} WHERE site_id = $site", {"site": site})
        _copy(con, table, {"visitor_id": _VISITOR}, "site_id = $site ORDER BY hour_no", params)
    con.execute("DETACH src")
    con.execute("CHECKPOINT")
    print(
        f"replicated {store.count_events(site):,} events with their sessions and rollups "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    return store


def _rollups(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = 'src' AND table_name LIKE 'rollup_%' ORDER BY 1"
        ).fetchall()
    ]
