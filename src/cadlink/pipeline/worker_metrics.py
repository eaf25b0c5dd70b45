"""`cadlink worker --metrics-port`: a worker has no web server of its own, so it serves its
metrics from prometheus_client's HTTP server on a thread. (Apart from loader_metrics.py so that
the web process, which imports that, does not load redis-py in embedded mode: 8 MB.)"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cadlink.pipeline.loader_metrics import loader_metrics
from cadlink.pipeline.stream_loader import StreamLoader


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
