"""`GET /metrics`: Prometheus text format, built from plain counters at scrape time."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

from fastapi import APIRouter, Request
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.responses import Response

from cadlink.pipeline.loader_metrics import loader_metrics
from cadlink.services import Services

router = APIRouter(tags=["operations"])


class HttpCounters:
    """Requests by route group and status class, counted by a small ASGI wrapper."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()


class CadlinkCollector(Collector):
    def __init__(self, svc: Services, http: HttpCounters) -> None:
        self.svc = svc
        self.http = http

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        m = self.svc.ingest_metrics
        req = CounterMetricFamily(
            "cadlink_http_requests", "HTTP requests", labels=["route", "status"]
        )
        for (route, status), n in self.http.requests.items():
            req.add_metric([route, status], n)
        yield req
        collect = CounterMetricFamily(
            "cadlink_collect_requests", "Collect API requests, by outcome", labels=["outcome"]
        )
        for outcome, n in m.requests.items():
            collect.add_metric([outcome], n)
        yield collect
        acc = CounterMetricFamily("cadlink_events_accepted", "Events accepted by the collect API")
        acc.add_metric([], m.events_accepted)
        yield acc
        rej = CounterMetricFamily(
            "cadlink_events_rejected",
            "Events refused by the collect API, by reason (a request refused before its events"
            " could be counted, e.g. not JSON, counts as one)",
            labels=["reason"],
        )
        for reason, n in m.events_rejected.items():
            rej.add_metric([reason], n)
        yield rej
        dropped = CounterMetricFamily(
            "cadlink_events_dropped", "Accepted events not stored on purpose", labels=["reason"]
        )
        for reason, n in m.events_dropped.items():
            dropped.add_metric([reason], n)
        dropped.add_metric(["bot"], self.svc.loader.stats.events_dropped)
        yield dropped
        depth = GaugeMetricFamily("cadlink_buffer_backlog_bytes", "Bytes buffered, not yet loaded")
        depth.add_metric([], self.svc.backlog.bytes)
        yield depth
        entries = self.svc.writer.depth().get("envelopes")
        if entries is not None:  # a Redis queue counts entries (one per request and site)
            queued = GaugeMetricFamily(
                "cadlink_buffer_backlog_entries", "Queue entries not yet loaded (Redis)"
            )
            queued.add_metric([], entries)
            yield queued
        lag = GaugeMetricFamily("cadlink_loader_lag_seconds", "Age of the oldest unloaded event")
        last = self.svc.loader.stats.last_event_received_ms
        lag.add_metric(
            [], max(0.0, time.time() - last / 1000) if self.svc.backlog.bytes and last else 0.0
        )
        yield lag
        memory = GaugeMetricFamily(
            "cadlink_store_memory_bytes",
            "Memory the embedded event store accounts for, by use (DuckDB's duckdb_memory())",
            labels=["use"],
        )
        for use, n in self.svc.events.memory().items():
            memory.add_metric([use], n)
        yield memory
        yield from _store_process(self.svc.loader)
        yield from loader_metrics(self.svc.loader.stats)


def make_registry(svc: Services, http: HttpCounters) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CadlinkCollector(svc, http))
    # process_resident_memory_bytes, process_cpu_seconds_total, open fds, start time.
    ProcessCollector(registry=registry)
    return registry


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")


def _store_process(loader: object) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """The store process's own memory and restarts (`process_*` are the web process's)."""
    from cadlink.pipeline.store_process import StoreProcess

    if not isinstance(loader, StoreProcess):
        return
    rss = GaugeMetricFamily(
        "cadlink_store_process_resident_memory_bytes",
        "Resident memory of the store process (the loader and the embedded event store)",
    )
    rss.add_metric([], loader.status.rss_bytes)
    yield rss
    restarts = CounterMetricFamily(
        "cadlink_store_process_restarts", "Times the store process exited and was started again"
    )
    restarts.add_metric([], loader.restarts)
    yield restarts
