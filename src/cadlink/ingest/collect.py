"""`POST /api/v1/collect` and `/api/v1/collect/batch`: a raw ASGI handler.

Decode with msgspec, validate, apply the cheap drops, put one envelope per site in the
durable buffer, answer. No database, no enrichment: both happen in the loader. The client's
address is used here for two derived values (the daily visitor hash and a truncated network
prefix for geo) and never leaves this function.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cadlink.config import Settings
from cadlink.events import (
    EVENT_TYPE_CHARS,
    NO_PROPERTIES,
    SEED_EVENT_TYPES,
    CollectedEnvelope,
    CollectedEvent,
    encode_envelope_into,
    valid_event_type,
)
from cadlink.ingest.buffer import BufferFull, BufferWriter
from cadlink.ingest.client_ip import client_ip
from cadlink.ingest.collect_answers import (
    NO_CONTENT,
    Answer,
    Rejection,
    build_answer,
    preflight,
    rejected,
)
from cadlink.ingest.collect_body import at, check_properties, decode, plain
from cadlink.ingest.enrich.identity import anonymous_visitor_id, ip_prefix
from cadlink.ingest.metrics import IngestMetrics
from cadlink.ingest.ratelimit import RateLimiter
from cadlink.ingest.salts import SaltRing
from cadlink.ingest.sites import SiteDirectory, SiteInfo

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _SiteMiss(Exception):
    """A site id the in-memory map does not know yet: look it up, then try again."""

    def __init__(self, site_id: str, field: str = "siteId") -> None:
        super().__init__(site_id)
        self.site_id = site_id
        self.field = field  # where the request named it


# Constant ASGI messages for NO_CONTENT, sent as they are (uvicorn only reads them).
_NO_CONTENT_START = {"type": "http.response.start", "status": 204, "headers": ()}
_EMPTY = {"type": "http.response.body", "body": b""}


class CollectHandler:
    """ASGI app for the collect endpoints. `batch_response` selects the /batch answer.

    Every request costs this code a few microseconds; the server software costs about as
    much again. The common case (one site, a body in one message, no proxy) is one pass
    with no awaits but the server's own.
    """

    def __init__(
        self,
        settings: Settings,
        sites: SiteDirectory,
        salts: SaltRing,
        buffer: BufferWriter,
        metrics: IngestMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sites = sites
        self.salts = salts
        self.buffer = buffer
        self.metrics = metrics
        self.clock = clock
        self.trusted = settings.trusted_proxy_set
        self.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        self.max_body = settings.max_body_bytes
        self.max_events = settings.max_batch_events
        # Per-request work that repeats (same address, visitor) is memoised: these caches
        # live only in this process's memory and are bounded. They pay off for requests a
        # moment apart (a page's beacons); a visitor's next page comes seconds later, when a
        # busy server has seen thousands of others, so large caches buy little: under varied
        # traffic (bench --traffic varied) 16,384 entries each held 8 MB of the web process
        # (65,536 addresses alone 13.6 MB) to save 0.5 and 1.4 µs a hit. 4,096 hold about 2.
        self._prefix = lru_cache(maxsize=4_096)(ip_prefix)
        self._visitor = lru_cache(maxsize=4_096)(anonymous_visitor_id)
        self._salt_until = 0.0  # when today's salt (UTC) stops being today's
        self._salt_version = -1
        self._salt_value = b""
        self._record = bytearray(4096)  # the buffer record being written (one at a time)
        # How records are buffered: `put` at once; the fast path (`answer_post`) `defer`s
        # them to a writer that keeps them for one flush per event-loop turn (a Redis queue),
        # counting the requests and events that wait on that flush (`flush_deferred`).
        self._put = buffer.put
        self.defers = buffer.defers
        self.deferred_requests = 0
        self._deferred_events = 0

    @staticmethod
    def _origin_ok(site: SiteInfo, origin: str | None) -> bool:
        answers = site.origin_answers
        allowed = answers.get(origin)
        if allowed is None:
            if len(answers) > 1_000:  # bounded: anyone can send any Origin
                answers.clear()
            allowed = answers[origin] = site.origin_allowed(origin)
        return allowed

    def _salt(self, now: float) -> bytes:
        """Today's salt (UTC day), looked up again only when the day or the ring changes."""
        if now >= self._salt_until or self.salts.version != self._salt_version:
            day = int(now // 86_400)
            self._salt_value = self.salts.for_day(datetime.fromtimestamp(now, UTC).date())
            self._salt_until, self._salt_version = (day + 1) * 86_400, self.salts.version
        return self._salt_value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        origin_b = headers.get(b"origin")
        origin = origin_b.decode("latin-1") if origin_b is not None else None
        method = scope["method"]
        if method != "POST":
            if method == "OPTIONS":
                await _send(send, preflight(origin, headers))
            else:
                answer = rejected(Rejection(405, "method_not_allowed", "use POST"), origin)
                await _send(send, answer)
            return
        try:
            ip = self._admit(headers, scope.get("client"))
            message = await receive()
            if message.get("more_body", False) or message["type"] != "http.request":
                body = await _read_body(message, receive, self.max_body)
            else:
                body = message.get("body", b"")
            try:
                answer = self._answer(scope["path"], ip, headers, body, origin)
            except _SiteMiss as miss:
                # The in-memory map answers almost always; only a miss may await a refresh.
                if await self.sites.lookup(miss.site_id) is None:
                    raise Rejection(
                        400, "unknown_site", f"no site with id {miss.site_id!r}", miss.field
                    ) from None
                answer = self._answer(scope["path"], ip, headers, body, origin)
        except Rejection as r:
            self.metrics.reject(r.code, r.events)
            answer = rejected(r, origin)
        if answer is NO_CONTENT:
            await send(_NO_CONTENT_START)
            await send(_EMPTY)
        else:
            await _send(send, answer)

    def answer_post(
        self,
        path: str,
        headers: dict[bytes, bytes],
        peer: tuple[str, int] | None,
        body: bytes,
    ) -> Answer | None:
        """The whole answer to a POST whose body has been read, without awaiting: None when
        the request names a site this process has not loaded yet (the caller then hands it
        to the ASGI handler, which looks the site up)."""
        origin_b = headers.get(b"origin")
        origin = origin_b.decode("latin-1") if origin_b is not None else None
        if not self.defers:
            return self._answer_post(path, headers, peer, body, origin)
        # The records are deferred: the answer is good only once `flush_deferred` has
        # stored them (the caller writes it after that).
        accepted = self.metrics.events_accepted
        self._put = self.buffer.defer
        try:
            return self._answer_post(path, headers, peer, body, origin)
        finally:
            self._put = self.buffer.put
            stored = self.metrics.events_accepted - accepted
            if stored:
                self.deferred_requests += 1
                self._deferred_events += stored

    def _answer_post(
        self,
        path: str,
        headers: dict[bytes, bytes],
        peer: tuple[str, int] | None,
        body: bytes,
        origin: str | None,
    ) -> Answer | None:
        try:
            ip = self._admit(headers, peer)
            try:
                return self._answer(path, ip, headers, body, origin)
            except _SiteMiss:
                self.limiter.refund(ip)  # the ASGI handler admits this request again
                return None
        except Rejection as r:
            self.metrics.reject(r.code, r.events)
            return rejected(r, origin)

    def flush_deferred(self) -> Rejection | None:
        """Store the records the fast path deferred since the last call: None when they
        are stored, else the 503 every request that waited on them must answer instead
        (its counts move from accepted to rejected)."""
        requests, events = self.deferred_requests, self._deferred_events
        self.deferred_requests = self._deferred_events = 0
        try:
            self.buffer.flush()
        except BufferFull as full:
            self.metrics.events_accepted -= events
            self.metrics.requests["accepted"] -= requests
            self.metrics.requests["rejected"] += requests
            self.metrics.events_rejected["overloaded"] += events
            return Rejection(503, "overloaded", str(full), None, full.retry_after)
        return None

    @staticmethod
    def rejected(r: Rejection, origin: str | None) -> Answer:
        """The answer to a request refused with `r` (CORS headers for `origin`)."""
        return rejected(r, origin)

    def _admit(self, headers: dict[bytes, bytes], peer: tuple[str, int] | None) -> str:
        """Checks before the body is read: its declared size and the client's rate; returns
        the client's address."""
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise Rejection(413, "body_too_large", f"request body exceeds {self.max_body} bytes")
        xff = headers.get(b"x-forwarded-for")
        ip = peer[0] if peer else ""
        if xff is not None:
            ip = client_ip(ip, xff.decode("latin-1"), self.trusted)
        if self.limiter.enabled:
            wait = self.limiter.allow(ip)
            if wait:
                raise Rejection(
                    429, "rate_limited", "too many requests from this address", None,
                    int(wait) + 1,
                )  # fmt: skip
        return ip

    def _answer(
        self, path: str, ip: str, headers: dict[bytes, bytes], body: bytes, origin: str | None
    ) -> Answer:
        if len(body) > self.max_body:
            raise Rejection(413, "body_too_large", f"request body exceeds {self.max_body} bytes")
        accepted = self._accept(ip, headers, body, origin)
        self.metrics.requests["accepted"] += 1
        if path.rstrip("/").endswith("/batch"):
            answer = b'{"success":true,"queued":%d}' % accepted
            return build_answer(200, answer, origin, ((b"content-type", b"application/json"),))
        if origin is None:
            return NO_CONTENT
        return build_answer(204, b"", origin, ())

    def _accept(self, ip: str, headers: dict[bytes, bytes], body: bytes, origin: str | None) -> int:
        """Validate, check the sites, buffer one record per site; returns the event count."""
        events, top_site = decode(body)
        try:
            return self._accept_events(ip, headers, events, top_site, body, origin)
        except Rejection as r:
            r.events = len(events) or 1  # nothing in a refused request is stored
            raise

    def _accept_events(
        self,
        ip: str,
        headers: dict[bytes, bytes],
        events: list[CollectedEvent],
        top_site: str | None,
        body: bytes,
        origin: str | None,
    ) -> int:
        count = len(events)
        if not count:
            raise Rejection(400, "invalid_event", "no events in request", "events")
        if count > self.max_events:
            raise Rejection(
                400, "too_many_events", f"at most {self.max_events} events per request", "events"
            )
        first = events[0].site_id or top_site
        if not first:
            raise Rejection(400, "missing_site", "siteId is required", at(0, count, "siteId"))
        mixed = False
        clean = plain(body)
        for i, event in enumerate(events):
            site_id = event.site_id or top_site
            if site_id != first:
                if not site_id:
                    raise Rejection(
                        400, "missing_site", "siteId is required", at(i, count, "siteId")
                    )
                mixed = True
            if event.event_type not in SEED_EVENT_TYPES and not valid_event_type(event.event_type):
                raise Rejection(
                    400,
                    "invalid_event",
                    f"eventType may hold only the characters {EVENT_TYPE_CHARS}",
                    at(i, count, "eventType"),
                )
            if event.properties:
                raw = bytes(event.properties)
                # The common case: an object in ASCII without escapes (`clean` checks the
                # whole body at once); anything else is looked at closely.
                if raw[0] != 0x7B or not (clean or plain(raw)):
                    check_properties(event, raw, i, count)
                elif len(raw) < 8 and not raw[1:-1].strip():  # "{ }" is none, as "{}" is
                    event.properties = NO_PROPERTIES
        groups: dict[str, list[CollectedEvent]] = {first: events}
        if mixed:
            groups = {}
            for event in events:
                groups.setdefault(event.site_id or top_site or "", []).append(event)
        known = self.sites.get
        sites: list[SiteInfo] = []
        for site_id in groups:
            site = known(site_id)
            if site is None:
                raise _SiteMiss(site_id, _site_field(events, site_id, count))
            if not self._origin_ok(site, origin):
                raise Rejection(
                    403,
                    "origin_not_allowed",
                    f"origin {origin} may not send to this site",
                    "origin",
                )
            sites.append(site)
        ua_b = headers.get(b"user-agent")
        ua = ua_b.decode("utf-8", "replace")[:512] if ua_b else ""
        dnt = headers.get(b"dnt") == b"1" or headers.get(b"sec-gpc") == b"1"
        now = self.clock()
        salt = self._salt(now)
        prefix = self._prefix(ip)
        # A request for several sites is one record per site, buffered in one `put` (one
        # append, one queue entry): a full buffer refuses all of it or none.
        records = bytearray() if len(sites) > 1 else None
        stored = 0
        for site in sites:
            site_events = groups[site.public_id]
            if dnt and site.respect_dnt:
                self.metrics.events_dropped["dnt"] += len(site_events)
                continue
            envelope = CollectedEnvelope(
                int(now * 1000),
                site.public_id,
                self._visitor(salt, site.public_id, ip, ua),
                prefix,
                ua,
                site_events,
            )
            # One buffer, reused: the record is copied into the spool by `put`.
            record = encode_envelope_into(envelope, self._record)
            if records is None:
                self._put_record(record)
            else:
                records += record
            stored += len(site_events)
        if records:
            self._put_record(records)
        self.metrics.events_accepted += stored
        return count

    def _put_record(self, record: bytes | bytearray) -> None:
        try:
            self._put(record)
        except BufferFull as full:
            raise Rejection(503, "overloaded", str(full), None, full.retry_after) from None


def _site_field(events: list[CollectedEvent], site_id: str, count: int) -> str:
    """Where a request named `site_id`: the first event that carries it, else the top level."""
    for i, event in enumerate(events):
        if event.site_id == site_id:
            return at(i, count, "siteId")
    return "siteId"


async def _read_body(first: Message, receive: Receive, limit: int) -> bytes:
    """The whole body of a request whose first message is `first`, at most `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    message = first
    while True:
        if message["type"] == "http.disconnect":
            raise Rejection(400, "client_disconnected", "client went away", None)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Rejection(413, "body_too_large", f"request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


async def _send(send: Send, answer: Answer) -> None:
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    await send({"type": "http.response.body", "body": answer.body})
