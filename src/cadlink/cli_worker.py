"""`cadlink worker`: a loader of the shared queue, for server mode (docs/deployment.md)."""

from __future__ import annotations

import sys

import click


@click.command("worker")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve Prometheus metrics on this port.",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port."
)
@click.option("--json", "as_json", is_flag=True, help="Print the start line as JSON.")
def worker(metrics_port: int | None, metrics_host: str, as_json: bool) -> None:
    """Load the shared queue into the event store (server mode: CADLINK_QUEUE_URL=redis://…
    and a shared event store). Run as many as the load needs, on any hosts; stops on
    SIGTERM or Ctrl-C after the batch it is loading."""
    import signal
    import threading

    import redis

    from cadlink.cli import _emit, _settings
    from cadlink.ingest.buffer import Backlog
    from cadlink.logs import configure_logging
    from cadlink.pipeline.store_status import embedded
    from cadlink.services import build_events, build_loader, build_meta, identity_recorder

    settings = _settings()
    if not settings.queue_url:
        raise click.ClickException(
            "in embedded mode `cadlink serve` runs the loader itself; "
            "`cadlink worker` is for server mode with CADLINK_QUEUE_URL=redis://…"
        )
    if embedded(settings):
        raise click.ClickException(
            "the event store is the embedded DuckDB file, which one process writes: "
            "`cadlink serve` loads the queue itself. Workers need a shared event store "
            "(CADLINK_EVENTS_URL=postgresql://…)"
        )
    configure_logging(settings.log_level)
    if settings.database_url.startswith("sqlite"):
        # Legitimate beside a server on the same host (one SQLite file); elsewhere the CRM's
        # identified users would go to a file no server reads.
        click.echo(
            f"warning: identified users go to {settings.database_url}: on a host without the "
            "servers, set CADLINK_DATABASE_URL to their metadata database (postgresql://…)",
            err=True,
        )
    meta = build_meta(settings)
    try:
        events = build_events(settings)
    except Exception as e:  # the driver's own (psycopg, clickhouse-connect): any of its errors
        where = _redacted(settings.events_url)
        raise click.ClickException(
            f"cannot open the event store ({where}): {_first_line(e, settings.events_url)}"
        ) from None
    loader = build_loader(settings, events, Backlog(), identity_recorder(meta))
    try:
        loader.run_once()  # reaches the queue now, so that a wrong URL fails here, clearly
    except redis.RedisError as e:
        events.close()
        where = _redacted(settings.queue_url)
        raise click.ClickException(f"cannot reach the queue ({where}): {e}") from None
    if metrics_port is not None:
        from cadlink.pipeline.stream_loader import StreamLoader
        from cadlink.pipeline.worker_metrics import serve_worker_metrics

        if not isinstance(loader, StreamLoader):  # a queue is configured (checked above)
            raise RuntimeError(f"a worker's loader is a StreamLoader, not {loader!r}")
        try:
            serve_worker_metrics(loader, metrics_host, metrics_port)
        except OSError as e:
            loader.stop()
            events.close()
            raise click.ClickException(
                f"cannot serve metrics on {metrics_host}:{metrics_port}: {e}"
            ) from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    loader.start()
    consumer = getattr(getattr(loader, "reader", None), "consumer", "")
    metrics = f"http://{metrics_host}:{metrics_port}/metrics" if metrics_port else None
    _emit(
        as_json,
        {
            "consumer": consumer,
            "stream": settings.queue_stream,
            "events": events.engine,
            "metrics": metrics,
        },
        f"loading {settings.queue_stream} into the {events.engine} event store as {consumer}"
        + (f"; metrics at {metrics}" if metrics else "")
        + "; Ctrl-C stops",
    )
    sys.stdout.flush()
    stop.wait()
    loader.stop()  # after the batch it is loading; the rest stays in the queue
    events.close()
    meta.engine.dispose()


def _redacted(url: str) -> str:
    """`url` without its password."""
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@", 1) if password else url


def _first_line(error: Exception, url: str) -> str:
    """The first line of `error`'s message (a driver's may run on with hints), without the
    password of `url` should the driver have quoted it."""
    from urllib.parse import urlsplit

    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
