"""The Redis queue with the embedded DuckDB store: `cadlink serve` loads the queue itself (its
store process, as it runs in production, or in one process), and says so."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.buffer import Backlog, SpoolWriter
from cadlink.ingest.buffer.redis_stream import RedisStreamReader, connect
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.stream_loader import StreamLoader
from cadlink.services import build_events, build_loader
from cadlink_fixtures import Running, make_settings, start_app, wait_for
from server_process import Server, base_env

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _post(app: Running, paths: list[str]) -> httpx.Response:
    """A browser's page views of `paths` to the app's site, in one collect request."""
    events = [{"eventType": "page_view", "pagePath": path} for path in paths]
    return app.client.post(
        "/api/v1/collect",
        json={"siteId": app.site_id, "events": events},
        headers={"User-Agent": UA},
    )


@pytest.mark.parametrize("store_process", [False, True], ids=["one-process", "store-process"])
def test_serve_loads_the_queue_into_duckdb(
    tmp_path: Path, redis_url: tuple[str, str], store_process: bool
) -> None:
    url, prefix = redis_url
    settings = make_settings(tmp_path / "data", queue_url=url, queue_stream=f"{prefix}events")
    for app in start_app(settings, store_process=store_process):
        r = _post(app, [f"/q/{i}" for i in range(3)])
        assert r.status_code == 204, r.text
        stored = app.stored(3)
        assert sorted(e["pagePath"] for e in stored) == ["/q/0", "/q/1", "/q/2"]
        assert not (tmp_path / "data" / "spool").exists() or not any(
            (tmp_path / "data" / "spool").iterdir()
        )  # nothing went to a spool
        queue = app.client.get("/api/health/queue").json()["data"]
        assert queue["kind"] == "redis" and queue["loadsHere"] is True
        assert queue["stream"] == f"{prefix}events"
        metrics = app.client.get("/metrics").text
        assert "cadlink_buffer_backlog_entries" in metrics


def test_an_unreachable_queue_answers_503(tmp_path: Path, redis_url: tuple[str, str]) -> None:
    """Redis is down: the server still starts (its loader waits for the queue), collect
    answers 503 with Retry-After, and the queue's health says why."""
    _, prefix = redis_url
    settings = make_settings(
        tmp_path / "data", queue_url="redis://127.0.0.1:1/0", queue_stream=f"{prefix}events"
    )
    for app in start_app(settings):
        r = _post(app, ["/"])
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) > 0
        assert "event queue unavailable" in r.json()["error"]["message"]
        health = app.client.get("/api/health/queue")
        assert health.status_code == 503
        assert health.json()["error"]["code"] == "queue_unavailable"
        # Both answers are public: the queue's address stays in the server log.
        assert "127.0.0.1" not in r.text and "127.0.0.1" not in health.text
        assert app.client.get("/api/health").status_code == 200


def test_queue_entries_carry_no_raw_ip(
    tmp_path: Path, redis_url: tuple[str, str], postgres_url: str
) -> None:
    """With a shared event store nothing loads in the server (workers do): what it queued
    stays in Redis to be read, and holds the network prefix, never the address."""
    url, prefix = redis_url
    stream = f"{prefix}events"
    settings = make_settings(
        tmp_path / "data", queue_url=url, queue_stream=stream, events_url=postgres_url
    )
    for app in start_app(settings):  # the test client's address is 203.0.113.77
        r = _post(app, ["/"])
        assert r.status_code == 204, r.text
        assert app.client.get("/api/health/queue").json()["data"]["loadsHere"] is False
    client = redis.Redis.from_url(url)
    entries = client.xrange(stream)
    client.close()
    assert len(entries) == 1
    record = entries[0][1][b"r"]
    assert b"203.0.113.0" in record and b"203.0.113.77" not in record


def test_servers_hear_what_workers_stored(
    tmp_path: Path, redis_url: tuple[str, str], postgres_url: str
) -> None:
    """A worker announces each stored batch; the server, which loads nothing itself, hears it:
    its live dashboard is notified and its count of stored events grows."""
    url, prefix = redis_url
    stream = f"{prefix}events"
    settings = make_settings(
        tmp_path / "data", queue_url=url, queue_stream=stream, events_url=postgres_url
    )
    with contextlib.closing(start_app(settings)) as running:
        app = next(running)
        heard: list[int] = []
        previous = app.services.loader.on_loaded

        def on_loaded(stored: int) -> None:
            heard.append(stored)
            if previous is not None:
                previous(stored)  # the live hub's notification

        app.services.loader.on_loaded = on_loaded
        r = _post(app, [f"/w/{i}" for i in range(4)])
        assert r.status_code == 204, r.text
        worker = StreamLoader(
            RedisStreamReader(connect(url), stream),
            app.services.events,
            Enricher(UserAgentParser(), GeoLocator(country_path=None), 72),
        )
        assert worker.drain() == 4
        wait_for(lambda: heard == [4])
        assert app.client.get("/api/health/queue").json()["data"]["eventsStored"] == 4
        assert len(app.stored(4)) == 4
        worker.stop()


def _spool_left_behind(data_dir: Path, count: int) -> None:
    """Records a server accepted into its spool and never loaded (it stopped, then was
    configured for the queue)."""
    writer = SpoolWriter(data_dir / "spool", fsync="never")
    now = int(time.time() * 1000)
    for i in range(count):
        event = IncomingEvent(event_type="page_view", timestamp=now, page_path=f"/old/{i}")
        writer.put(encode_envelope(Envelope(now, "spool-site", 7, "", UA, [event])))
    writer.close()


@pytest.mark.parametrize("events", ["duckdb-one-process", "duckdb-store-process", "postgres"])
def test_switching_to_the_queue_loads_what_the_spool_still_held(
    tmp_path: Path, redis_url: tuple[str, str], request: pytest.FixtureRequest, events: str
) -> None:
    url, prefix = redis_url
    data = tmp_path / "data"
    _spool_left_behind(data, 5)
    extra = {"events_url": request.getfixturevalue("postgres_url")} if events == "postgres" else {}
    settings = make_settings(data, queue_url=url, queue_stream=f"{prefix}events", **extra)
    with contextlib.closing(
        start_app(settings, store_process=events == "duckdb-store-process")
    ) as running:
        app = next(running)
        wait_for(lambda: app.services.events.count_events("spool-site") >= 5)
        assert app.services.events.count_events("spool-site") == 5
        assert not any((data / "spool").glob("*.spool"))  # loaded, then deleted


def test_embedded_mode_does_not_load_the_queue_client(tmp_path: Path) -> None:
    """redis-py and hiredis are 8 MB of a web process whose memory is measured: only a
    server with a queue configured loads them."""
    server = Server(tmp_path / "data", base_env(tmp_path / "data"))
    server.start()
    try:
        assert server.proc is not None
        with open(f"/proc/{server.proc.pid}/maps") as maps:
            mapped = maps.read()
        assert "hiredis" not in mapped
        assert "site-packages/redis" not in mapped  # (pure Python: checked below too)
        out = subprocess.run(
            [sys.executable, "-c", _IMPORTS], capture_output=True, text=True, check=True
        )
        assert out.stdout.split() == ["False", "False"], out.stderr
    finally:
        server.stop()


# What `cadlink serve` imports to build its app (embedded mode).
_IMPORTS = """
import sys
import cadlink.app, cadlink.cli, cadlink.services, cadlink.web.metrics
import cadlink.web.routes_health, cadlink.web.collect_protocol
print("redis" in sys.modules, "hiredis" in sys.modules)
"""


def test_a_duckdb_server_warns_when_another_loader_shares_its_queue(
    tmp_path: Path, redis_url: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, prefix = redis_url
    stream = f"{prefix}events"
    settings = make_settings(tmp_path / "data", queue_url=url, queue_stream=stream)
    events = build_events(settings)
    try:
        with caplog.at_level(logging.WARNING):
            build_loader(settings, events, Backlog()).stop()
        assert "split between their stores" not in caplog.text  # alone: nothing to say
        other = RedisStreamReader(connect(url), stream, consumer="elsewhere")
        other.read(1 << 20)  # a loader on another host, alive
        with caplog.at_level(logging.WARNING):
            build_loader(settings, events, Backlog()).stop()
        assert "split between their stores" in caplog.text
        other.close()
    finally:
        events.close()
