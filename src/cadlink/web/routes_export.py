"""`GET /api/v1/analytics/export`: raw events, sessions or a report as CSV, NDJSON or Parquet."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response, StreamingResponse

from cadlink.query import export, service
from cadlink.query.reports import overview
from cadlink.query.spec import QueryError, ReportSpec
from cadlink.services import Services
from cadlink.web.deps import Principal, allow_analysts, services
from cadlink.web.responses import ApiError
from cadlink.web.routes_reports import END, FILTERS, SITE, START, report_spec

router = APIRouter(prefix="/api/v1/analytics", tags=["export"])

RAW = ("events", "sessions")
REPORTS = ("summary", "timeseries", "breakdown")


def _report_rows(
    svc: Services, spec: ReportSpec, report: str, dimension: str
) -> list[dict[str, Any]]:
    plan = service.plan_for(svc.events, spec)
    if report == "summary":
        return [overview.summary(plan, svc.events, spec.period)]
    if report == "timeseries":
        return overview.timeseries(plan, svc.events, spec.period, spec.granularity)
    return overview.breakdown(plan, svc.events, dimension, spec.limit)


@router.get("/export", response_class=Response)
async def export_data(
    site_id: str = SITE,
    start_date: str | None = START,
    end_date: str | None = END,
    filters: str | None = FILTERS,
    fmt: str = Query("csv", alias="format", description="csv, json (NDJSON) or parquet"),
    report: str = Query("events", description="events, sessions, summary, timeseries or breakdown"),
    dimension: str = Query("page", description="for report=breakdown"),
    limit: int = Query(1000, ge=1, le=100_000, description="rows, for report=breakdown"),
    _: Principal = Depends(allow_analysts),
    svc: Services = Depends(services),
) -> Response:
    """Download what the dashboard shows, or the raw rows behind it (streamed)."""
    out = export.parse_format(fmt)
    if report not in RAW + REPORTS:
        raise QueryError(f"report must be one of {', '.join(RAW + REPORTS)}", "report")
    spec = await report_spec(svc, site_id, start_date, end_date, filters, None, limit)
    name = f"cadlink-{report}-{spec.period.start}-{spec.period.end}.{out.extension}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if report in RAW:
        if spec.filters:
            raise ApiError(
                400, "invalid_request", "raw exports take no filters", {"field": "filters"}
            )
        lo, hi = spec.period.bounds()
        schema, batches = await asyncio.to_thread(svc.events.stream, report, spec.site_id, lo, hi)

        def body() -> Iterator[bytes]:
            yield from export.encode_batches(batches, out, schema)

        return StreamingResponse(body(), media_type=out.media_type, headers=headers)
    rows = await asyncio.to_thread(_report_rows, svc, spec, report, dimension)
    data = await asyncio.to_thread(export.encode_rows, rows, out)
    return Response(data, media_type=out.media_type, headers=headers)
