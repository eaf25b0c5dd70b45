"""Read-back, health, metrics, OpenAPI and the tracker snippet."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import duckdb
import pytest

from cadlink_fixtures import Running

UA = {
    "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
}


def _send(running: Running, n: int) -> list[str]:
    now = int(time.time() * 1000)
    ids = [uuid.uuid4().hex for _ in range(n)]
    events = [
        {"eventType": "product_view", "eventId": i, "timestamp": now + k, "pagePath": f"/p/{k}",
         "properties": {"productId": f"sku-{k}", "price": 9.5}}
        for k, i in enumerate(ids)
    ]  # fmt: skip
    r = running.client.post(
        "/api/v1/collect", json={"siteId": running.site_id, "events": events}, headers=UA
    )
    assert r.status_code == 204
    return ids


def test_events_read_back_in_pages_with_enriched_camel_case_fields(running: Running) -> None:
    ids = _send(running, 25)
    running.stored(25)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"siteId": running.site_id, "limit": 10, **({"cursor": cursor} if cursor else {})}
        body = running.client.get(
            "/api/v1/analytics/events", params=params, headers=running.auth
        ).json()
        seen.extend(e["eventId"] for e in body["data"])
        cursor = body["meta"]["nextCursor"]
        if cursor is None:
            break
    assert seen == ids
    first = running.client.get(
        "/api/v1/analytics/events",
        params={"siteId": running.site_id, "limit": 1},
        headers=running.auth,
    ).json()["data"][0]
    assert first["properties"] == {"productId": "sku-0", "price": 9.5}
    assert first["deviceType"] == "mobile"
    assert first["os"] == "iOS"
    assert first["siteId"] == running.site_id
    assert isinstance(first["timestamp"], int)
    assert isinstance(first["visitorId"], str)
    for key in (
        "pageUrl",
        "referrer",
        "country",
        "region",
        "city",
        "utmSource",
        "channel",
        "source",
    ):
        assert key in first


def test_read_back_errors_name_the_parameter(running: Running) -> None:
    get = running.client.get
    r = get(
        "/api/v1/analytics/events",
        params={"siteId": running.site_id, "startDate": "yesterday"},
        headers=running.auth,
    )
    assert (r.status_code, r.json()["error"]["details"]["field"]) == (400, "startDate")
    for value in ("2026-12-07T00:00:00", "2026-12-07junk", "0001-01-01", "9999-12-31"):
        r = get(
            "/api/v1/analytics/events",
            params={"siteId": running.site_id, "endDate": value},
            headers=running.auth,
        )
        assert (r.status_code, r.json()["error"]["details"]["field"]) == (400, "endDate")
    r = get(
        "/api/v1/analytics/events",
        params={"siteId": running.site_id, "cursor": "garbage"},
        headers=running.auth,
    )
    assert (r.status_code, r.json()["error"]["details"]["field"]) == (400, "cursor")
    r = get("/api/v1/analytics/events", params={"siteId": "nope"}, headers=running.auth)
    assert r.status_code == 404
    r = get("/api/v1/analytics/events", headers=running.auth)
    assert (r.status_code, r.json()["error"]["details"]["field"]) == (400, "siteId")
    r = get(
        "/api/v1/analytics/events",
        params={"siteId": running.site_id, "limit": 5000},
        headers=running.auth,
    )
    assert (r.status_code, r.json()["error"]["details"]["field"]) == (400, "limit")


def test_date_range_is_in_the_site_time_zone(running: Running) -> None:
    _send(running, 1)
    running.stored(1)
    r = running.client.get(
        "/api/v1/analytics/events",
        params={"siteId": running.site_id, "startDate": "2001-01-01", "endDate": "2001-01-02"},
        headers=running.auth,
    )
    assert r.json()["data"] == []
    assert r.json()["meta"]["timezone"] == "UTC"


def test_sessions_listing(running: Running) -> None:
    _send(running, 3)
    running.stored(3)
    r = running.client.get(
        "/api/v1/analytics/sessions", params={"siteId": running.site_id}, headers=running.auth
    )
    [session] = r.json()["data"]
    assert session["events"] == 3
    assert session["deviceType"] == "mobile"


def test_health_endpoints(running: Running) -> None:
    assert running.client.get("/api/health").json()["data"]["status"] == "ok"
    r = running.client.get("/api/health/db")
    db = r.json()["data"]
    assert db["events"]["engine"] == "duckdb"
    # A public probe: no file path (nor any of the data dir's layout) in the answer.
    assert "path" not in db["events"] and "path" not in db["metadata"]
    assert str(running.settings.data_dir) not in r.text, r.text
    q = running.client.get("/api/health/queue").json()["data"]
    assert q["kind"] == "spool"
    assert q["backlogBytes"] >= 0


def test_health_db_error_is_generic_and_logged(
    running: Running, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret_path = f"{running.settings.data_dir}/events.duckdb"

    def unreachable() -> dict[str, Any]:  # what DuckDB says when another process holds it
        raise duckdb.IOException(f'Could not set lock on file "{secret_path}": Conflicting lock')

    monkeypatch.setattr(running.services.events, "ping", unreachable)
    with caplog.at_level(logging.ERROR, logger="cadlink.web.routes_health"):
        r = running.client.get("/api/health/db")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "database_unavailable"
    assert secret_path not in r.text and "lock" not in r.text.lower()
    # The detail is in the server's log, for the operator.
    assert any(secret_path in str(rec.exc_info[1]) for rec in caplog.records if rec.exc_info)


def test_metrics_in_prometheus_format(running: Running) -> None:
    _send(running, 4)
    running.client.post("/api/v1/collect", content=b"{", headers=UA)
    running.stored(4)
    text = running.client.get("/metrics").text
    assert "cadlink_events_accepted_total 4.0" in text
    assert 'cadlink_events_rejected_total{reason="invalid_json"} 1.0' in text
    assert "cadlink_buffer_backlog_bytes" in text
    assert "cadlink_loader_lag_seconds" in text
    assert "cadlink_loader_sessions_rebuilt_total 0.0" in text
    assert "cadlink_loader_batches_widened_total 0.0" in text
    assert "cadlink_store_reattached_total 0.0" in text
    assert "cadlink_store_row_group_merges_total 0.0" in text
    assert "cadlink_loader_errors_total 0.0" in text
    assert "cadlink_loader_dead_letters_total 0.0" in text
    batches = [x for x in text.splitlines() if x.startswith("cadlink_loader_batches_total")]
    assert batches and float(batches[0].split()[1]) >= 1  # the 4 events' batch at least
    assert 'cadlink_http_requests_total{route="/api/v1/analytics",status="2xx"}' in text
    # Memory: the process's, and what DuckDB accounts for (4 stored rows hold some).
    rss = [line for line in text.splitlines() if line.startswith("process_resident_memory_bytes")]
    assert rss and float(rss[0].split()[1]) > 10e6
    assert 'cadlink_store_memory_bytes{use="in_memory_table"}' in text


def _served_paths(routes: list[Any]) -> set[str]:
    """The paths of `routes`, included routers walked into (their routes' paths are whole)."""
    paths: set[str] = set()
    for route in routes:
        if hasattr(route, "original_router"):  # an included router (FastAPI 0.16x)
            paths |= _served_paths(route.original_router.routes)
        elif hasattr(route, "path"):
            paths.add(route.path)
    return paths


def test_openapi_covers_every_route(running: Running) -> None:
    paths = running.client.get("/openapi.json").json()["paths"]
    routes = {
        "/api/health", "/api/health/db", "/api/health/queue", "/metrics", "/t.js",
        "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/sites", "/api/v1/sites/{site_id}",
        "/api/v1/sites/{site_id}/snippet", "/api/v1/analytics/events",
        "/api/v1/analytics/sessions", "/api/v1/analytics/dropped",
    }  # fmt: skip
    assert routes <= set(paths), routes - set(paths)
    # Every route the app serves is in the document (the dashboard's pages and assets too),
    # less FastAPI's own pages for the document.
    served = _served_paths(running.client.app.api.routes)  # type: ignore[attr-defined]
    own = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    assert served - own <= set(paths), (served - own) - set(paths)
    assert {"/", "/login", "/crm", "/assets/{name}"} <= set(paths)
    for path in paths:  # and every documented path answers something other than 404
        if "{name}" in path:
            continue  # an asset's name: a 404 for one that does not exist is right
        url = path.replace("{site_id}", running.site_id)
        method = next(iter(paths[path])).upper()
        assert running.client.request(method, url).status_code != 404, path
    assert "/api/v1/collect" in paths
    assert "/api/v1/collect/batch" in paths


def test_snippet_for_a_site(running: Running) -> None:
    r = running.client.get(f"/api/v1/sites/{running.site_id}/snippet", headers=running.auth)
    snippet = r.json()["data"]["snippet"]
    assert snippet == (
        f'<script defer src="http://testserver/t.js" data-site="{running.site_id}"></script>'
    )


def test_tracker_is_served_gzipped_cached_and_etagged(running: Running) -> None:
    r = running.client.get("/t.js", headers={"Accept-Encoding": "gzip"})
    if r.status_code == 503:
        import pytest

        pytest.fail("t.js is not built: `make build` must run before the tests")
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) <= 3584  # the size budget, as served
    assert "max-age" in r.headers["cache-control"]
    assert r.headers["access-control-allow-origin"] == "*"
    again = running.client.get("/t.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
