"""Analytics read routes (ADMIN and ANALYST)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query

from cadlink.query import params
from cadlink.services import Services
from cadlink.web.deps import Principal, allow_analysts, services
from cadlink.web.responses import ApiError, ok
from cadlink.web.routes_reports import site_of
from cadlink.web.serializers import decode_cursor, encode_cursor, event_json, session_json

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])


@router.get("/events")
async def events(
    site_id: str = Query(alias="siteId", min_length=1, max_length=64),
    start_date: str | None = Query(None, alias="startDate"),
    end_date: str | None = Query(None, alias="endDate"),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=512),
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Stored, enriched events of a site in time order, a page at a time."""
    site = await site_of(svc, site_id)
    period = params.period(start_date, end_date, site.timezone, max_days=None)
    lo, hi = period.bounds()
    after = None
    if cursor:
        try:
            after = decode_cursor(cursor)
        except ValueError as e:
            raise ApiError(400, "invalid_request", str(e), {"field": "cursor"}) from None
    page = await asyncio.to_thread(svc.events.list_events, site.public_id, lo, hi, limit, after)
    next_cursor = encode_cursor(*page.next_cursor) if page.next_cursor else None
    return ok(
        [event_json(r) for r in page.rows],
        {
            "nextCursor": next_cursor,
            "startDate": period.start.isoformat(),
            "endDate": period.end.isoformat(),
            "timezone": period.timezone,
        },
    )


@router.get("/sessions")
async def sessions(
    site_id: str = Query(alias="siteId", min_length=1, max_length=64),
    start_date: str | None = Query(None, alias="startDate"),
    end_date: str | None = Query(None, alias="endDate"),
    limit: int = Query(100, ge=1, le=1000),
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Sessions that started in the range, oldest first."""
    site = await site_of(svc, site_id)
    period = params.period(start_date, end_date, site.timezone, max_days=None)
    lo, hi = period.bounds()
    rows = await asyncio.to_thread(svc.events.list_sessions, site.public_id, lo, hi, limit)
    return ok(
        [session_json(r) for r in rows],
        {"startDate": period.start.isoformat(), "endDate": period.end.isoformat()},
    )


@router.get("/dropped")
async def dropped(
    site_id: str = Query(alias="siteId", min_length=1, max_length=64),
    start_date: str | None = Query(None, alias="startDate"),
    end_date: str | None = Query(None, alias="endDate"),
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Events refused by the loader (bots and the like) per day and reason. The loader counts
    them per UTC day (it knows no site's zone): the answer has every UTC day that overlaps
    the site's days asked for."""
    site = await site_of(svc, site_id)
    period = params.period(start_date, end_date, site.timezone, max_days=None)
    lo, hi = period.bounds()
    first, last = lo.date(), (hi - timedelta(microseconds=1)).date()
    rows = await asyncio.to_thread(svc.events.dropped, site.public_id, first, last)
    return ok(
        [{"day": r["day"].isoformat(), "reason": r["reason"], "count": r["count"]} for r in rows],
        {"days": "UTC", "startDate": first.isoformat(), "endDate": last.isoformat()},
    )
