"""The collect endpoint's answers: what it writes for an accepted or refused request, with the
CORS headers of the request's origin. Built once per request, sent by the ASGI handler
(ingest/collect.py) or written straight to the connection (web/collect_protocol.py)."""

from __future__ import annotations

import re
from typing import NamedTuple

import msgspec

_json = msgspec.json.Encoder()
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
        # The events refused with it: set once the body is decoded; a request refused before
        # (not JSON, too large, rate limited) counts as one.
        self.events = 1


class Answer(NamedTuple):
    """A collect response as the server writes it: status, headers (content-length included
    when there is a body), body. The ASGI handler sends it as two messages; `cadlink serve`'s
    HTTP protocol writes it straight to the connection (web/collect_protocol.py)."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


NO_CONTENT = Answer(204, (), b"")  # the common answer: an event from a page without CORS


def build_answer(
    status: int, body: bytes, origin: str | None, extra: tuple[tuple[bytes, bytes], ...]
) -> Answer:
    headers: list[tuple[bytes, bytes]] = []
    if origin is not None:
        headers += (
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"vary", b"Origin"),
        )
    headers.extend(extra)
    if status != 204:
        headers.append((b"content-length", str(len(body)).encode()))
    return Answer(status, tuple(headers), body)


def rejected(r: Rejection, origin: str | None) -> Answer:
    details: dict[str, str] = {"field": _camel(r.field)} if r.field else {}
    body = _json.encode(
        {"success": False, "error": {"code": r.code, "message": r.message, "details": details}}
    )
    headers: tuple[tuple[bytes, bytes], ...] = (
        (b"content-type", b"application/json"),
        (b"x-cadlink-rejected", r.code.encode()),
    )
    if r.retry_after is not None:
        headers += ((b"retry-after", str(r.retry_after).encode()),)
    return build_answer(r.status, body, origin, headers)


def preflight(origin: str | None, headers: dict[bytes, bytes]) -> Answer:
    # The body (and so the site) is unknown at preflight; the POST itself is checked.
    extra = (
        (b"access-control-allow-methods", b"POST, OPTIONS"),
        (
            b"access-control-allow-headers",
            headers.get(b"access-control-request-headers", b"content-type"),
        ),
        (b"access-control-max-age", b"86400"),
    )
    return build_answer(204, b"", origin, extra)


def _camel(field: str) -> str:
    return _CAMEL_RE.sub(lambda m: m.group(1).upper(), field)
