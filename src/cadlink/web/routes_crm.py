"""CRM routes (ADMIN and ANALYST): identified users, their segments and their sessions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from cadlink.query import service
from cadlink.query.reports import crm
from cadlink.services import Services
from cadlink.web.deps import Principal, allow_analysts, services
from cadlink.web.responses import ApiError, ok
from cadlink.web.routes_reports import FILTERS, SITE, report_spec

router = APIRouter(prefix="/api/v1/crm", tags=["crm"])


@router.get("/summary")
async def crm_summary(
    site_id: str = SITE,
    filters: str | None = FILTERS,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Cards (total users, online now, new this week, churn rate), users per day, segments."""
    spec = await report_spec(svc, site_id, None, None, filters)
    plan = service.plan_for(svc.events, spec)
    now = datetime.now(UTC)

    def run() -> dict[str, Any]:
        return {
            **crm.summary(plan, svc.events, now),
            "usersPerDay": crm.users_per_day(plan, svc.events, now),
            "segments": crm.segment_counts(plan, svc.events, now),
        }

    return ok(await asyncio.to_thread(run))


@router.get("/users")
async def crm_users(
    site_id: str = SITE,
    segment: str | None = Query(None, description="new, returning, active, dormant or churned"),
    filters: str | None = FILTERS,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Identified users, most recently seen first."""
    spec = await report_spec(svc, site_id, None, None, filters)
    plan = service.plan_for(svc.events, spec)
    rows = await asyncio.to_thread(
        crm.users, plan, svc.events, datetime.now(UTC), segment, limit, offset
    )
    return ok(rows, {"limit": limit, "offset": offset, "segment": segment})


@router.get("/users/{user_id}")
async def crm_user(
    user_id: str,
    site_id: str = SITE,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """One user: traits from `identify()`, revenue per currency, sessions and the pages viewed
    in each."""
    spec = await report_spec(svc, site_id, None, None)
    plan = service.plan_for(svc.events, spec)
    detail = await asyncio.to_thread(crm.user_detail, plan, svc.events, user_id)
    site = await asyncio.to_thread(svc.meta.get_site, spec.site_id)
    known = None
    if site is not None:
        known = await asyncio.to_thread(svc.meta.get_site_user, site.id, user_id)
    if detail is None and not known:
        raise ApiError(
            404, "unknown_user", f"no user {user_id!r} on this site", {"field": "userId"}
        )
    out = detail or {"userId": user_id, "revenueByCurrency": [], "sessions": []}
    out["traits"] = dict(known.traits) if known else {}
    return ok(out)
