"""Every report gives identical answers on DuckDB and on PostgreSQL, from the same events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query import service
from cadlink.query.params import filters as parse_filters
from cadlink.query.plan import Executor, Plan
from cadlink.query.reports import (
    crm,
    engagement,
    errors,
    experiments,
    funnel,
    goals,
    overview,
    paths,
    products,
    realtime,
    retention,
    search,
    vitals,
)  # fmt: skip
from cadlink.query.spec import Granularity, Period, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events.base import open_event_store

pytestmark = pytest.mark.postgres

SITE = "parity-site"
END = datetime(2026, 9, 14, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory, postgres_module_url: str
) -> Iterator[dict[str, Executor]]:
    path: Path = tmp_path_factory.mktemp("parity")
    opened = {
        "duckdb": open_event_store(f"duckdb:///{path / 'e.duckdb'}"),
        "postgresql": open_event_store(postgres_module_url),
    }
    config = DemoConfig(site_id=SITE, days=10, events=15_000, end=END, seed=23)
    for name, store in opened.items():
        enricher = Enricher(build_ua_parser(), GeoLocator(), late_event_hours=24 * 3650)
        Loader(SpoolReader(path / f"spool-{name}"), store, enricher).load_history(generate(config))
    yield opened  # type: ignore[misc]
    for store in opened.values():
        store.close()


def _spec(tz: str, raw_filters: str = "[]") -> ReportSpec:
    return ReportSpec(
        SITE,
        Period(date(2026, 9, 6), date(2026, 9, 14), tz),
        parse_filters(raw_filters),
        Granularity.DAY,
        20,
    )


REPORTS: dict[str, Callable[[Plan, Executor], Any]] = {
    "dashboard": lambda p, db: overview.dashboard(p, db),
    "weekly": lambda p, db: overview.timeseries(p, db, p.spec.period, Granularity.WEEK),
    "hourly": lambda p, db: overview.timeseries(
        p,
        db,
        Period(date(2026, 9, 10), date(2026, 9, 10), p.spec.period.timezone),
        Granularity.HOUR,
    ),
    "realtime": lambda p, db: realtime.realtime(db, SITE, p.spec.period.timezone, END),
    "funnel": lambda p, db: funnel.funnel(
        p, db, funnel.parse_steps("page_view,product_view,affiliate_click")
    ),
    "products": lambda p, db: products.top_products(p, db, 20),
    "affiliate": lambda p, db: products.affiliate_breakdown(p, db, 20),
    "experiments": lambda p, db: experiments.experiment(p, db),
    "search": lambda p, db: search.search(p, db),
    "engagement": lambda p, db: engagement.engagement(p, db),
    "paths": lambda p, db: paths.paths(p, db, "/"),
    "retention": lambda p, db: retention.retention(p, db, 2),
    "vitals": lambda p, db: vitals.vitals(p, db),
    "errors": lambda p, db: errors.errors(p, db),
    "goals": lambda p, db: goals.goals(p, db),
    "crm": lambda p, db: (
        crm.summary(p, db, END),
        crm.segment_counts(p, db, END),
        crm.users(p, db, END, None, 500),
        [crm.user_detail(p, db, u["userId"]) for u in crm.users(p, db, END, None, 500)],
    ),
}
CASES = [
    ("UTC", "[]"),
    ("America/New_York", '[["device","is","mobile"]]'),
    ("Europe/Berlin", '[["page","contains","products"],["channel","is_not","direct"]]'),
]


@pytest.mark.parametrize(("tz", "raw_filters"), CASES)
@pytest.mark.parametrize("name", list(REPORTS))
def test_same_answer_on_both_engines(
    stores: dict[str, Executor], name: str, tz: str, raw_filters: str
) -> None:
    spec = _spec(tz, raw_filters)
    answers = {
        engine: json.dumps(
            REPORTS[name](service.plan_for(db, spec), db), sort_keys=True, default=str
        )
        for engine, db in stores.items()
    }
    assert answers["duckdb"] == answers["postgresql"]
    assert len(answers["duckdb"]) > 20  # not trivially empty
    if name == "crm" and raw_filters == "[]":  # users' revenue is compared, not only empty lists
        assert '"revenueByCurrency": [{"currency": "' in answers["duckdb"]
