"""Fixtures of the DuckDB session upkeep tests (modules that define their own win)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events.duckdb_store import DuckDBEventStore


@pytest.fixture
def store(tmp_path: Path) -> DuckDBEventStore:
    return DuckDBEventStore(str(tmp_path / "events.duckdb"))


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(UserAgentParser(), GeoLocator(country_path=None), late_event_hours=24 * 3650)
