"""The collect fast path on the Redis queue: a turn's records go to Redis in one flush before
any of the turn's answers is written, and when that flush fails every answer that waited on it
is the 503 (CORS, Retry-After) the request would have got from a full buffer, and nothing is
counted as accepted. A real uvicorn server, the real app, the local Redis."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cadlink.app import create_app
from cadlink.ingest.buffer.redis_stream import RedisStreamWriter, connect
from cadlink.services import Services
from cadlink_fixtures import FAST_HASHER, make_settings, serving, wait_for

ORIGIN = "https://shop.example"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def live(tmp_path: Path, redis_url: tuple[str, str]) -> Iterator[tuple[Services, int, str]]:
    url, prefix = redis_url
    settings = make_settings(tmp_path / "data", queue_url=url, queue_stream=f"{prefix}events")
    services = Services.build(settings, hasher=FAST_HASHER)
    site = services.meta.create_site("shop.example", "Shop", allowed_origins=[ORIGIN])
    services.refresh_now()
    app = create_app(settings, services)
    with serving(app) as port:
        yield services, port, site.public_id


def _post(port: int, site: str, path: str) -> bytes:
    body = json.dumps({"siteId": site, "events": [{"eventType": "page_view", "pagePath": path}]})
    request = (
        f"POST /api/v1/collect HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\nUser-Agent: {UA}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")),
            0,
        )  # fmt: skip
        while len(rest) < length:
            rest += sock.recv(65536)
        return head + b"\r\n\r\n" + rest


def test_many_requests_in_one_turn_are_stored_and_answered(
    live: tuple[Services, int, str],
) -> None:
    services, port, site = live
    answers: list[bytes] = []
    threads = [
        threading.Thread(target=lambda i=i: answers.append(_post(port, site, f"/t/{i}")))
        for i in range(40)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 40
    assert all(a.startswith(b"HTTP/1.1 204") for a in answers), answers[0]
    wait_for(lambda: services.events.count_events(site) >= 40)  # the loader runs meanwhile
    assert services.events.count_events(site) == 40
    assert services.ingest_metrics.events_accepted == 40


def test_a_failed_flush_answers_503_for_every_request_that_waited_on_it(
    live: tuple[Services, int, str],
) -> None:
    services, port, site = live
    writer = services.writer
    assert isinstance(writer, RedisStreamWriter)
    alive = writer.client
    with socket.socket() as s:  # a port nothing listens on: Redis is gone
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    writer.client = connect(f"redis://127.0.0.1:{dead}/0", retries=0)
    answer = _post(port, site, "/lost")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), answer
    headers = head.lower()
    assert b"retry-after: 5" in headers
    assert f"access-control-allow-origin: {ORIGIN}".encode() in headers
    error = json.loads(body)["error"]
    assert error["code"] == "overloaded" and "event queue unavailable" in error["message"]
    metrics = services.ingest_metrics
    assert metrics.events_accepted == 0 and metrics.events_rejected["overloaded"] == 1
    assert metrics.requests["accepted"] == 0 and metrics.requests["rejected"] == 1

    writer.client = alive  # Redis is back: once the writer has seen it, requests succeed
    wait_for(lambda: _post(port, site, "/back").startswith(b"HTTP/1.1 204"), timeout=10)
    wait_for(lambda: services.events.count_events(site) >= 1)
    rows = services.events.fetch("SELECT page_path FROM analytics_events WHERE site_id = ?", [site])
    assert [r["page_path"] for r in rows] == ["/back"]  # "/lost" was never acknowledged
