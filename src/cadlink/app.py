"""`create_app(settings)`: the one place the server is wired together.

The collect endpoints are a raw ASGI handler in front of FastAPI: at thousands of requests a
second, FastAPI's request-model machinery costs more than the whole of ingest. Everything else
is FastAPI.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from cadlink import __version__
from cadlink.config import Settings
from cadlink.ingest.collect import CollectHandler, Receive, Scope, Send
from cadlink.services import Services
from cadlink.web import (
    metrics,
    routes_analytics,
    routes_auth,
    routes_crm,
    routes_dashboard,
    routes_export,
    routes_health,
    routes_live,
    routes_reports,
    routes_reports_behaviour,
    routes_reports_more,
    routes_sites,
    routes_static,
)
from cadlink.web.collect_openapi import COLLECT_PATHS
from cadlink.web.responses import install_error_handlers

COLLECT_PREFIX = "/api/v1/collect"
# The collect endpoints' paths (a trailing slash allowed); any other path is FastAPI's (404).
COLLECT_ROUTES = frozenset(
    {COLLECT_PREFIX, COLLECT_PREFIX + "/", COLLECT_PREFIX + "/batch", COLLECT_PREFIX + "/batch/"}
)


class CadlinkApp:
    """Routes collect requests to the raw handler and everything else to FastAPI."""

    def __init__(self, api: FastAPI, collect: CollectHandler, http: metrics.HttpCounters) -> None:
        self.api = api
        self.collect = collect
        self.http = http
        self.services: Services = api.state.services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in COLLECT_ROUTES:
            await self.collect(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        group = _route_group(scope["path"])

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.http.requests[(group, f"{message['status'] // 100}xx")] += 1
            await send(message)

        await self.api(scope, receive, counting_send)  # type: ignore[arg-type]


def _route_group(path: str) -> str:
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"] and len(parts) > 2:
        return "/api/v1/" + parts[2]
    return "/" + parts[0] if parts[0] in ("api", "metrics", "t.js") else "/other"


def create_app(settings: Settings, services: Services | None = None) -> CadlinkApp:
    """Build the whole server from settings; starts its background work on ASGI lifespan."""
    svc = services or Services.build(settings)
    http = metrics.HttpCounters()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        svc.started_at = time.time()
        await svc.start()
        try:
            yield
        finally:
            await api.state.live.close()
            await svc.stop()

    api = FastAPI(
        title="CADLINK Analytics",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # FastAPI traces, measures and logs every request through OpenTelemetry's global
        # providers by default; with a provider installed by anything else in the process, or
        # FASTAPI_OTEL_AUTO_CONFIGURE=true, the dashboard API's paths and query strings (site
        # ids, filters) would be exported to wherever it points. Nothing leaves the server
        # unless its operator says so: /metrics is ours.
        telemetry={
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        },
    )
    api.state.services = svc
    api.state.metrics_registry = metrics.make_registry(svc, http)
    install_error_handlers(api)
    for module in (
        routes_health,
        routes_auth,
        routes_sites,
        routes_analytics,
        routes_reports,
        routes_reports_behaviour,
        routes_reports_more,
        routes_export,
        routes_crm,
        routes_static,
    ):
        api.include_router(module.router)
    api.include_router(metrics.router)
    routes_live.attach(api, svc)  # realtime push, fed by the loader
    api.include_router(routes_dashboard.router)  # last: the SPA's page routes

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(title=api.title, version=api.version, routes=api.routes)
            schema["paths"].update(COLLECT_PATHS)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    svc.started_at = time.time()
    collect = CollectHandler(settings, svc.sites, svc.salts, svc.writer, svc.ingest_metrics)
    return CadlinkApp(api, collect, http)
