"""Demo events in a real DuckDB store, shared by the behaviour report tests, and plain-Python
helpers for the independent computations they compare against.

The store is built once per test process (loading takes a few seconds) and closed at exit;
the tests only read it.
"""

from __future__ import annotations

import atexit
import json
import math
import shutil
import tempfile
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from reference import Reference

from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query.dialects import DuckDBDialect
from cadlink.query.params import filters as parse_filters
from cadlink.query.plan import Plan
from cadlink.query.spec import Granularity, Period, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events.duckdb_store import DuckDBEventStore

END = datetime(2026, 6, 10, 18, tzinfo=UTC)
SITE = "11111111-2222-3333-4444-555555555555"
DAYS = 24
EVENTS = 18_000


@cache
def loaded() -> tuple[DuckDBEventStore, Reference]:
    path = Path(tempfile.mkdtemp(prefix="cadlink-behaviour-"))
    store = DuckDBEventStore(str(path / "events.duckdb"))
    enricher = Enricher(build_ua_parser(), GeoLocator(), late_event_hours=24 * 3650)
    loader = Loader(SpoolReader(path / "spool"), store, enricher)
    config = DemoConfig(site_id=SITE, days=DAYS, events=EVENTS, end=END, seed=11)
    loader.load_envelopes([env for chunk in generate(config) for env in chunk])  # one batch
    rows = store.fetch("SELECT * FROM analytics_events WHERE site_id = ?", [SITE])
    for r in rows:
        r["properties_obj"] = json.loads(r["properties"]) if r["properties"] else None

    def close() -> None:
        store.close()
        shutil.rmtree(path, ignore_errors=True)

    atexit.register(close)
    return store, Reference(rows)


def plan(
    start: date, end: date, tz: str = "UTC", raw_filters: str = "[]", limit: int = 1000
) -> Plan:
    spec = ReportSpec(
        SITE, Period(start, end, tz), parse_filters(raw_filters), Granularity.DAY, limit
    )
    return Plan(spec, DuckDBDialect())


def props(e: dict[str, Any]) -> dict[str, Any]:
    p = e["properties_obj"]
    return p if isinstance(p, dict) else {}


def number(value: Any) -> float | None:
    """A property as a number, as the dialects' `prop_number` reads it (None when not one)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def text(value: Any) -> str | None:
    """A property as text, as the dialects' `prop` reads it (JSON scalars as written)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def quantile_cont(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks: position (n - 1) * q, 0-based."""
    if not values:
        return None
    xs = sorted(values)
    h = (len(xs) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


# (time zone, filters) combinations the tests run; several per file.
CASES: list[tuple[str, str]] = [
    ("UTC", "[]"),
    ("America/New_York", "[]"),
    ("Asia/Kolkata", '[["device","is","mobile"]]'),
    ("Europe/Berlin", '[["channel","is_not","search"],["browser","is","Chrome"]]'),
    ("UTC", '[["country","is_not","US"]]'),
]
