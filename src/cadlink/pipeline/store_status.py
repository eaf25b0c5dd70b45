"""What the store process and the web process that keeps it share: the status it reports,
and whether the event store needs it (pipeline/store_process.py, pipeline/store_child.py)."""

from __future__ import annotations

from dataclasses import dataclass

from cadlink.config import Settings
from cadlink.pipeline.loader import LoaderStats

READY = "ready"  # the child's first line on stdout once it serves


@dataclass(frozen=True)
class StoreStatus:
    """What the store process reports to the web process on every poll."""

    stats: LoaderStats
    backlog_bytes: int
    pid: int
    rss_bytes: int = 0


def embedded(settings: Settings) -> bool:
    """Whether the event store is a file only one process may open (DuckDB)."""
    return settings.events_url.startswith("duckdb://")
