"""The JSON envelope every API answer uses, and the error handlers that produce it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from cadlink.query.spec import QueryError
from cadlink.store.events.base import ReportTooLarge
from cadlink.store.events.remote import StoreUnavailable


def ok(data: Any, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"success": True, "data": data, "meta": meta or {}}


class ApiError(Exception):
    """A 4xx answer with a machine-readable code and the field at fault."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, "details": details or {}}}


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), exc.status, headers=headers
        )

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc)
        message = f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg"))
        return JSONResponse(
            error_body("invalid_request", message, {"field": field, "errors": _plain(exc)}), 400
        )

    async def query_error(_: Request, exc: Exception) -> JSONResponse:
        # A report request that cannot be answered as asked: 400 naming the parameter.
        assert isinstance(exc, QueryError)
        return JSONResponse(error_body("invalid_request", str(exc), {"field": exc.field}), 400)

    async def store_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The store process is starting or restarting: the collect endpoint still accepts.
        return JSONResponse(
            error_body("store_unavailable", str(exc)), 503, headers={"Retry-After": "5"}
        )

    async def report_too_large(_: Request, exc: Exception) -> JSONResponse:
        # Out of the event store's memory: other reports may hold it now, so it may pass later.
        return JSONResponse(
            error_body("report_too_large", str(exc)), 503, headers={"Retry-After": "10"}
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ReportTooLarge, report_too_large)
    app.add_exception_handler(StoreUnavailable, store_unavailable)
    app.add_exception_handler(QueryError, query_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _plain(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": e.get("type")}
        for e in exc.errors()
    ]
