"""`cadlink serve`'s HTTP protocol (web/collect_protocol.py): collect requests answered in the
parser's callback give byte for byte the answers of the ASGI route, keep a connection's order,
and every accepted event is stored once. A real uvicorn server on a loopback port, the real app
on embedded stores; the ASGI route is reached with a query string, which the fast path leaves
to uvicorn."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from cadlink.app import CadlinkApp, create_app
from cadlink.services import Services
from cadlink.web.collect_protocol import collect_protocol
from cadlink_fixtures import FAST_HASHER, make_settings, serving, wait_for

ORIGIN = "https://shop.example"


@dataclass
class Live:
    app: CadlinkApp
    services: Services
    port: int
    site_id: str

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def stored(self, site_id: str | None = None) -> int:
        return self.services.events.count_events(site_id or self.site_id)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    # No background refresh of the site map: a site created later is found by a lookup.
    settings = make_settings(tmp_path / "data", site_refresh_seconds=3600)
    services = Services.build(settings, hasher=FAST_HASHER)
    site = services.meta.create_site("shop.example", "Shop", allowed_origins=[ORIGIN])
    services.refresh_now()
    app = create_app(settings, services)
    with serving(app, timeout_keep_alive=1) as port:
        yield Live(app, services, port, site.public_id)


def _in_a_loop_of_its_own(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` on a loop in a thread of its own: a pytest worker's main thread may hold
    another test's running loop."""
    thread = threading.Thread(target=asyncio.run, args=(work,))
    thread.start()
    thread.join(timeout=30)


def _request(target: str, body: bytes, *headers: str, version: str = "1.1") -> bytes:
    lines = [f"POST {target} HTTP/{version}", "Host: collect.test", "User-Agent: " + _UA]
    lines += [*headers, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def _read_response(
    sock: socket.socket, pending: bytearray
) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One response: status line, headers (lower-case names), body (by content-length)."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed mid-response: {bytes(pending)!r}")
        pending += chunk
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b": ")
        headers[name.lower()] = value
    length = int(headers.get(b"content-length", b"0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    pending[:] = rest[length:]
    return status, headers, rest[:length]


def _exchange(live: Live, raw: bytes) -> tuple[bytes, dict[bytes, bytes], bytes, bool]:
    """Send one request on a new connection; the response and whether the server closed."""
    with live.connect() as sock:
        sock.sendall(raw)
        pending = bytearray()
        status, headers, body = _read_response(sock, pending)
        sock.settimeout(0.5)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
    return status, headers, body, closed


def _event(site_id: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {"siteId": site_id, "eventType": "page_view", "eventId": event_id,
            "pageUrl": "https://shop.example/p/1", **extra}  # fmt: skip


def _bad_type(site_id: str) -> bytes:
    return json.dumps(_event(site_id, "x", eventType="no spaces")).encode()


def _cases(site_id: str, tag: str) -> list[tuple[str, bytes, tuple[str, ...], str]]:
    one = json.dumps(_event(site_id, f"{tag}-1")).encode()
    batch = json.dumps(
        {"siteId": site_id, "events": [_event(site_id, f"{tag}-b{i}") for i in range(3)]}
    ).encode()
    return [
        ("/api/v1/collect", one, (), "1.1"),
        ("/api/v1/collect/", one, (f"Origin: {ORIGIN}",), "1.1"),
        ("/api/v1/collect/batch", batch, (f"Origin: {ORIGIN}",), "1.1"),
        ("/api/v1/collect", one, ("Origin: https://evil.example",), "1.1"),
        ("/api/v1/collect", b'{"siteId": ', (), "1.1"),
        ("/api/v1/collect", b"", (), "1.1"),
        ("/api/v1/collect", _bad_type(site_id), (), "1.1"),
        ("/api/v1/collect", json.dumps(_event("site_nope", "x")).encode(), (), "1.1"),
        ("/api/v1/collect", one, ("Content-Type: text/plain",), "1.0"),
    ]


def test_answers_are_the_asgi_routes_answers_byte_for_byte(live: Live) -> None:
    for (target, body, headers, version), (_, body_b, _, _) in zip(
        _cases(live.site_id, "fast"), _cases(live.site_id, "asgi"), strict=True
    ):
        fast = _exchange(live, _request(target, body, *headers, version=version))
        slow = _exchange(live, _request(target + "?via=asgi", body_b, *headers, version=version))
        fast[1].pop(b"date"), slow[1].pop(b"date")
        assert fast == slow, (target, headers, version)
    statuses = [
        _exchange(live, _request(t, b, *h, version=v))[0].split(b" ")[1]
        for t, b, h, v in _cases(live.site_id, "again")
    ]
    assert statuses == [b"204", b"204", b"200", b"403", b"400", b"400", b"400", b"400", b"204"]
    # Every accepted event is stored once: the single event (sent three times a round, with
    # one id) and the batch's three, in each of three rounds.
    wait_for(lambda: live.stored() == 3 * 4, timeout=20)


def test_pipelined_requests_keep_their_order(live: Live) -> None:
    """A request the ASGI route answers (it awaits) holds back the collect requests behind
    it on the same connection: answers come in request order."""
    raw = b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"
    for i in range(3):
        raw += _request("/api/v1/collect", json.dumps(_event(live.site_id, f"p{i}")).encode())
    raw += b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"
    with live.connect() as sock:
        sock.sendall(raw)
        pending = bytearray()
        answers = [_read_response(sock, pending) for _ in range(5)]
    assert [a[0].split(b" ")[1] for a in answers] == [b"200", b"204", b"204", b"204", b"200"]
    assert json.loads(answers[0][2])["success"] is True
    wait_for(lambda: live.stored() == 3, timeout=20)


def test_a_body_in_pieces_and_many_requests_on_one_connection(live: Live) -> None:
    with live.connect() as sock:
        pending = bytearray()
        for i in range(50):
            raw = _request("/api/v1/collect", json.dumps(_event(live.site_id, f"k{i}")).encode())
            if i % 10 == 0:  # headers, then the body in two sends
                cut = raw.index(b"\r\n\r\n") + 4
                sock.sendall(raw[:cut])
                time.sleep(0.02)
                sock.sendall(raw[cut : cut + 10])
                time.sleep(0.02)
                sock.sendall(raw[cut + 10 :])
            else:
                sock.sendall(raw)
            assert _read_response(sock, pending)[0] == b"HTTP/1.1 204 No Content"
    wait_for(lambda: live.stored() == 50, timeout=20)


def test_a_site_created_after_start_is_looked_up(live: Live) -> None:
    """The in-memory site map does not know it yet: the fast path hands the request to the
    ASGI route, which looks the site up, stores the event and answers."""
    site = live.services.meta.create_site("new.example", "New")
    time.sleep(1.1)  # a miss refreshes the map at most once a second
    raw = _request("/api/v1/collect", json.dumps(_event(site.public_id, "late-1")).encode())
    status, _, body, _ = _exchange(live, raw)
    assert status == b"HTTP/1.1 204 No Content", body
    wait_for(lambda: live.stored(site.public_id) == 1, timeout=20)


def test_chunked_and_oversized_bodies_take_the_asgi_route(live: Live) -> None:
    body = json.dumps(_event(live.site_id, "chunked-1")).encode()
    raw = (
        b"POST /api/v1/collect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        + f"User-Agent: {_UA}\r\n\r\n".encode()
        + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    )  # fmt: skip
    status, _, answer, _ = _exchange(live, raw)
    assert status == b"HTTP/1.1 204 No Content", answer
    big = b'{"siteId": "' + b"x" * (live.app.collect.max_body + 10) + b'"}'
    status, headers, _, _ = _exchange(live, _request("/api/v1/collect", big))
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert headers[b"x-cadlink-rejected"] == b"body_too_large"
    wait_for(lambda: live.stored() == 1, timeout=20)


def test_keep_alive_closes_idle_connections_only(live: Live) -> None:
    """`timeout_keep_alive` is 1 s here: a connection that sends a request every 0.3 s stays
    open past it; once idle, it is closed about a second after its last answer."""
    with live.connect() as sock:
        pending = bytearray()
        started = time.monotonic()
        for i in range(9):  # 2.4 s
            if i:
                time.sleep(0.3)
            raw = _request("/api/v1/collect", json.dumps(_event(live.site_id, f"ka{i}")).encode())
            sock.sendall(raw)
            assert _read_response(sock, pending)[0] == b"HTTP/1.1 204 No Content"
        idle_from = time.monotonic()
        assert idle_from - started > 2.0
        sock.settimeout(5)
        assert sock.recv(1) == b""
        assert 0.9 < time.monotonic() - idle_from < 3.0


class _Transport(asyncio.Transport):
    """What a protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closed


def test_a_turns_answers_are_written_together(tmp_path: Path) -> None:
    """The fast path answers without a task, but writes its answers once the loop has read
    every connection of the turn: none while the parser's callbacks run, all of them when the
    turn ends (the ASGI route answers once its task has run). An answer still waiting
    when the server shuts down is written before the connection closes."""
    settings = make_settings(tmp_path / "data")
    services = Services.build(settings, hasher=FAST_HASHER)
    site = services.meta.create_site("shop.example", "Shop")
    services.refresh_now()
    app = create_app(settings, services)
    config = uvicorn.Config(app, log_config=None, http=collect_protocol(app.collect))
    config.load()
    body = json.dumps(_event(site.public_id, "cb-1")).encode()
    seen: list[list[bytes]] = []
    closed: list[bool] = []

    async def exchange() -> None:
        def connection() -> tuple[Any, _Transport]:
            protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=ServerState(),
                app_state={},
                _loop=asyncio.get_running_loop(),
            )
            transport = _Transport()
            protocol.connection_made(transport)
            return protocol, transport

        (a, ta), (b, tb), (c, tc) = connection(), connection(), connection()
        try:
            a.data_received(_request("/api/v1/collect", body))
            b.data_received(_request("/api/v1/collect", body))
            c.data_received(_request("/api/v1/collect", body))
            c.shutdown()  # the server stops while c's answer waits
            seen.append([bytes(t.written) for t in (ta, tb, tc)])
            closed.append(tc.closed)
            await asyncio.sleep(0)  # the end of the turn
            seen.append([bytes(t.written) for t in (ta, tb, tc)])
            closed.append(tc.closed)
            ta.written.clear()
            a.data_received(_request("/api/v1/collect?via=asgi", body))
            seen.append([bytes(ta.written)])
            await asyncio.sleep(0.05)
            seen.append([bytes(ta.written)])
        finally:
            await services.stop()

    _in_a_loop_of_its_own(exchange())
    assert seen[0] == [b"", b"", b""]
    assert closed[0] is False
    assert all(w.startswith(b"HTTP/1.1 204 No Content\r\n") for w in seen[1])
    assert closed[1] is True  # answered, then closed
    assert seen[2] == [b""]  # the ASGI route has only started its task
    assert seen[3][0].startswith(b"HTTP/1.1 204 No Content\r\n")
    assert services.ingest_metrics.events_accepted == 4


def test_a_pipelined_request_waits_for_the_answer_before_it(live: Live) -> None:
    """A collect request's answer waits for the end of the turn; a request pipelined behind
    it on the same connection, answered by the ASGI route or the fast path, comes after."""
    one = _request("/api/v1/collect", json.dumps(_event(live.site_id, "w1")).encode())
    two = _request("/api/v1/collect", json.dumps(_event(live.site_id, "w2")).encode())
    bad = _request("/api/v1/collect", _bad_type(live.site_id))
    raw = one + b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n" + two + bad + one
    with live.connect() as sock:
        sock.sendall(raw)
        pending = bytearray()
        answers = [_read_response(sock, pending) for _ in range(5)]
    statuses = [a[0].split(b" ")[1] for a in answers]
    assert statuses == [b"204", b"200", b"204", b"400", b"204"]
    wait_for(lambda: live.stored() == 2, timeout=20)


def test_a_request_handed_to_the_asgi_route_is_rate_limited_once(tmp_path: Path) -> None:
    """A site the map does not know yet sends the request on to the ASGI handler, which
    admits it again: the fast path gives back the rate limit's count for it."""
    settings = make_settings(tmp_path / "data", rate_limit_per_minute=1, rate_limit_burst=2)
    services = Services.build(settings, hasher=FAST_HASHER)
    try:
        known = services.meta.create_site("shop.example", "Shop")
        services.refresh_now()
        later = services.meta.create_site("new.example", "New")
        handler = create_app(settings, services).collect
        headers = {b"user-agent": _UA.encode()}
        peer = ("198.51.100.7", 40000)

        def post(site_id: str, event_id: str) -> Any:
            body = json.dumps(_event(site_id, event_id)).encode()
            return handler.answer_post("/api/v1/collect", headers, peer, body)

        assert post(later.public_id, "m-1") is None  # handed on: the ASGI route counts it
        assert [post(known.public_id, f"k-{i}").status for i in range(3)] == [204, 204, 429]
    finally:
        _in_a_loop_of_its_own(services.stop())


def test_answers_wait_for_the_turn_but_not_for_more_than_most() -> None:
    """`Answers` writes a turn's answers in order when the turn ends, at once when
    `Answers.MOST` are waiting; a failing connection does not cost the others theirs."""
    from cadlink.web.collect_protocol import Answers

    scheduled: list[Any] = []

    class Loop:
        def call_soon(self, callback: Any) -> None:
            scheduled.append(callback)

    sent: list[bytes] = []

    def send(data: bytes, keep_alive: bool) -> None:
        if data == b"broken":
            raise ConnectionError("gone")
        sent.append(data)

    answers = Answers()
    loop: Any = Loop()
    answers.add(loop, send, b"a", True)
    answers.add(loop, send, b"broken", True)
    answers.add(loop, send, b"b", True)
    assert sent == [] and len(scheduled) == 1
    scheduled.pop()()
    assert sent == [b"a", b"b"]
    sent.clear()
    for i in range(Answers.MOST):
        answers.add(loop, send, b"%d" % i, True)
    assert sent == [b"%d" % i for i in range(Answers.MOST)]  # without waiting for the turn
    scheduled.pop()()  # the turn's scheduled write finds nothing left
    assert len(sent) == Answers.MOST and not answers.waiting


def test_each_connection_gets_its_own_answer_when_many_share_a_turn(live: Live) -> None:
    """Requests on many connections arrive together, so their answers wait in one turn: each
    connection must get the answer to its own request (the batch answer counts its events)."""
    socks = [live.connect() for _ in range(16)]
    try:
        pendings = [bytearray() for _ in socks]
        for round_no in range(5):
            for n, sock in enumerate(socks):
                events = [_event(live.site_id, f"t{round_no}-{n}-{k}") for k in range(n % 7 + 1)]
                body = json.dumps({"siteId": live.site_id, "events": events}).encode()
                sock.sendall(_request("/api/v1/collect/batch", body))
            for n, sock in enumerate(socks):
                status, _, body = _read_response(sock, pendings[n])
                assert status == b"HTTP/1.1 200 OK"
                assert json.loads(body) == {"success": True, "queued": n % 7 + 1}
    finally:
        for sock in socks:
            sock.close()
    wait_for(lambda: live.stored() == 5 * sum(n % 7 + 1 for n in range(16)), timeout=30)
