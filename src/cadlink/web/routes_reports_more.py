"""Realtime, funnel, product and experiment reports (ADMIN and ANALYST).

Thin wrappers: parameters → `ReportSpec` (see `routes_reports.report_spec`) → a report
module in `cadlink.query.reports` in a worker thread → `{"success": true, "data": …}`.
A `QueryError` becomes a 400 naming the parameter (see web/responses.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from cadlink.query.reports import experiments, funnel, products, realtime
from cadlink.services import Services
from cadlink.web.deps import Principal, allow_analysts, services
from cadlink.web.responses import ok
from cadlink.web.routes_reports import END, FILTERS, LIMIT, SITE, START, meta_of, report_spec

router = APIRouter(prefix="/api/v1/analytics", tags=["reports"])


@router.get("/realtime")
async def realtime_report(
    site_id: str = SITE,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Active visitors (5 min), page views and clicks in the last minute, today's conversion
    rate and the visitors online now."""
    spec = await report_spec(svc, site_id, None, None)
    now = datetime.now(UTC)
    tz = spec.period.timezone
    data = await asyncio.to_thread(realtime.realtime, svc.events, spec.site_id, tz, now)
    return ok(data, {"siteId": spec.site_id, "timezone": tz, "now": int(now.timestamp() * 1000)})


@router.get("/funnel")
async def funnel_report(
    site_id: str = SITE,
    steps: str | None = Query(
        None,
        max_length=4096,
        description="2-10 comma-separated steps: event_type, event_type@/path (a trailing * "
        "matches a prefix) or event_type[key=value], e.g. "
        "product_view,page_view@/cart,affiliate_click[platform=amazon]",
    ),
    window: str | None = Query(
        None,
        max_length=16,
        description="conversion window: minutes (90) or 30m, 2h, 7d; default 1d",
    ),
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Visitors per ordered step within the window, conversion, drop-off and median times."""
    spec = await report_spec(svc, site_id, start_date, end_date, filters)
    data = await asyncio.to_thread(funnel.report, svc.events, spec, steps, window)
    return ok(data, meta_of(spec))


@router.get("/products/top")
async def products_top(
    site_id: str = SITE,
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    limit: int = LIMIT,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Products by views: unique views, clicks, affiliate clicks, CTR, wishlist, compare,
    revenue."""
    spec = await report_spec(svc, site_id, start_date, end_date, filters, limit=limit)
    return ok(await asyncio.to_thread(products.top, svc.events, spec), meta_of(spec))


@router.get("/products/affiliate")
async def products_affiliate(
    site_id: str = SITE,
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    limit: int = LIMIT,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Affiliate clicks and visitors in total, by platform and by position."""
    spec = await report_spec(svc, site_id, start_date, end_date, filters, limit=limit)
    return ok(await asyncio.to_thread(products.affiliate, svc.events, spec), meta_of(spec))


@router.get("/experiments")
async def experiments_report(
    site_id: str = SITE,
    prop: str | None = Query(
        None, alias="property", max_length=64, description="event property; default variant"
    ),
    exposure: str | None = Query(
        None, max_length=64, description="exposure event type; default page_view"
    ),
    goal: str | None = Query(
        None, max_length=64, description="conversion event type; default any conversion event"
    ),
    control: str | None = Query(
        None, max_length=512, description="control variant; default the first in text order"
    ),
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Exposures, conversions, rate, uplift and a two-proportion z-test per variant."""
    spec = await report_spec(svc, site_id, start_date, end_date, filters)
    data = await asyncio.to_thread(
        experiments.report, svc.events, spec, prop, exposure, goal, control
    )
    return ok(data, meta_of(spec))
