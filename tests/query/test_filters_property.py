"""Property test: any combination of filters gives the reference's numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import Reference

from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query import service
from cadlink.query.params import filters as parse_filters
from cadlink.query.spec import Granularity, Period, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events.duckdb_store import DuckDBEventStore

SITE = "prop-site"
END = datetime(2026, 7, 3, 12, tzinfo=UTC)

VALUES = {
    "page": ["/", "/deals", "/search", "/cart", "products", "blog", "/nope"],
    "entry_page": ["/", "/deals", "/search"],
    "source": ["Google", "Direct", "Facebook", "Newsletter", "Bing"],
    "channel": ["search", "social", "direct", "email", "referral", "paid"],
    "device": ["mobile", "desktop", "tablet"],
    "browser": ["Chrome", "Safari", "Firefox", "Edge"],
    "country": ["US", "DE", "GB", "FR", "IN"],
    "utm_campaign": ["sale", "spring", "launch"],
    "prop:variant": ["A", "B"],
    "event_type": ["page_view", "product_view", "click"],
}


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DuckDBEventStore, Reference]]:
    path: Path = tmp_path_factory.mktemp("prop")
    store = DuckDBEventStore(str(path / "e.duckdb"))
    loader = Loader(
        SpoolReader(path / "s"), store, Enricher(build_ua_parser(), GeoLocator(), 24 * 3650)
    )
    loader.load_history(generate(DemoConfig(site_id=SITE, days=3, events=5_000, end=END, seed=9)))
    rows = store.fetch("SELECT * FROM analytics_events WHERE site_id = ?", [SITE])
    for r in rows:
        r["properties_obj"] = json.loads(r["properties"]) if r["properties"] else None
    yield store, Reference(rows)
    store.close()


filters = st.lists(
    st.sampled_from(sorted(VALUES)).flatmap(
        lambda dim: st.tuples(
            st.just(dim),
            st.sampled_from(["is", "is_not", "contains"]),
            st.lists(st.sampled_from(VALUES[dim]), min_size=1, max_size=2, unique=True),
        )
    ),
    max_size=3,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flt=filters, tz=st.sampled_from(["UTC", "Asia/Kolkata", "America/Los_Angeles"]))
def test_any_filter_combination_matches_the_reference(
    loaded: tuple[DuckDBEventStore, Reference], flt: list[tuple[str, str, list[str]]], tz: str
) -> None:
    store, ref = loaded
    parsed = parse_filters(json.dumps([list(f) for f in flt]))
    period = Period(date(2026, 7, 1), date(2026, 7, 3), tz)
    spec = ReportSpec(SITE, period, parsed, Granularity.DAY, limit=1000)
    plan = service.plan_for(store, spec)
    got = service.overview.summary(plan, store, period)
    assert got == ref.summary(period, parsed)
    for name in ("page", "source", "device"):
        rows = service.overview.breakdown(plan, store, name, 1000)
        assert {r["value"]: r["visitors"] for r in rows} == ref.breakdown(period, parsed, name)
