"""`GET /api/v1/analytics/live?siteId=`: the realtime report pushed as Server-Sent Events.

`EventSource` cannot send headers, so besides `Authorization: Bearer …` the access token may
come as `token=` in the query; it is checked the same way (signature, expiry, role ADMIN or
ANALYST). The stream ends when that token expires (the browser then refreshes and reconnects)
and after `MAX_STREAM_SECONDS` in any case.

Events: `realtime` with the JSON of `GET /api/v1/analytics/realtime` (`activeUsers`,
`pageViewsLastMinute`, `clicksLastMinute`, `conversionRate`, `visitors`) plus `now` (ms);
`problem` with `{"error": …}` when a computation failed; a comment every
`KEEPALIVE_SECONDS` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.responses import StreamingResponse

from cadlink.auth.errors import InvalidToken
from cadlink.auth.tokens import AccessClaims, decode_access_token
from cadlink.query.reports import realtime
from cadlink.services import Services
from cadlink.web.deps import ANALYSTS, services
from cadlink.web.live import LiveHub
from cadlink.web.responses import ApiError

router = APIRouter(prefix="/api/v1/analytics", tags=["reports"])

KEEPALIVE_SECONDS = 15.0
MAX_STREAM_SECONDS = 15 * 60.0


def make_hub(svc: Services, min_interval: float = 0.5, refresh_interval: float = 10.0) -> LiveHub:
    """A hub computing `realtime.realtime` for a site in a worker thread."""
    zones: dict[str, str] = {}

    async def compute(site_id: str) -> dict[str, Any]:
        if site_id not in zones:
            site = await asyncio.to_thread(svc.meta.get_site, site_id)
            zones[site_id] = site.timezone if site is not None else "UTC"
        now = datetime.now(UTC)
        data = await asyncio.to_thread(realtime.realtime, svc.events, site_id, zones[site_id], now)
        return {**data, "now": int(now.timestamp() * 1000)}

    return LiveHub(compute, min_interval=min_interval, refresh_interval=refresh_interval)


def attach(api: FastAPI, svc: Services) -> LiveHub:
    """Create the hub, keep it on `api.state.live`, feed it from the loader, add the route.

    The loader's `on_loaded(stored)` callback does not say which sites were loaded, so every
    watched site is recomputed (one query per watched site per ≥ 0.5 s, whatever the traffic).
    """
    hub = make_hub(svc)
    api.state.live = hub
    previous = svc.loader.on_loaded

    def on_loaded(stored: int) -> None:
        if previous is not None:
            previous(stored)
        hub.notify_all()

    svc.loader.on_loaded = on_loaded
    api.include_router(router)
    return hub


def _claims(request: Request, token: str | None, svc: Services) -> AccessClaims:
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    raw = bearer.strip() if scheme.lower() == "bearer" and bearer.strip() else token
    if not raw:
        raise ApiError(401, "unauthorized", "a bearer access token (or token=) is required")
    try:
        claims = decode_access_token(raw, svc.settings.secret_key)
    except InvalidToken as e:
        raise ApiError(401, "invalid_token", str(e)) from None
    if claims.role not in ANALYSTS:
        raise ApiError(403, "forbidden", "this needs one of the roles ADMIN, ANALYST")
    return claims


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _stream(hub: LiveHub, site_id: str, deadline: float) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    async with hub.subscribe(site_id) as mailbox:
        while (left := deadline - time.monotonic()) > 0:
            try:
                snapshot = await asyncio.wait_for(mailbox.get(), min(KEEPALIVE_SECONDS, left))
            except TimeoutError:
                # Also how a vanished client is noticed: Starlette cancels the stream when the
                # disconnect arrives or a write fails.
                yield b": keepalive\n\n"
                continue
            yield _event("problem" if "error" in snapshot else "realtime", snapshot)


@router.get("/live", response_class=StreamingResponse)
async def live(
    request: Request,
    site_id: str = Query(alias="siteId", min_length=1, max_length=64),
    token: str | None = Query(
        None, max_length=2048, description="the access token, for EventSource (no headers)"
    ),
    svc: Services = Depends(services),
) -> StreamingResponse:
    """Server-Sent Events: the realtime report within a second of events being stored."""
    claims = _claims(request, token, svc)
    hub: LiveHub | None = getattr(request.app.state, "live", None)
    if hub is None:
        raise ApiError(503, "live_unavailable", "live updates are not enabled on this server")
    site = await asyncio.to_thread(svc.meta.get_site, site_id)
    if site is None:
        raise ApiError(404, "unknown_site", f"no site with id {site_id!r}", {"field": "siteId"})
    token_left = (claims.expires_at - datetime.now(UTC)).total_seconds()
    deadline = time.monotonic() + max(1.0, min(MAX_STREAM_SECONDS, token_left))
    return StreamingResponse(
        _stream(hub, site.public_id, deadline),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"},
    )
