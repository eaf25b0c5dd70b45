"""Exports: raw events and reports, in CSV, NDJSON and Parquet, that parse."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid

import pyarrow.parquet as pq
import pytest

from cadlink_fixtures import Running

UA = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}


def _send(running: Running, n: int) -> list[str]:
    now = int(time.time() * 1000)
    ids = [uuid.uuid4().hex for _ in range(n)]
    events = [
        {
            "eventType": "page_view",
            "eventId": i,
            "timestamp": now + k,
            "pagePath": f"/p/{k % 3}",
            "properties": {"k": k},
        }
        for k, i in enumerate(ids)
    ]
    r = running.client.post(
        "/api/v1/collect", json={"siteId": running.site_id, "events": events}, headers=UA
    )
    assert r.status_code == 204
    running.stored(n)
    return ids


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_raw_events_export_parses_in_every_format(running: Running, fmt: str) -> None:
    ids = _send(running, 30)
    r = running.client.get(
        "/api/v1/analytics/export",
        params={"siteId": running.site_id, "format": fmt},
        headers=running.auth,
    )
    assert r.status_code == 200, r.text
    assert "attachment" in r.headers["content-disposition"]
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(r.text)))
    elif fmt == "json":
        rows = [json.loads(line) for line in r.text.splitlines()]
        # 64-bit ids as strings, as the API gives them: JavaScript's numbers would round them.
        assert all(isinstance(row["visitorId"], str) for row in rows)
    else:
        rows = pq.read_table(io.BytesIO(r.content)).to_pylist()
    assert [row["eventId"] for row in rows] == ids
    assert rows[0]["eventType"] == "page_view"
    assert rows[0]["browser"] == "Firefox"


def test_sessions_and_report_exports(running: Running) -> None:
    _send(running, 9)
    get = running.client.get
    sessions = get(
        "/api/v1/analytics/export",
        params={"siteId": running.site_id, "report": "sessions", "format": "json"},
        headers=running.auth,
    )
    [session] = [json.loads(x) for x in sessions.text.splitlines()]
    assert session["pageViews"] == 9
    assert isinstance(session["visitorId"], str)
    pages = get(
        "/api/v1/analytics/export",
        params={
            "siteId": running.site_id,
            "report": "breakdown",
            "dimension": "page",
            "format": "csv",
        },
        headers=running.auth,
    )
    rows = list(csv.DictReader(io.StringIO(pages.text)))
    assert sorted(r["value"] for r in rows) == ["/p/0", "/p/1", "/p/2"]
    assert sum(int(r["pageViews"]) for r in rows) == 9
    summary = get(
        "/api/v1/analytics/export",
        params={"siteId": running.site_id, "report": "summary", "format": "parquet"},
        headers=running.auth,
    )
    [row] = pq.read_table(io.BytesIO(summary.content)).to_pylist()
    assert row["pageViews"] == 9


def test_export_errors(running: Running) -> None:
    get = running.client.get
    r = get(
        "/api/v1/analytics/export",
        params={"siteId": running.site_id, "format": "xml"},
        headers=running.auth,
    )
    assert (r.status_code, r.json()["error"]["details"]["field"]) == (400, "format")
    r = get(
        "/api/v1/analytics/export",
        params={"siteId": running.site_id, "report": "nope"},
        headers=running.auth,
    )
    assert (r.status_code, r.json()["error"]["details"]["field"]) == (400, "report")
    r = get("/api/v1/analytics/export", params={"siteId": running.site_id})
    assert r.status_code == 401
