"""The tracker script and the start page."""

from __future__ import annotations

import gzip
import hashlib
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import Response

router = APIRouter(tags=["static"])


@cache
def _asset(name: str) -> tuple[bytes, bytes, str] | None:
    """(raw, gzipped, etag); compressed once, since the tracker is fetched by every page."""
    try:
        data = resources.files("cadlink.web").joinpath("static", name).read_bytes()
    except (FileNotFoundError, OSError):
        return None
    return data, gzip.compress(data, 9, mtime=0), '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


@router.get("/t.js", response_class=Response)
async def tracker(request: Request) -> Response:
    """The tracker: long-cached, ETag-validated, loadable from any site (CORS)."""
    asset = _asset("t.js")
    if asset is None:
        return Response(
            "// tracker not built: run `make build`\n",
            503,
            media_type="application/javascript",
        )
    data, zipped, etag = asset
    headers = {
        "ETag": etag,
        "Vary": "Accept-Encoding",
        "Cache-Control": "public, max-age=86400, stale-while-revalidate=604800",
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        data = zipped
    return Response(data, media_type="application/javascript; charset=utf-8", headers=headers)
