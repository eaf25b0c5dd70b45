"""The loader's numbers as Prometheus metrics: served by `/metrics` of `cadlink serve` and by
`cadlink worker --metrics-port` (pipeline/worker_metrics.py)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily

from cadlink.pipeline.loader import LoaderStats


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
        (
            "cadlink_store_row_group_merges",
            "Times the embedded event store merged the loader's small DuckDB row groups into "
            "large ones (after every million rows written, when the loader keeps up)",
            stats.store_merges,
        ),
    ):
        yield CounterMetricFamily(name, doc, value=value)
