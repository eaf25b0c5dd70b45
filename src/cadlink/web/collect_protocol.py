"""`cadlink serve`'s HTTP protocol: uvicorn's, with collect requests answered in place.

uvicorn hands every request to the ASGI app as a task: a request-response object, an event,
a task on the loop, the app's coroutine, a `receive` and two `send` awaits. For a collect
request that machinery costs more than the handler's own work, and the handler never needs
to wait (the spool append is a `write()`). So when a POST to a collect path arrives whole,
this protocol asks the handler (`CollectHandler.answer_post`, the code the ASGI route runs)
from the parser's callback. Everything else takes uvicorn's path unchanged, as does a
collect request the fast path does not take:
- another request of the connection is still being answered (pipelining keeps its order);
- no `Content-Length` or one above the body limit (the ASGI route streams or refuses it);
- `Expect: 100-continue`, an upgrade, a full write buffer (uvicorn waits for it to drain);
- a site id this process has not loaded yet (the ASGI route awaits the lookup).

The answers of one turn of the event loop are written together, once it has read every
connection that had data (`Answers`): the event is already in the spool when its answer is
queued (with a Redis queue, the turn's records are sent in one pipeline first, and answers
that waited on a failed one become 503s). Written one by one, each answer woke the waiting
client on its own, and on the 2-core benchmark machine those wake-ups cost the server more
kernel time than the request itself; in a burst, the clients wake once and send their next
requests together, so the next turn reads them together too. Same load, loader paused:
15 k -> 23 k requests/s, the main thread's CPU per request 57 -> 38 µs (docs/benchmarks.md,
thirteenth pass). A turn's answers wait for at most `Answers.MOST` requests' work.

The answer's bytes are what uvicorn would write for the same `Answer`: its status line, its
default headers (the date), the handler's headers, `connection: close` when the connection
does not stay open. docs/architecture.md has the measurements.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from cadlink.ingest.collect import CollectHandler
from cadlink.ingest.collect_answers import NO_CONTENT, Answer

log = logging.getLogger(__name__)

# The exact request targets the fast path takes (`app.COLLECT_ROUTES`); anything else
# (a query string, an escaped character) goes the ASGI way, which parses the URL.
FAST_TARGETS = frozenset(
    {b"/api/v1/collect", b"/api/v1/collect/", b"/api/v1/collect/batch", b"/api/v1/collect/batch/"}
)
_SERVER_ERROR = Answer(
    500,
    ((b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")),
    b"Internal Server Error",
)


def _head(status: int, default_headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    parts = [STATUS_LINE[status]]
    for name, value in default_headers:
        parts += (name, b": ", value, b"\r\n")
    return parts


def encode(answer: Answer, default_headers: list[tuple[bytes, bytes]], keep_alive: bool) -> bytes:
    """The bytes uvicorn writes for `answer` (its headers carry their content-length)."""
    parts = _head(answer.status, default_headers)
    for name, value in answer.headers:
        parts += (name, b": ", value, b"\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts += (b"\r\n", answer.body)
    return b"".join(parts)


# What an answer that waits on the turn's flush needs to become the 503 instead: the
# request's origin (CORS) and uvicorn's default headers of the moment.
Waits = tuple[str | None, list[tuple[bytes, bytes]]]


class Answers:
    """The fast path's answers of this turn of the event loop, in the order they were
    given: written together by `write`, which the first answer of a turn schedules.

    With a buffer that defers its records (a Redis queue: `CollectHandler.defers`), `write`
    first stores the turn's records in one flush; if that fails, every answer that waited on
    it becomes the 503 the request would have got had the buffer refused it at once."""

    MOST = 64  # answers that wait at most: then they are written at once

    def __init__(self, handler: CollectHandler | None = None) -> None:
        self.waiting: list[tuple[Callable[[bytes, bool], None], bytes, bool, Waits | None]] = []
        self.handler = handler if handler is not None and handler.defers else None

    def add(
        self,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[bytes, bool], None],
        data: bytes,
        keep_alive: bool,
        waits: Waits | None = None,
    ) -> None:
        """Keep `data` for `send` (the connection's), to be written at the end of the turn;
        `waits`: the answer holds only if the turn's deferred records are stored."""
        waiting = self.waiting
        if not waiting:
            loop.call_soon(self.write)
        waiting.append((send, data, keep_alive, waits))
        if len(waiting) >= self.MOST:
            self.write()

    def write(self) -> None:
        """Write what waits (early too: a connection's next request must not overtake its
        answer). Whatever `write` already took is no longer waiting, so a call scheduled
        before it finds less, or nothing."""
        waiting, self.waiting = self.waiting, []
        handler = self.handler
        failed = handler.flush_deferred() if handler is not None else None
        for send, data, keep_alive, waits in waiting:
            if failed is not None and waits is not None and handler is not None:
                data = encode(handler.rejected(failed, waits[0]), waits[1], keep_alive)
            try:
                send(data, keep_alive)
            except Exception:  # one connection's failure must not cost the others' answers
                log.exception("writing a collect answer failed")


def collect_protocol(handler: CollectHandler) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol class with the collect fast path for `handler`."""
    max_body = handler.max_body
    answers = Answers(handler)

    class CollectProtocol(HttpToolsProtocol):
        _fast_body: bytearray | None = None  # the body of a request on the fast path
        _answer_waits = False  # this connection's answer waits in `answers`
        _close_after: bool = False  # shutdown arrived while a fast request was open
        # `NO_CONTENT` encoded for one list of default headers (uvicorn replaces the list
        # when the date changes, once a second).
        _no_content: tuple[object, bytes] = (None, b"")
        _busy = False  # a request has arrived since the last answer
        _idle_since = 0.0  # loop time of the last answer

        # -- the ASGI scope, built only for requests that take uvicorn's path ------------

        def on_message_begin(self) -> None:
            if self._answer_waits:  # a pipelined request: its predecessor's answer first
                answers.write()
            self.url = b""
            self.expect_100_continue = False
            self.headers = []

        def _begin_scope(self) -> None:
            """uvicorn's scope for the request parsed so far (its `on_message_begin`)."""
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()
            self.url, self.headers, self.expect_100_continue = url, headers, expect
            self.scope["headers"] = headers

        def on_headers_complete(self) -> None:
            if self.url in FAST_TARGETS and self._may_answer_in_place():
                self._fast_body = bytearray()
                return
            self._begin_scope()
            super().on_headers_complete()

        def _may_answer_in_place(self) -> bool:
            if (
                self.parser.get_method() != b"POST"
                or self.expect_100_continue
                or self.parser.should_upgrade()
                or self.pipeline
                or (self.cycle is not None and not self.cycle.response_complete)
                or self.flow.write_paused
                or self.limit_concurrency is not None
                or self.root_path
            ):
                return False
            for name, value in self.headers:
                if name == b"content-length":
                    return value.isdigit() and int(value) <= max_body
            return False

        def on_body(self, body: bytes) -> None:
            fast = self._fast_body
            if fast is None:
                super().on_body(body)
            else:
                fast += body  # at most the declared length, itself within the limit

        def on_message_complete(self) -> None:
            fast = self._fast_body
            if fast is None:
                super().on_message_complete()
                return
            self._fast_body = None
            self._answer_in_place(bytes(fast))

        def _answer_in_place(self, body: bytes) -> None:
            url = self.url
            path = url.decode("ascii")
            headers = dict(self.headers)
            deferred = handler.deferred_requests
            try:
                answer = handler.answer_post(path, headers, self.client, body)
            except Exception:
                log.exception("collect request failed")
                answer = _SERVER_ERROR
            if answer is None:
                # A site to look up: hand the request, body and all, to the ASGI route.
                self._begin_scope()
                super().on_headers_complete()
                if self.cycle is not None:
                    self.cycle.body = bytearray(body)
                super().on_message_complete()
                return
            keep_alive = (
                answer is not _SERVER_ERROR
                and not self._close_after
                and self.parser.get_http_version() != "1.0"
                and self.parser.should_keep_alive()
            )
            defaults = self.server_state.default_headers
            if answer is NO_CONTENT and keep_alive:
                cached = self._no_content
                if cached[0] is not defaults:
                    cached = (defaults, encode(NO_CONTENT, defaults, True))
                    type(self)._no_content = cached
                data = cached[1]
            else:
                data = encode(answer, defaults, keep_alive)
            self._answer_waits = True
            if handler.deferred_requests == deferred:
                answers.add(self.loop, self.send_answer, data, keep_alive)
            else:  # its records wait for the turn's flush (a Redis queue)
                origin = headers.get(b"origin")
                waits = (origin.decode("latin-1") if origin is not None else None, defaults)
                answers.add(self.loop, self.send_answer, data, keep_alive, waits)

        def send_answer(self, data: bytes, keep_alive: bool) -> None:
            """Write an answer `answers` kept (uvicorn's end of a response)."""
            self._answer_waits = False
            if not self.transport.is_closing():  # else the client is gone (events stored)
                self.transport.write(data)
                if not keep_alive or self._close_after:
                    self.transport.close()
            self.on_response_complete()

        # -- keep-alive: one timer per idle spell, not one per request ------------------
        # uvicorn arms a timer after every answer and cancels it when the next request
        # arrives (2 µs a request); here a timer, once armed, checks when it fires whether
        # the connection has really been idle for the whole timeout, and waits on if not.

        def _unset_keepalive_if_required(self) -> None:
            self._busy = True  # data arrived (or the connection is going)
            if self.transport.is_closing():
                super()._unset_keepalive_if_required()

        def on_response_complete(self) -> None:
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
                return
            self._busy = False
            self._idle_since = self.loop.time()
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self._keep_alive_check
                )

        def _keep_alive_check(self) -> None:
            self.timeout_keep_alive_task = None
            if self._busy or self.transport.is_closing():
                return  # the answer in progress arms the timer again
            left = self._idle_since + self.timeout_keep_alive - self.loop.time()
            if left <= 0:
                self.timeout_keep_alive_handler()
            else:
                self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_check)

        def shutdown(self) -> None:
            if self._fast_body is not None or self._answer_waits:  # answer, then close
                self._close_after = True
                return
            super().shutdown()

    return CollectProtocol
