"""`GET /api/v1/analytics/dashboard` over HTTP: shape, filters and errors."""

from __future__ import annotations

import json
import time
import uuid

from cadlink.store.events.duckdb_store import DuckDBEventStore
from cadlink_fixtures import Running

UA = {
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
}


def test_dashboard_answers_with_filters(running: Running) -> None:
    now = int(time.time() * 1000)
    events = [
        {"eventType": "page_view", "eventId": uuid.uuid4().hex, "timestamp": now + i, "pagePath": p,
         "referrer": "https://www.google.com/", "properties": {"variant": v}}
        for i, (p, v) in enumerate([("/a", "A"), ("/b", "B"), ("/a", "B")])
    ]  # fmt: skip
    running.client.post(
        "/api/v1/collect", json={"siteId": running.site_id, "events": events}, headers=UA
    )
    running.stored(3)
    r = running.client.get(
        "/api/v1/analytics/dashboard", params={"siteId": running.site_id}, headers=running.auth
    )
    assert r.status_code == 200, r.text
    body = r.json()
    data = body["data"]
    assert data["summary"]["pageViews"] == 3
    assert data["summary"]["visitors"] == 1
    assert data["summary"]["sessions"] == 1
    assert data["summary"]["previous"]["pageViews"] == 0
    # A period without sessions has no per-session figures (the dashboard shows a dash).
    previous = data["summary"]["previous"]
    per_session = ("viewsPerSession", "bounceRate", "avgSessionDuration")
    assert all(previous[k] is None for k in per_session), previous
    crm = running.client.get(
        "/api/v1/crm/summary", params={"siteId": running.site_id}, headers=running.auth
    )
    assert crm.json()["data"]["churnRate"] is None  # nobody was active 30-60 days ago
    assert len(data["timeseries"]) == 30
    assert {r["value"]: r["pageViews"] for r in data["breakdowns"]["page"]} == {"/a": 2, "/b": 1}
    assert data["breakdowns"]["source"][0]["value"] == "Google"
    assert body["meta"]["granularity"] == "day"
    flt = json.dumps([["prop:variant", "is", "B"]])
    r = running.client.get(
        "/api/v1/analytics/dashboard",
        params={"siteId": running.site_id, "filters": flt},
        headers=running.auth,
    )
    assert r.json()["data"]["summary"]["pageViews"] == 2
    assert r.json()["meta"]["filters"] == [["prop:variant", "is", ["B"]]]


def test_dashboard_errors_name_the_field(running: Running) -> None:
    get = running.client.get
    cases = [
        ({"filters": "not json"}, "filters"),
        ({"filters": '[["nope","is","x"]]'}, "filters"),
        ({"filters": '[["page","like","x"]]'}, "filters"),
        ({"granularity": "year"}, "granularity"),
        ({"startDate": "2026-02-10", "endDate": "2026-02-01"}, "startDate"),
    ]
    for params, field in cases:
        r = get(
            "/api/v1/analytics/dashboard",
            params={"siteId": running.site_id, **params},
            headers=running.auth,
        )
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"]["details"]["field"] == field


def test_a_report_out_of_the_stores_memory_is_a_503_that_says_why(running: Running) -> None:
    store = running.services.events
    assert isinstance(store, DuckDBEventStore)
    configured = store._memory.configured
    store._memory.configure("2MB")  # what reports get: below what any report needs
    r = running.client.get(
        "/api/v1/analytics/dashboard", params={"siteId": running.site_id}, headers=running.auth
    )
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "10"
    error = r.json()["error"]
    assert error["code"] == "report_too_large"
    assert "CADLINK_DUCKDB_MEMORY_LIMIT" in error["message"]
    store._memory.configure(configured)
    r = running.client.get(
        "/api/v1/analytics/dashboard", params={"siteId": running.site_id}, headers=running.auth
    )
    assert r.status_code == 200, r.text
