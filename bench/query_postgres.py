"""Query benchmark on PostgreSQL: the reports of `bench/query.py` on a PostgreSQL event store.

Builds (once) a database `cadlink_bench_<N>` with the same N demo events over 30 days as the
DuckDB file, through the same loader path (`Loader.load_history`: enrichment, COPY into the
monthly partitions, then the sessions and rollups rebuilt from the events), runs
`VACUUM (ANALYZE)` as autovacuum eventually would, and reuses it on later runs; a build that
did not finish is dropped and redone. Then times the same reports and reference as the DuckDB
run. Run: `python -m bench query --engine postgresql [--events N]`; the server is
`CADLINK_BENCH_POSTGRES_URL` (a maintenance database URL, default
`postgresql://postgres@127.0.0.1:5432/postgres`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from bench.query import CACHE, END, SITE, measure, result_rows
from cadlink.events import Envelope
from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.services import build_ua_parser
from cadlink.store.events.postgres_store import PostgresEventStore

ADMIN_URL = os.environ.get(
    "CADLINK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_SETTINGS = ("shared_buffers", "work_mem", "max_parallel_workers_per_gather", "jit")


@dataclass(frozen=True)
class Build:
    """How the benchmark database was built (recorded in it, so a reuse can say so)."""

    stored: int
    load_s: float
    vacuum_s: float
    size_bytes: int
    reused: bool


def database_url(events: int) -> str:
    return urlsplit(ADMIN_URL)._replace(path=f"/cadlink_bench_{events}").geturl()


def _recorded(url: str) -> tuple[int, float, float] | None:
    """The build record of a finished build, or None."""
    with psycopg.connect(url, autocommit=True) as con:
        present = con.execute("SELECT to_regclass('bench_build') IS NOT NULL").fetchone()
        if not present or not present[0]:
            return None
        row = con.execute("SELECT stored, load_s, vacuum_s FROM bench_build").fetchone()
    return (int(row[0]), float(row[1]), float(row[2])) if row else None


def _progress(chunks: Iterable[list[Envelope]], total: int) -> Iterator[list[Envelope]]:
    t0, seen, step = time.perf_counter(), 0, max(total // 10, 1)
    mark = step
    for chunk in chunks:
        seen += sum(len(e.events) for e in chunk)
        if seen >= mark:
            took = time.perf_counter() - t0
            print(f"  generated and appended ~{seen:,} events in {took:.0f} s", flush=True)
            mark += step
        yield chunk


def build(events: int) -> tuple[PostgresEventStore, Build]:
    url = database_url(events)
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as con:
        exists = con.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        record = _recorded(url) if exists else None
        if exists and record is None:
            print(f"dropping {name}: its build did not finish")
            con.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        if record is None:
            con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    store = PostgresEventStore(url)
    reused = record is not None
    if record is None:
        print(f"building {name} with {events:,} demo events (once)", flush=True)
        t0 = time.perf_counter()
        enricher = Enricher(build_ua_parser(), GeoLocator(), late_event_hours=24 * 3650)
        loader = Loader(SpoolReader(CACHE / "spool-postgresql"), store, enricher)
        config = DemoConfig(site_id=SITE, days=30, events=events, end=END)
        stored = loader.load_history(_progress(generate(config), events))
        load_s = time.perf_counter() - t0
        print(f"loaded {stored:,} events in {load_s:.0f} s ({stored / load_s:,.0f} events/s)")
        t1 = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("VACUUM (ANALYZE)")
            vacuum_s = time.perf_counter() - t1
            con.execute(
                "CREATE TABLE bench_build AS SELECT %s::bigint AS stored, "
                "%s::float8 AS load_s, %s::float8 AS vacuum_s, now() AS built_at",
                [stored, load_s, vacuum_s],
            )
        print(f"VACUUM (ANALYZE) took {vacuum_s:.0f} s")
        record = (stored, load_s, vacuum_s)
    with psycopg.connect(url, autocommit=True) as con:
        size = con.execute("SELECT pg_database_size(current_database())").fetchone()
    info = Build(record[0], record[1], record[2], int(size[0]) if size else 0, reused)
    return store, info


def server_info(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as con:
        row = con.execute("SHOW server_version").fetchone()
        settings = [
            f"{s} {row_[0]}"
            for s in _SETTINGS
            if (row_ := con.execute(sql.SQL("SHOW {}").format(sql.Identifier(s))).fetchone())
        ]
    version = str(row[0]).split()[0] if row else "unknown"
    return f"PostgreSQL {version} (server settings: {', '.join(settings)})"


def main(events: int) -> dict[str, float]:
    store, info = build(events)
    load_before = os.getloadavg()[0]
    try:
        results = measure(store)
        counted = store.count_events(SITE)
    finally:
        store.close()
    load = (load_before, os.getloadavg()[0])
    _write(counted, results, info, server_info(database_url(events)), load)
    return results


def _write(
    events: int, r: dict[str, float], info: Build, server: str, load: tuple[float, float]
) -> None:
    from bench.report import versions, write_section

    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in result_rows(r))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    built = (
        f"Database built through `Loader.load_history` in {info.load_s / 60:.1f} min "
        f"({info.stored / info.load_s:,.0f} events/s, sessions and rollups included), then "
        f"`VACUUM (ANALYZE)` in {info.vacuum_s:.0f} s; {info.size_bytes / 2**30:.1f} GiB on disk"
        + ("; reused from an earlier run." if info.reused else ".")
    )
    results = f"""### Results — {stamp}, {events:,} events

{versions(("psycopg",))}, {server}; medians of 3-5 warm runs; load average
{load[0]:.1f} before the run and {load[1]:.1f} after it (2 cores shared with other work).
{built}

| Query | Time | Target (DuckDB's) |
|---|---|---|
{table}
"""
    intro = """## Queries (PostgreSQL)

`python -m bench query --engine postgresql [--events N]` runs the same reports and reference
as the DuckDB run above on a PostgreSQL event store: a database `cadlink_bench_<N>` holding
the same N demo events, built once through the real loader path and reused."""
    write_section("query-postgresql", intro, results)


__all__ = ["build", "database_url", "main"]
