"""The dashboard: its single-page app at `/` (and its page paths) and its hashed assets.

`npm run build:dashboard` writes `static/app/index.html` and `static/app/assets/*-HASH.js|css`.
Asset names change with their content, so they are cached for a year (`immutable`); the page
itself is revalidated on every load so a new build shows at once. Responses are gzipped in
memory once per asset when the browser accepts it.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from cadlink.web.responses import ApiError

router = APIRouter(tags=["dashboard"])

# Client-side routes: each serves the same page, which reads the path and query string.
PAGES = (
    "/",
    "/login",
    "/realtime",
    "/funnels",
    "/products",
    "/behaviour",
    "/crm",
    "/exports",
    "/settings",
)
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".map": "application/json",
}
_COMPRESSIBLE = (".js", ".css", ".svg", ".map", ".html")
# The app makes no third-party requests; inline styles are used by the chart library.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
_NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>CADLINK Analytics</title></head><body style="font:16px system-ui;margin:4rem auto;
max-width:40rem"><h1>CADLINK Analytics</h1><p>The dashboard is not built: run
<code>make build</code> (or <code>npm run build:dashboard</code>). The API is at
<a href="/docs">/docs</a>.</p></body></html>"""


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    media_type: str


_loaded: dict[str, Asset] = {}


def _load(relative: str) -> Asset | None:
    """A file of the build. Hashed assets are kept in memory (they never change); the page is
    read again each time, so a rebuild shows without a restart."""
    if relative in _loaded:
        return _loaded[relative]
    try:
        node = resources.files("cadlink.web").joinpath("static", "app", *relative.split("/"))
        data = node.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, OSError):
        return None
    suffix = relative[relative.rfind(".") :]
    packed = gzip.compress(data, 6, mtime=0) if suffix in _COMPRESSIBLE else None
    media = "text/html; charset=utf-8" if suffix == ".html" else _TYPES.get(suffix, "")
    digest = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    found = Asset(data, packed, digest, media or "application/octet-stream")
    if relative.startswith("assets/"):
        _loaded[relative] = found
    return found


def _send(request: Request, asset: Asset, cache_control: str, extra: dict[str, str]) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    headers.update(extra)
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)


async def index(request: Request) -> Response:
    """The app's page; every dashboard path answers with it."""
    asset = _load("index.html")
    if asset is None:
        return HTMLResponse(_NOT_BUILT, 503, headers={"Cache-Control": "no-store"})
    security = {
        "Content-Security-Policy": _CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    return _send(request, asset, "no-cache", security)


for _path in PAGES:
    router.add_api_route(
        _path,
        index,
        methods=["GET"],
        response_class=HTMLResponse,
        summary=f"Dashboard page {_path}",
        name=f"page_{_path.strip('/') or 'overview'}",
    )


@router.get("/assets/{name}")
async def asset(name: str, request: Request) -> Response:
    """A built, content-hashed file: cached for a year."""
    found = _load("assets/" + name) if _ASSET_NAME.match(name) else None
    if found is None:
        raise ApiError(404, "not_found", f"no dashboard asset {name!r}")
    return _send(
        request,
        found,
        "public, max-age=31536000, immutable",
        {"X-Content-Type-Options": "nosniff"},
    )


def clear_cache() -> None:
    """Forget loaded files (tests that rebuild the app)."""
    _loaded.clear()
