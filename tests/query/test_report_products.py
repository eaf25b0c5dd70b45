"""Product reports equal a plain-Python count over the same events."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from reference import Reference

from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query.params import filters as parse_filters
from cadlink.query.reports import products
from cadlink.query.spec import Period, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events.duckdb_store import DuckDBEventStore

END = datetime(2026, 6, 10, 18, tzinfo=UTC)
SITE = "11111111-2222-3333-4444-555555555555"
OTHER = "22222222-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DuckDBEventStore, Reference]]:
    path: Path = tmp_path_factory.mktemp("products")
    store = DuckDBEventStore(str(path / "events.duckdb"))
    # No geo database: these reports do not depend on it, and loading it costs seconds.
    enricher = Enricher(
        build_ua_parser(), GeoLocator(str(path / "none")), late_event_hours=24 * 3650
    )
    loader = Loader(SpoolReader(path / "spool"), store, enricher)
    loader.load_history(generate(DemoConfig(site_id=SITE, days=6, events=12_000, end=END, seed=5)))
    # Another site's products must never leak into this one's report.
    loader.load_history(generate(DemoConfig(site_id=OTHER, days=2, events=2_000, end=END, seed=6)))
    rows = store.fetch("SELECT * FROM analytics_events WHERE site_id = ?", [SITE])
    for r in rows:
        r["properties_obj"] = json.loads(r["properties"]) if r["properties"] else None
    yield store, Reference(rows)
    store.close()


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


def reference_products(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    money: dict[str, dict[str | None, float]] = defaultdict(lambda: defaultdict(float))
    viewers: dict[str, set[int]] = defaultdict(set)
    names: dict[str, list[str]] = defaultdict(list)
    kinds = {"product_view": "views", "product_click": "clicks",
             "affiliate_click": "affiliateClicks", "product_wishlist": "wishlist",
             "product_compare": "compare"}  # fmt: skip
    for e in events:
        props = e["properties_obj"] or {}
        pid = _text(props.get("productId"))
        if pid is None or e["event_type"] not in (*kinds, "purchase"):
            continue
        row = out.setdefault(pid, {k: 0 for k in kinds.values()} | {"revenue": 0.0})
        if "productName" in props and e["event_type"] in ("product_view", "product_wishlist"):
            names[pid].append(props["productName"])
        if e["event_type"] == "purchase":
            if isinstance(props.get("revenue"), int | float):
                row["revenue"] += props["revenue"]
                money[pid][_text(props.get("currency"))] += props["revenue"]
            continue
        row[kinds[e["event_type"]]] += 1
        if e["event_type"] == "product_view":
            viewers[pid].add(e["visitor_id"])
    for pid, row in out.items():
        row["productId"] = pid
        row["name"] = max(names[pid]) if names[pid] else None
        row["uniqueViews"] = len(viewers[pid])
        row["clickThroughRate"] = (
            round(row["affiliateClicks"] / row["views"], 4) if row["views"] else 0.0
        )
        row["revenue"] = round(row["revenue"], 2)
        order = sorted(money[pid], key=lambda c: (c is None, c or ""))
        row["revenueByCurrency"] = [
            {"currency": c, "revenue": round(money[pid][c], 2)} for c in order
        ]
    return out


CASES = [
    ("UTC", "[]"),
    ("America/Los_Angeles", '[["device","is","mobile"]]'),
    ("Asia/Tokyo", '[["source","is","Google"],["browser","is_not","Safari"]]'),
    ("UTC", '[["page","contains","products"]]'),
]


@pytest.mark.parametrize(("tz", "raw_filters"), CASES)
def test_top_products_match_reference(
    loaded: tuple[DuckDBEventStore, Reference], tz: str, raw_filters: str
) -> None:
    store, ref = loaded
    flt = parse_filters(raw_filters)
    period = Period(date(2026, 6, 5), date(2026, 6, 9), tz)
    got = products.top(store, ReportSpec(SITE, period, flt, limit=10_000))
    expected = reference_products(ref.events_in(period, flt))
    assert {r["productId"]: r for r in got} == expected
    assert sum(r["views"] for r in got) > 0
    assert sum(r["revenue"] for r in got) > 0 or flt
    # The demo's shops sell in several currencies: some product is bought in more than one.
    assert any(len(r["revenueByCurrency"]) > 1 for r in got) or flt
    order = [(-r["views"], r["productId"]) for r in got]
    assert order == sorted(order)


def test_top_products_limit(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, ref = loaded
    period = Period(date(2026, 6, 4), date(2026, 6, 10))
    got = products.top(store, ReportSpec(SITE, period, limit=3))
    expected = sorted(
        reference_products(ref.events_in(period, ())).values(),
        key=lambda r: (-r["views"], r["productId"]),
    )[:3]
    assert got == expected


def reference_affiliate(events: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    clicks = [e for e in events if e["event_type"] == "affiliate_click"]

    def grouped(key: str, name: str) -> list[dict[str, Any]]:
        n: Counter[str | None] = Counter()
        who: dict[str | None, set[int]] = defaultdict(set)
        for e in clicks:
            value = _text((e["properties_obj"] or {}).get(key))
            n[value] += 1
            who[value].add(e["visitor_id"])
        order = sorted(n, key=lambda v: (-n[v], v is None, v or ""))
        return [{name: v, "clicks": n[v], "visitors": len(who[v])} for v in order[:limit]]

    return {
        "clicks": len(clicks),
        "visitors": len({e["visitor_id"] for e in clicks}),
        "byPlatform": grouped("platform", "platform"),
        "byPosition": grouped("position", "position"),
    }


@pytest.mark.parametrize(("tz", "raw_filters"), CASES)
@pytest.mark.parametrize("limit", [3, 100])
def test_affiliate_breakdown_matches_reference(
    loaded: tuple[DuckDBEventStore, Reference], tz: str, raw_filters: str, limit: int
) -> None:
    store, ref = loaded
    flt = parse_filters(raw_filters)
    period = Period(date(2026, 6, 5), date(2026, 6, 9), tz)
    got = products.affiliate(store, ReportSpec(SITE, period, flt, limit=limit))
    assert got == reference_affiliate(ref.events_in(period, flt), limit)
    assert got["clicks"] > 0
    assert sum(r["clicks"] for r in got["byPosition"]) == got["clicks"] or limit < 100


def test_empty_period(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, _ = loaded
    spec = ReportSpec(SITE, Period(date(2020, 1, 1), date(2020, 1, 2)))
    assert products.top(store, spec) == []
    assert products.affiliate(store, spec) == {
        "clicks": 0, "visitors": 0, "byPlatform": [], "byPosition": []
    }  # fmt: skip
