"""Query benchmark: the 30-day dashboard, realtime and a funnel on N demo events.

Builds (or reuses) a DuckDB file with N demo events over 30 days, then times each report
against the hand-written fastest SQL for the same answers, measured in the same run: the
ratio is the query layer's overhead. Run: `python -m bench query [--events 10000000]`;
`--engine postgresql` runs the same reports on PostgreSQL (`bench/query_postgres.py`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query import service
from cadlink.query.reports import funnel, products, realtime
from cadlink.query.spec import Granularity, Period, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events.base import EventStore
from cadlink.store.events.duckdb_store import DuckDBEventStore

SITE = "bench-site"
END = datetime(2026, 10, 31, 23, tzinfo=UTC)
CACHE = Path("bench/.cache")


def build(events: int) -> DuckDBEventStore:
    path = CACHE / f"events-{events}.duckdb"
    CACHE.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists()
    store = DuckDBEventStore(str(path))
    if fresh or store.count_events(SITE) == 0:
        t0 = time.perf_counter()
        enricher = Enricher(build_ua_parser(), GeoLocator(), late_event_hours=24 * 3650)
        loader = Loader(SpoolReader(CACHE / "spool"), store, enricher)
        n = loader.load_history(generate(DemoConfig(site_id=SITE, days=30, events=events, end=END)))
        took = time.perf_counter() - t0
        print(f"loaded {n:,} events in {took:.0f} s ({n / took:,.0f} events/s incl. sessions)")
    return store


def timed(fn: Callable[[], Any], repeat: int = 5) -> float:
    fn()  # warm caches
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def hand_written_dashboard(store: EventStore, lo: datetime, hi: datetime) -> None:
    """The fastest plain SQL we know for the same dashboard: one scan per table."""
    mark = "?" if store.engine == "duckdb" else "%s"
    store.fetch(
        "SELECT count(*) FILTER (WHERE event_type = 'page_view'), count(DISTINCT visitor_id) "
        f"FROM analytics_events WHERE site_id = {mark} AND ts >= {mark} AND ts < {mark}",
        [SITE, lo, hi],
    )
    store.fetch(
        "SELECT count(*), avg(is_bounce::INT), avg(duration_s) FROM sessions "
        f"WHERE site_id = {mark} AND started_at >= {mark} AND started_at < {mark}",
        [SITE, lo, hi],
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench query")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--engine",
        choices=("duckdb", "postgresql"),
        default="duckdb",
        help="postgresql: the same reports on a PostgreSQL event store (bench/query_postgres.py)",
    )
    args = parser.parse_args(argv)
    if args.engine == "postgresql":
        from bench import query_postgres

        return query_postgres.main(args.events)
    store = build(args.events)
    results = measure(store)
    events = store.count_events(SITE)
    store.close()
    _write(events, results)
    return results


def measure(store: EventStore) -> dict[str, float]:
    """Times every report of the benchmark on `store` (either engine); prints the results."""
    mark = "?" if store.engine == "duckdb" else "%s"
    period = Period(date(2026, 10, 2), date(2026, 10, 31))
    spec = ReportSpec(SITE, period, (), Granularity.DAY, limit=10)
    lo, hi = period.bounds()
    results = {
        "dashboard_s": timed(lambda: service.dashboard(store, spec), 3),
        "summary_only_s": timed(
            lambda: service.overview.summary(service.plan_for(store, spec), store, period)
        ),
        "hand_written_summary_s": timed(lambda: hand_written_dashboard(store, lo, hi)),
        "realtime_probe_s": timed(
            lambda: store.fetch(
                "SELECT count(DISTINCT visitor_id) FROM analytics_events "
                f"WHERE site_id = {mark} AND ts >= {mark}",
                [SITE, END - timedelta(minutes=5)],
            )
        ),
    }
    plan = service.plan_for(store, spec)
    results["timeseries_s"] = timed(
        lambda: service.overview.timeseries(plan, store, period, Granularity.DAY)
    )
    results["breakdown_source_s"] = timed(
        lambda: service.overview.breakdown(plan, store, "source", 10)
    )
    results["breakdown_page_s"] = timed(lambda: service.overview.breakdown(plan, store, "page", 10))
    results["realtime_s"] = timed(lambda: realtime.realtime(store, SITE, "UTC", END))
    steps = funnel.parse_steps("page_view,product_view,affiliate_click")
    results["funnel_3_steps_s"] = timed(lambda: funnel.funnel(plan, store, steps), 3)
    results["products_top_s"] = timed(lambda: products.top(store, spec))
    results["summary_overhead_ratio"] = (
        results["summary_only_s"] / results["hand_written_summary_s"]
    )
    for k, v in results.items():
        print(f"{k:28s} {v:10.4f}")
    return results


def result_rows(r: dict[str, float]) -> list[tuple[str, str, str]]:
    """The rows of a results table (query, time, target), the same for every engine."""

    def ms(key: str) -> str:
        return f"{r[key] * 1000:,.0f} ms"

    return [
        (
            "Full 30-day dashboard (summary x2, series, 18 breakdowns)",
            ms("dashboard_s"),
            "300 ms at 10 M",
        ),
        ("Summary through the query layer", ms("summary_only_s"), ""),
        ("Same answers, hand-written SQL (reference)", ms("hand_written_summary_s"), ""),
        ("Query-layer overhead (ratio)", f"{r['summary_overhead_ratio']:.2f}x", "<= 1.2x"),
        ("Time series (30 days, daily)", ms("timeseries_s"), ""),
        ("One session breakdown (source)", ms("breakdown_source_s"), ""),
        ("Page breakdown (events)", ms("breakdown_page_s"), ""),
        ("Realtime report", ms("realtime_s"), "50 ms"),
        ("3-step funnel, 30 days", ms("funnel_3_steps_s"), "500 ms at 10 M"),
        ("Top products, 30 days", ms("products_top_s"), ""),
    ]


def _write(events: int, r: dict[str, float]) -> None:
    from bench.report import versions, write_section

    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in result_rows(r))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = f"""### Results — {stamp}, {events:,} events

{versions(("duckdb",))}; medians of 3-5 warm runs.

| Query | Time | Target |
|---|---|---|
{table}
"""
    intro = """## Queries (DuckDB)

`python -m bench query [--events N]` builds (once, cached in `bench/.cache/`) a DuckDB file of N
demo events over 30 days through the real enrichment and sessionizer, then times the reports.
The reference is the hand-written fastest SQL for the dashboard summary, in the same run."""
    write_section("query", intro, results)


if __name__ == "__main__":
    main()
