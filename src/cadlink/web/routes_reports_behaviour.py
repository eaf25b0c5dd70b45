"""Behaviour report routes (ADMIN and ANALYST): search, engagement, paths, retention, web
vitals, errors and goals. Thin wrappers over `cadlink.query.reports`; the metric definitions
are in each report module's docstring.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query

from cadlink.query.plan import Executor, Plan
from cadlink.query.reports import engagement, errors, goals, paths, retention, search, vitals
from cadlink.query.service import plan_for
from cadlink.query.spec import ReportSpec
from cadlink.services import Services
from cadlink.web.deps import Principal, allow_analysts, services
from cadlink.web.responses import ok
from cadlink.web.routes_reports import END, FILTERS, LIMIT, SITE, START, meta_of, report_spec

router = APIRouter(prefix="/api/v1/analytics", tags=["reports"])

Report = Callable[[Plan, Executor], dict[str, Any]]


async def _run(svc: Services, spec: ReportSpec, report: Report) -> dict[str, Any]:
    def call() -> dict[str, Any]:
        return report(plan_for(svc.events, spec), svc.events)

    return ok(await asyncio.to_thread(call), meta_of(spec))


@router.get("/search")
async def search_report(
    site_id: str = SITE,
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    limit: int = LIMIT,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Site search: summary, top queries, zero-result queries, filters and sorts used."""
    spec = await report_spec(svc, site_id, start_date, end_date, filters, None, limit)
    return await _run(svc, spec, search.search)


@router.get("/engagement")
async def engagement_report(
    site_id: str = SITE,
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    limit: int = LIMIT,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Scroll depth distribution, time on page, top pages and the most engaging pages."""
    spec = await report_spec(svc, site_id, start_date, end_date, filters, None, limit)
    return await _run(svc, spec, engagement.engagement)


@router.get("/paths")
async def paths_report(
    site_id: str = SITE,
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    page: str | None = Query(
        None, min_length=1, max_length=2048, description="a page path, e.g. /pricing"
    ),
    steps: int = Query(3, ge=1, le=paths.MAX_STEPS, description="page views per journey"),
    limit: int = LIMIT,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Next and previous pages of `page` (when given) and the commonest session journeys."""
    spec = await report_spec(svc, site_id, start_date, end_date, filters, None, limit)
    return await _run(svc, spec, lambda p, db: paths.paths(p, db, page, steps))


@router.get("/retention")
async def retention_report(
    site_id: str = SITE,
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    weeks: int = Query(8, ge=0, le=retention.MAX_WEEKS, description="weeks after the cohort"),
    identified: bool = Query(False, description="only identified users, keyed by user id"),
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Weekly retention cohorts (weeks start on Monday in the site's time zone)."""
    spec = await report_spec(svc, site_id, start_date, end_date, filters)
    return await _run(svc, spec, lambda p, db: retention.retention(p, db, weeks, identified))


@router.get("/vitals")
async def vitals_report(
    site_id: str = SITE,
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    limit: int = LIMIT,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Web vitals p75 (TTFB, FCP, LCP, CLS, INP) over the site and per page, with counts."""
    spec = await report_spec(svc, site_id, start_date, end_date, filters, None, limit)
    return await _run(svc, spec, vitals.vitals)


@router.get("/errors")
async def errors_report(
    site_id: str = SITE,
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    limit: int = LIMIT,
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """The commonest JavaScript error messages and failing API calls."""
    spec = await report_spec(svc, site_id, start_date, end_date, filters, None, limit)
    return await _run(svc, spec, errors.errors)


@router.get("/goals")
async def goals_report(
    site_id: str = SITE,
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    goals_param: str | None = Query(
        None,
        alias="goals",
        max_length=2048,
        description="extra goal event types, comma-separated (the conversion types are always in)",
    ),
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Completions, converting visitors, conversion rate and revenue per goal."""
    spec = await report_spec(svc, site_id, start_date, end_date, filters)
    names = goals.parse_goals(goals_param)
    return await _run(svc, spec, lambda p, db: goals.goals(p, db, names))
