"""Serving the built dashboard: the page at every app path, hashed assets cached for a year."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cadlink.web import routes_dashboard
from cadlink.web.responses import install_error_handlers

BUILT = Path(routes_dashboard.__file__).parent / "static" / "app" / "index.html"
pytestmark = pytest.mark.skipif(not BUILT.exists(), reason="dashboard not built")


@pytest.fixture
def client() -> TestClient:
    api = FastAPI()
    install_error_handlers(api)
    api.include_router(routes_dashboard.router)
    return TestClient(api)


def test_every_app_path_serves_the_page_revalidated_with_a_strict_csp(client: TestClient) -> None:
    for path in routes_dashboard.PAGES:
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "no-cache"
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert '<div id="app">' in r.text
    etag = client.get("/").headers["etag"]
    assert client.get("/", headers={"If-None-Match": etag}).status_code == 304


def test_assets_are_immutable_gzipped_and_same_origin_only(client: TestClient) -> None:
    page = client.get("/").text
    names = re.findall(r'/assets/([^"]+)', page)
    assert any(n.endswith(".js") for n in names) and any(n.endswith(".css") for n in names)
    for name in names:
        r = client.get("/assets/" + name, headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["content-encoding"] == "gzip"
    assert "http://" not in page and "https://" not in page  # no CDN, no third party


def test_unknown_or_sneaky_asset_names_are_404(client: TestClient) -> None:
    for name in ("nope.js", "..%2Findex.html", ".hidden"):
        assert client.get("/assets/" + name).status_code == 404
