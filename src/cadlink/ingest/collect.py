"""`POST /api/v1/collect` and `/api/v1/collect/batch`: a raw ASGI handler.

Decode with msgspec, validate, apply the cheap drops, put one envelope per site in the
durable buffer, answer. No database, no enrichment: both happen in the loader. The client's
address is used here for two derived values (the daily visitor hash and a truncated network
prefix for geo) and never leaves this function.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec

from cadlink.config import Settings
from cadlink.events import Envelope, IncomingBatch, IncomingEvent
from cadlink.ingest.buffer import BufferFull, BufferWriter
from cadlink.ingest.client_ip import client_ip
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


_batch_decoder = msgspec.json.Decoder(IncomingBatch)
_NOT_A_BATCH = "Object missing required field `events`"  # a single event, not {"events": …}
_event_decoder = msgspec.json.Decoder(IncomingEvent)
_envelope_encoder = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()
_FIELD_RE = re.compile(r"at `\$\.?(.*)`$")
_CAMEL_RE = re.compile(r"_([a-z])")


class Rejection(Exception):
    """A request refused with a 4xx/5xx answer naming the problem (and the field, if any)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.retry_after = retry_after


def _field_of(error: msgspec.ValidationError) -> str | None:
    match = _FIELD_RE.search(str(error))
    return match.group(1) if match else None


class CollectHandler:
    """ASGI app for the collect endpoints. `batch_response` selects the /batch answer."""

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
        # Per-request work that repeats (same origin, address, visitor) is memoised: these
        # caches live only in this process's memory and are bounded.
        self._prefix = lru_cache(maxsize=65_536)(ip_prefix)
        self._visitor = lru_cache(maxsize=16_384)(anonymous_visitor_id)
        self._salt_until = 0.0  # when today's salt (UTC) stops being today's
        self._salt_version = -1
        self._salt_value = b""

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
        origin = origin_b.decode("latin-1") if origin_b else None
        batch_response = scope["path"].rstrip("/").endswith("/batch")
        method = scope["method"]
        if method == "OPTIONS":
            await self._preflight(send, origin, headers)
            return
        if method != "POST":
            await _error(send, 405, "method_not_allowed", "use POST", None, origin, ())
            return
        try:
            accepted = await self._accept(scope, receive, headers, origin)
        except Rejection as r:
            self.metrics.reject(r.code)
            extra: tuple[tuple[bytes, bytes], ...] = ()
            if r.retry_after is not None:
                extra = ((b"retry-after", str(r.retry_after).encode()),)
            await _error(send, r.status, r.code, r.message, r.field, origin, extra)
            return
        self.metrics.requests["accepted"] += 1
        if batch_response:
            body = b'{"success":true,"queued":%d}' % accepted
            await _respond(send, 200, body, origin, ((b"content-type", b"application/json"),))
        else:
            await _respond(send, 204, b"", origin, ())

    async def _accept(
        self, scope: Scope, receive: Receive, headers: dict[bytes, bytes], origin: str | None
    ) -> int:
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise Rejection(413, "body_too_large", f"request body exceeds {self.max_body} bytes")
        peer = scope.get("client")
        xff = headers.get(b"x-forwarded-for")
        ip = client_ip(
            peer[0] if peer else None, xff.decode("latin-1") if xff else None, self.trusted
        )
        wait = self.limiter.allow(ip)
        if wait:
            raise Rejection(
                429, "rate_limited", "too many requests from this address", None, int(wait) + 1
            )
        body = await _read_body(receive, self.max_body)
        events, top_site = self._decode(body)
        if not events:
            raise Rejection(400, "invalid_event", "no events in request", "events")
        if len(events) > self.max_events:
            raise Rejection(
                400, "too_many_events", f"at most {self.max_events} events per request", "events"
            )
        by_site: dict[str, list[IncomingEvent]] = {}
        for i, event in enumerate(events):
            site_id = event.site_id or top_site
            if not site_id:
                raise Rejection(
                    400, "missing_site", "siteId is required", _at(i, len(events), "siteId")
                )
            group = by_site.get(site_id)
            if group is None:
                by_site[site_id] = [event]
            else:
                group.append(event)
        sites: list[SiteInfo] = []
        for site_id in by_site:
            # The in-memory map answers almost always; only a miss may await a refresh.
            site = self.sites.get(site_id) or await self.sites.lookup(site_id)
            if site is None:
                raise Rejection(400, "unknown_site", f"no site with id {site_id!r}", "siteId")
            if not self._origin_ok(site, origin):
                raise Rejection(
                    403,
                    "origin_not_allowed",
                    f"origin {origin} may not send to this site",
                    "origin",
                )
            sites.append(site)
        ua_b = headers.get(b"user-agent", b"")
        ua = ua_b.decode("utf-8", "replace")[:512]
        dnt = headers.get(b"dnt") == b"1" or headers.get(b"sec-gpc") == b"1"
        now = self.clock()
        received_ms = int(now * 1000)
        salt = self._salt(now)
        prefix = self._prefix(ip)
        stored = 0
        envelopes: list[tuple[bytes, int]] = []
        for site in sites:
            site_events = by_site[site.public_id]
            if dnt and site.respect_dnt:
                self.metrics.events_dropped["dnt"] += len(site_events)
                continue
            envelope = Envelope(
                received_ms=received_ms,
                site_id=site.public_id,
                anon_visitor=self._visitor(salt, site.public_id, ip, ua),
                ip_prefix=prefix,
                user_agent=ua,
                events=site_events,
            )
            envelopes.append((_envelope_encoder.encode(envelope), len(site_events)))
        try:
            for payload, n in envelopes:
                self.buffer.put(payload, n)
                stored += n
        except BufferFull as full:
            raise Rejection(503, "overloaded", str(full), None, full.retry_after) from None
        self.metrics.events_accepted += stored
        return len(events)

    def _decode(self, body: bytes) -> tuple[list[IncomingEvent], str | None]:
        if not body.strip():
            raise Rejection(400, "empty_body", "request body is empty", None)
        try:
            # The batch form first (the tracker always sends it): one pass over the body.
            try:
                batch = _batch_decoder.decode(body)
            except msgspec.ValidationError as e:
                if str(e) != _NOT_A_BATCH:
                    raise
                return [_event_decoder.decode(body)], None
            return batch.events, batch.site_id
        except msgspec.ValidationError as e:
            field = _field_of(e)
            raise Rejection(400, "invalid_event", str(e), field) from None
        except msgspec.DecodeError as e:
            raise Rejection(400, "invalid_json", f"body is not valid JSON: {e}", None) from None

    async def _preflight(self, send: Send, origin: str | None, headers: dict[bytes, bytes]) -> None:
        # The body (and so the site) is unknown at preflight; the POST itself is checked.
        extra = (
            (b"access-control-allow-methods", b"POST, OPTIONS"),
            (
                b"access-control-allow-headers",
                headers.get(b"access-control-request-headers", b"content-type"),
            ),
            (b"access-control-max-age", b"86400"),
        )
        await _respond(send, 204, b"", origin, extra)


def _at(index: int, total: int, name: str) -> str:
    return f"events[{index}].{name}" if total > 1 else name


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Rejection(400, "client_disconnected", "client went away", None)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Rejection(413, "body_too_large", f"request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _cors(origin: str | None) -> list[tuple[bytes, bytes]]:
    if origin is None:
        return []
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"vary", b"Origin"),
    ]


async def _respond(
    send: Send, status: int, body: bytes, origin: str | None, extra: tuple[tuple[bytes, bytes], ...]
) -> None:
    headers = _cors(origin)
    headers.extend(extra)
    if status != 204:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(
    send: Send,
    status: int,
    code: str,
    message: str,
    field: str | None,
    origin: str | None,
    extra: tuple[tuple[bytes, bytes], ...],
) -> None:
    details: dict[str, str] = {"field": _camel(field)} if field else {}
    body = _json.encode(
        {"success": False, "error": {"code": code, "message": message, "details": details}}
    )
    headers = (
        (b"content-type", b"application/json"),
        (b"x-cadlink-rejected", code.encode()),
        *extra,
    )
    await _respond(send, status, body, origin, headers)


def _camel(field: str) -> str:
    return _CAMEL_RE.sub(lambda m: m.group(1).upper(), field)
