"""Report routes (ADMIN and ANALYST): thin wrappers over `cadlink.query.service`."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Query

from cadlink.query import params, service
from cadlink.query.spec import ReportSpec
from cadlink.services import Services
from cadlink.store.meta import SiteRecord
from cadlink.web.deps import Principal, allow_analysts, services
from cadlink.web.responses import ApiError, ok

router = APIRouter(prefix="/api/v1/analytics", tags=["reports"])

SITE = Query(alias="siteId", min_length=1, max_length=64)
START = Query(None, alias="startDate", description="YYYY-MM-DD in the site's time zone")
END = Query(None, alias="endDate", description="YYYY-MM-DD, inclusive")
LIMIT = Query(10, ge=1, le=100, description="rows per list")
FILTERS = Query(
    None,
    description='JSON: [["source","is","Google"],["prop:variant","is_not",["A"]]]; '
    "ops: is, is_not, contains",
    max_length=8192,
)


async def site_of(svc: Services, site_id: str) -> SiteRecord:
    """The site, or a 404 naming `siteId`."""
    site = await asyncio.to_thread(svc.meta.get_site, site_id)
    if site is None:
        raise ApiError(404, "unknown_site", f"no site with id {site_id!r}", {"field": "siteId"})
    return site


async def report_spec(
    svc: Services,
    site_id: str,
    start: str | None,
    end: str | None,
    filters: str | None = None,
    granularity: str | None = None,
    limit: int = 10,
) -> ReportSpec:
    site = await site_of(svc, site_id)
    return params.spec(site.public_id, site.timezone, start, end, filters, granularity, limit)


def meta_of(spec: ReportSpec) -> dict[str, Any]:
    return {
        "siteId": spec.site_id,
        "startDate": spec.period.start.isoformat(),
        "endDate": spec.period.end.isoformat(),
        "timezone": spec.period.timezone,
        "granularity": spec.granularity.value,
        "filters": [[f.dimension, f.op.value, list(f.values)] for f in spec.filters],
    }


@router.get("/dashboard")
async def dashboard(
    site_id: str = SITE,
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    granularity: str | None = Query(None, description="hour, day, week or month"),
    limit: int = Query(10, ge=1, le=100, description="rows per breakdown"),
    exact: bool = Query(
        False, description="exact breakdown visitors even on very large ranges (slower)"
    ),
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Summary with the previous period, a time series and every breakdown.

    `data.estimated.breakdownVisitors` says whether breakdown visitor counts are estimates
    (HyperLogLog, ~2%), which happens above 250,000 sessions in the range unless `exact=true`.
    """
    spec = await report_spec(svc, site_id, start_date, end_date, filters, granularity, limit)
    if exact:
        spec = replace(spec, options={**spec.options, "exact": "true"})
    data = await asyncio.to_thread(service.dashboard, svc.events, spec)
    return ok(data, meta_of(spec))
