"""The whole server on PostgreSQL for both metadata and events: collect → store → reports."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from cadlink_fixtures import make_settings, start_app

UA = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}


def test_collect_and_report_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    settings = make_settings(tmp_path / "d", database_url=postgres_url, events_url=postgres_url)
    app = start_app(settings)
    run = next(app)
    try:
        now = int(time.time() * 1000)
        events = [
            {
                "eventType": "page_view",
                "eventId": uuid.uuid4().hex,
                "timestamp": now + i,
                "pagePath": f"/p{i % 2}",
            }
            for i in range(6)
        ]
        r = run.client.post(
            "/api/v1/collect", json={"siteId": run.site_id, "events": events}, headers=UA
        )
        assert r.status_code == 204
        stored = run.stored(6)
        assert {e["eventId"] for e in stored} == {e["eventId"] for e in events}
        db = run.client.get("/api/health/db").json()["data"]
        assert db["events"]["engine"] == "postgresql"
        assert db["metadata"]["engine"] == "postgresql"
        dash = run.client.get(
            "/api/v1/analytics/dashboard", params={"siteId": run.site_id}, headers=run.auth
        )
        assert dash.json()["data"]["summary"]["pageViews"] == 6
        assert dash.json()["data"]["summary"]["sessions"] == 1
    finally:
        app.close()
