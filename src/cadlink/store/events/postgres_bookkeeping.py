"""The loader's bookkeeping in the PostgreSQL store, committed in its write transaction beside
the rows: drop counts, dead letters and buffer positions (the spool's segment offsets and a
queue's once-markers, both in `loader_positions`)."""

from __future__ import annotations

from datetime import date

import psycopg

from cadlink.store.events.base import AlreadyStored, once_markers
from cadlink.store.events.postgres_io import Row, add_drops
from cadlink.store.events.postgres_schema import WRITE_LOCK_KEY


def finish(
    con: psycopg.Connection[Row],
    drops: dict[tuple[str, date, str], int],
    positions: dict[str, int],
    rejected: list[tuple[bytes, str]],
) -> None:
    """The rest of a loader transaction (raises `AlreadyStored` when a once-marker among
    `positions` is committed already: the caller's transaction then rolls back whole)."""
    once = once_markers(positions)
    if once:
        # Under the write lock (the rows' insert took it already; again is a no-op): every
        # load that committed before is seen, and none commits until this one has.
        con.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
        found = con.execute(
            "SELECT segment FROM loader_positions WHERE segment = ANY(%s)", [once]
        ).fetchall()
        if found:
            raise AlreadyStored([str(r["segment"]) for r in found])
    add_drops(con, drops)
    if rejected:
        with con.cursor() as cur:
            cur.executemany(
                "INSERT INTO dead_letters VALUES (now(), %s, %s, %s)",
                [(n, why, payload) for n, (payload, why) in enumerate(rejected)],
            )
    if positions:
        # One statement however many: a queue loader commits a marker per entry.
        con.execute(
            "INSERT INTO loader_positions "
            "SELECT * FROM unnest(%s::text[], %s::bigint[]) "
            "ON CONFLICT (segment) DO UPDATE SET position = excluded.position",
            [list(positions), list(positions.values())],
        )
