"""Helpers of the DuckDB session upkeep tests: each batch is stored for site-1 through the
loader's path and appended for site-2, whose sessions a rebuild derives, to compare with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from cadlink.events import Envelope
from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events.base import StoreBatch
from cadlink.store.events.duckdb_store import DuckDBEventStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def load_both(store: DuckDBEventStore, enricher: Enricher, batch: list[Envelope]) -> None:
    """Store `batch` for site-1 as the loader does; append the same rows for site-2."""
    table = enricher.enrich(batch).rows
    store.write(StoreBatch(table))
    copy = table.set_column(0, "site_id", pa.array(["site-2"] * len(table)))
    store.append(StoreBatch(copy))


def sessions_of(store: DuckDBEventStore, site: str) -> list[dict[str, Any]]:
    """`site`'s sessions around T0, labelled site-1 so that the two sites compare equal."""
    rows = store.list_sessions(site, T0 - timedelta(days=1), T0 + timedelta(days=1), 100)
    return [r | {"site_id": "site-1"} for r in rows]
