"""The loader's numbers as Prometheus metrics: served by `/metrics` of `cadlink serve` and by
`cadlink worker --metrics-port` (a worker has no web server of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import redis
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cadlink.pipeline.loader import LoaderStats

if TYPE_CHECKING:
    from cadlink.pipeline.stream_loader import StreamLoader


def loader_metrics(stats: LoaderStats) -> Iterator[CounterMetricFamily]:
    stored = CounterMetricFamily("cadlink_events_stored", "Events written to the event store")
    stored.add_metric([], stats.events_stored)
    yield stored
    for name, doc, value in (
        ("cadlink_loader_batches", "Loader batches stored", stats.batches),
        ("cadlink_loader_errors", "Loader batches that failed", stats.errors),
        (
            "cadlink_loader_dead_letters",
            "Buffer records the loader could not load (kept in the dead_letters table)",
            stats.dead_letters,
        ),
        (
            "cadlink_loader_sessions_rebuilt",
            "Visitors whose sessions a loader batch rebuilt from their stored events (late "
            "events, or ties their ids cannot order) instead of merging (DuckDB store)",
            stats.sessions_rebuilt,
        ),
        (
            "cadlink_loader_batches_widened",
            "Loader batches that did not fit DuckDB's ingest memory (64MB while only the "
            "loader works) and were loaded again within CADLINK_DUCKDB_MEMORY_LIMIT: often "
            "means large events or many late ones (DuckDB store)",
            stats.batches_widened,
        ),
        (
            "cadlink_store_reattached",
            "Times the embedded event store attached its DuckDB file anew to release what "
            "DuckDB keeps per row group (after every million rows written, when no read "
            "runs)",
            stats.store_reattached,
        ),
    ):
        yield CounterMetricFamily(name, doc, value=value)


class WorkerCollector(Collector):
    """`cadlink worker`'s metrics: its loader's numbers and the queue's backlog."""

    def __init__(self, loader: StreamLoader) -> None:
        self.loader = loader

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield from loader_metrics(self.loader.stats)
        dropped = CounterMetricFamily(
            "cadlink_events_dropped", "Accepted events not stored on purpose", labels=["reason"]
        )
        dropped.add_metric(["bot"], self.loader.stats.events_dropped)
        yield dropped
        try:
            backlog: float = self.loader.reader.unloaded()
        except redis.RedisError:
            backlog = float("nan")  # Redis unreachable: no number rather than a wrong one
        queued = GaugeMetricFamily(
            "cadlink_buffer_backlog_entries", "Queue entries not yet loaded (Redis)"
        )
        queued.add_metric([], backlog)
        yield queued


def serve_worker_metrics(loader: StreamLoader, host: str, port: int) -> None:
    """Serve `GET /metrics` for a worker on `host:port`, from a thread of its own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(loader))
    ProcessCollector(registry=registry)
    start_http_server(port, addr=host, registry=registry)
