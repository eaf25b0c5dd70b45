"""Health checks (public) for load balancers and operators."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, Depends
from starlette.responses import JSONResponse

from cadlink import __version__
from cadlink.services import Services, loads_here
from cadlink.web.deps import services
from cadlink.web.responses import error_body, ok

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/health", tags=["health"])


@router.get("")
async def health(svc: Services = Depends(services)) -> dict[str, Any]:
    return ok(
        {
            "status": "ok",
            "version": __version__,
            "uptimeSeconds": round(time.time() - svc.started_at, 1),
        }
    )


@router.get("/db", response_model=None)
async def health_db(svc: Services = Depends(services)) -> dict[str, Any] | JSONResponse:
    try:
        meta = await asyncio.to_thread(svc.meta.ping)
        events = await asyncio.to_thread(svc.events.ping)
    except Exception:  # report, don't crash: this is what the endpoint is for
        # The probe is public: the driver's message (paths, hosts, SQL) goes to the log only.
        log.exception("health check: a database did not answer")
        return JSONResponse(
            error_body("database_unavailable", "a database did not answer; see the server log"),
            503,
        )
    return ok({"status": "ok", "metadata": meta, "events": events})


@router.get("/queue", response_model=None)
async def health_queue(svc: Services = Depends(services)) -> dict[str, Any] | JSONResponse:
    if svc.settings.queue_url:
        error = getattr(svc.writer, "error", "")
        if error:  # the writer looks at the stream twice a second
            log.warning("health check: the event queue did not answer: %s", error)
            return JSONResponse(
                error_body(
                    "queue_unavailable", "the event queue did not answer; see the server log"
                ),
                503,
            )
        return ok(_redis_queue(svc))
    stats = svc.loader.stats
    lag = 0.0
    if svc.backlog.bytes and stats.last_event_received_ms:
        lag = max(0.0, time.time() - stats.last_event_received_ms / 1000)
    return ok(
        {
            "status": "ok" if stats.errors == 0 or svc.backlog.bytes == 0 else "degraded",
            "kind": "spool",
            "backlogBytes": svc.backlog.bytes,
            "maxBacklogBytes": svc.settings.spool_max_bytes,
            "loaderLagSeconds": round(lag, 3),
            "eventsStored": stats.events_stored,
            "eventsDropped": stats.events_dropped,
            "loaderErrors": stats.errors,
        }
    )


def _redis_queue(svc: Services) -> dict[str, Any]:
    """The shared queue as this server sees it (its loaders may be `cadlink worker`s
    elsewhere, whose numbers are in their own logs)."""
    entries = svc.writer.depth().get("envelopes", 0)
    stats = svc.loader.stats
    return {
        "status": "ok",
        "kind": "redis",
        "stream": svc.settings.queue_stream,
        "backlogEntries": entries,
        "maxBacklogEntries": svc.settings.queue_max_entries,
        "loadsHere": loads_here(svc.settings),
        "eventsStored": stats.events_stored,
        "eventsDropped": stats.events_dropped,
        "loaderErrors": stats.errors,
    }
