"""CRM routes over HTTP."""

from __future__ import annotations

import time
import uuid

from cadlink_fixtures import Running, wait_for

UA = {
    "User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
}


def test_identified_user_shows_up_with_traits_and_sessions(running: Running) -> None:
    now = int(time.time() * 1000)
    events = [
        {"eventType": "identify", "eventId": uuid.uuid4().hex, "timestamp": now, "userId": "u-42",
         "properties": {"plan": "pro"}, "pagePath": "/account"},
        {"eventType": "page_view", "eventId": uuid.uuid4().hex, "timestamp": now + 1, "userId": "u-42",
         "pagePath": "/pricing"},
    ]  # fmt: skip
    running.client.post(
        "/api/v1/collect", json={"siteId": running.site_id, "events": events}, headers=UA
    )
    running.stored(2)
    get = running.client.get
    summary = get(
        "/api/v1/crm/summary", params={"siteId": running.site_id}, headers=running.auth
    ).json()["data"]
    assert summary["totalUsers"] == 1
    assert summary["onlineNow"] == 1
    assert summary["newThisWeek"] == 1
    assert summary["segments"]["new"] == 1
    assert len(summary["usersPerDay"]) == 30
    users = get(
        "/api/v1/crm/users",
        params={"siteId": running.site_id, "segment": "new"},
        headers=running.auth,
    )
    assert [u["userId"] for u in users.json()["data"]] == ["u-42"]

    def detail() -> dict | None:
        r = get("/api/v1/crm/users/u-42", params={"siteId": running.site_id}, headers=running.auth)
        body = r.json()["data"]
        return body if body["traits"] else None

    body = wait_for(detail)
    assert body["traits"] == {"plan": "pro"}
    assert [p["path"] for p in body["sessions"][0]["pages"]] == ["/pricing"]
    bad = get(
        "/api/v1/crm/users",
        params={"siteId": running.site_id, "segment": "vip"},
        headers=running.auth,
    )
    assert (bad.status_code, bad.json()["error"]["details"]["field"]) == (400, "segment")
    missing = get(
        "/api/v1/crm/users/nobody", params={"siteId": running.site_id}, headers=running.auth
    )
    assert missing.status_code == 404
