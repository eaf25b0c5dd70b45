"""The collect API, end to end through the real app, buffer, loader and DuckDB."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from cadlink_fixtures import Running, make_settings, start_app, wait_for

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
UA = {"User-Agent": CHROME}


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventType": "page_view",
        "eventId": uuid.uuid4().hex,
        "timestamp": int(time.time() * 1000),
        "pageUrl": "https://shop.example/products/red-shoes?utm_source=newsletter&utm_medium=email",
        "pageTitle": "Red shoes",
    }
    base.update(fields)
    return base


def test_single_event_is_accepted_with_204_and_stored_enriched(running: Running) -> None:
    ev = event(siteId=running.site_id, referrer="https://www.google.com/search?q=shoes")
    r = running.client.post("/api/v1/collect", json=ev, headers=UA)
    assert r.status_code == 204, r.text
    assert r.content == b""
    [stored] = running.stored(1)
    assert stored["eventId"] == ev["eventId"]
    assert stored["eventType"] == "page_view"
    assert stored["pagePath"] == "/products/red-shoes"
    assert stored["browser"] == "Chrome"
    assert stored["os"] == "Windows"
    assert stored["deviceType"] == "desktop"
    assert stored["utmSource"] == "newsletter"
    assert stored["utmMedium"] == "email"
    assert stored["channel"] == "email"  # UTM medium wins over the search referrer
    assert stored["timestamp"] == ev["timestamp"]


def test_batch_with_top_level_site_id_as_text_plain(running: Running) -> None:
    body = {"siteId": running.site_id, "events": [event(), event(eventType="click")]}
    r = running.client.post(
        "/api/v1/collect/batch",
        content=json.dumps(body),
        headers={**UA, "Content-Type": "text/plain;charset=UTF-8"},
    )
    assert r.status_code == 200
    assert r.json() == {"success": True, "queued": 2}
    assert {e["eventType"] for e in running.stored(2)} == {"page_view", "click"}


def test_duplicate_event_ids_are_stored_once(running: Running) -> None:
    ev = event(siteId=running.site_id)
    for _ in range(3):
        assert running.client.post("/api/v1/collect", json=ev, headers=UA).status_code == 204
    dup_in_batch = {"siteId": running.site_id, "events": [ev, ev, event()]}
    assert running.client.post("/api/v1/collect", json=dup_in_batch, headers=UA).status_code == 204
    stored = running.stored(2)
    time.sleep(0.3)
    stored = running.stored(2)
    assert len(stored) == 2
    assert sorted(e["eventId"] for e in stored).count(ev["eventId"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"eventType": "page_view"}, "siteId"),
        ({"siteId": "S", "eventType": ""}, "eventType"),
        ({"siteId": "S", "eventType": "page_view", "timestamp": "yesterday"}, "timestamp"),
        ({"siteId": "S", "eventType": "page_view", "pageUrl": "x" * 3000}, "pageUrl"),
        ({"siteId": "S", "eventType": "page_view", "consent": "yes"}, "consent"),
        ({"siteId": "S", "events": [{"eventType": "ok"}, {"pageUrl": "/"}]}, "events[1].eventType"),
        ({"siteId": "S", "eventId": "x"}, "eventType"),
        ({"siteId": "S", "events": "nope"}, "events"),
    ],
)
def test_invalid_input_is_400_naming_the_field_and_nothing_is_stored(
    running: Running, body: dict[str, Any], field: str
) -> None:
    raw = json.dumps(body).replace('"S"', json.dumps(running.site_id))
    r = running.client.post("/api/v1/collect", content=raw, headers=UA)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert r.json()["success"] is False
    assert err["details"]["field"].startswith(field), err
    assert err["message"]
    assert r.headers["x-cadlink-rejected"] == err["code"]
    time.sleep(0.3)
    assert running.services.events.count_events() == 0


def test_a_batch_with_one_bad_event_stores_none(running: Running) -> None:
    body = {"siteId": running.site_id, "events": [event(), event(timestamp=-5)]}
    r = running.client.post("/api/v1/collect", json=body, headers=UA)
    assert r.status_code == 400
    assert r.json()["error"]["details"]["field"] == "events[1].timestamp"
    time.sleep(0.3)
    assert running.services.events.count_events() == 0


def test_malformed_json_and_empty_body(running: Running) -> None:
    r = running.client.post("/api/v1/collect", content=b"{not json", headers=UA)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"
    r = running.client.post("/api/v1/collect", content=b"", headers=UA)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "empty_body"


def test_unknown_site_is_400(running: Running) -> None:
    r = running.client.post("/api/v1/collect", json=event(siteId="no-such-site"), headers=UA)
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "unknown_site",
        "message": "no site with id 'no-such-site'",
        "details": {"field": "siteId"},
    }


def test_site_created_after_start_is_accepted_at_once(running: Running) -> None:
    site = running.services.meta.create_site("late.example")
    time.sleep(1.05)  # the miss-triggered refresh is rate limited to once a second
    r = running.client.post("/api/v1/collect", json=event(siteId=site.public_id), headers=UA)
    assert r.status_code == 204, r.text


def test_too_many_events_and_too_large_body(running: Running) -> None:
    body = {"siteId": running.site_id, "events": [event() for _ in range(101)]}
    r = running.client.post("/api/v1/collect", json=body, headers=UA)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "too_many_events"
    huge = {"siteId": running.site_id, "eventType": "x", "properties": {"blob": "a" * 300_000}}
    r = running.client.post("/api/v1/collect", json=huge, headers=UA)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


def _post_in_parts(running: Running, parts: list[bytes]) -> tuple[int, bytes]:
    """POST a body that arrives as several ASGI messages (a chunked upload: no Content-Length),
    straight to the app (the test client would join the parts into one message)."""
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": "/api/v1/collect", "client": ("127.0.0.1", 9),
        "headers": [(b"user-agent", UA["User-Agent"].encode())],
    }  # fmt: skip
    asyncio.run(running.client.app(scope, receive, send))  # type: ignore[arg-type]
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_a_body_in_several_parts_is_read_whole_and_limited_without_content_length(
    running: Running,
) -> None:
    text = json.dumps(event(siteId=running.site_id, pagePath="/chunked")).encode()
    assert _post_in_parts(running, [text[:10], text[10:30], text[30:]]) == (204, b"")
    assert [e["pagePath"] for e in running.stored(1)] == ["/chunked"]
    blob = json.dumps(event(siteId=running.site_id, properties={"b": "a" * 300_000})).encode()
    for parts in ([blob[:1000], blob[1000:]], [blob]):
        status, body = _post_in_parts(running, parts)
        assert (status, json.loads(body)["error"]["code"]) == (413, "body_too_large")


def test_cors_allows_the_sites_origins_and_refuses_others(running: Running) -> None:
    ev = event(siteId=running.site_id)
    ok = running.client.post(
        "/api/v1/collect", json=ev, headers={**UA, "Origin": "https://www.shop.example"}
    )
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == "https://www.shop.example"
    bad = running.client.post(
        "/api/v1/collect",
        json=event(siteId=running.site_id),
        headers={**UA, "Origin": "https://evil.example"},
    )
    assert bad.status_code == 403
    assert bad.json()["error"]["code"] == "origin_not_allowed"
    pre = running.client.options(
        "/api/v1/collect",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert pre.status_code == 204
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert len(running.stored(1)) == 1


def test_dnt_and_gpc_are_honoured_by_default(running: Running) -> None:
    for header in ({"DNT": "1"}, {"Sec-GPC": "1"}):
        r = running.client.post(
            "/api/v1/collect", json=event(siteId=running.site_id), headers={**UA, **header}
        )
        assert r.status_code == 204
    running.client.post("/api/v1/collect", json=event(siteId=running.site_id), headers=UA)
    time.sleep(0.3)
    assert len(running.stored(1)) == 1
    assert running.services.ingest_metrics.events_dropped["dnt"] == 2


def test_bots_are_dropped_and_counted_per_day_and_reason(running: Running) -> None:
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    headless = CHROME.replace("Chrome/", "HeadlessChrome/")
    for ua in (googlebot, headless, headless):
        r = running.client.post(
            "/api/v1/collect", json=event(siteId=running.site_id), headers={"User-Agent": ua}
        )
        assert r.status_code == 204
    running.client.post("/api/v1/collect", json=event(siteId=running.site_id), headers=UA)
    running.stored(1)

    def dropped() -> list[dict[str, Any]] | None:
        r = running.client.get(
            "/api/v1/analytics/dropped", params={"siteId": running.site_id}, headers=running.auth
        )
        rows: list[dict[str, Any]] = r.json()["data"]
        return rows if sum(x["count"] for x in rows) == 3 else None

    rows = wait_for(dropped)
    by_reason = {x["reason"]: x["count"] for x in rows}
    assert sum(by_reason.values()) == 3
    assert len(by_reason) == 2
    assert running.services.events.count_events() == 1


def test_bot_counts_of_a_sites_local_day_are_found_far_from_utc(running: Running) -> None:
    # The loader files drops by UTC day; a site's local "today" may be another UTC day. A
    # zone 14 hours ahead or 12 behind always has a local date other than UTC's.
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    zone = "Pacific/Kiritimati" if datetime.now(UTC).hour >= 10 else "Etc/GMT+12"
    r = running.client.patch(
        f"/api/v1/sites/{running.site_id}", json={"timezone": zone}, headers=running.auth
    )
    assert r.status_code == 200, r.text
    today = datetime.now(ZoneInfo(zone)).date().isoformat()
    assert today != datetime.now(UTC).date().isoformat()
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    r = running.client.post(
        "/api/v1/collect", json=event(siteId=running.site_id), headers={"User-Agent": googlebot}
    )
    assert r.status_code == 204

    def dropped() -> dict[str, Any] | None:
        r = running.client.get(
            "/api/v1/analytics/dropped",
            params={"siteId": running.site_id, "startDate": today, "endDate": today},
            headers=running.auth,
        )
        body: dict[str, Any] = r.json()
        return body if body["data"] else None

    body = wait_for(dropped)
    assert [(x["reason"], x["count"]) for x in body["data"]] == [("crawler", 1)]
    assert body["meta"]["days"] == "UTC"


def test_consent_decides_which_visitor_id_is_used(running: Running) -> None:
    sid = running.site_id
    a = event(siteId=sid, visitorId="client-visitor-1", consent=True)
    b = event(siteId=sid, visitorId="client-visitor-1", consent=True)
    c = event(siteId=sid, visitorId="client-visitor-1", consent=False)
    d = event(siteId=sid)
    running.client.post("/api/v1/collect", json={"events": [a, b]}, headers=UA)
    running.client.post("/api/v1/collect", json={"events": [c, d]}, headers=UA)
    rows = {e["eventId"]: e for e in running.stored(4)}
    assert rows[a["eventId"]]["visitorId"] == rows[b["eventId"]]["visitorId"]
    # without consent the client id is ignored: the daily anonymous hash applies to both
    assert rows[c["eventId"]]["visitorId"] == rows[d["eventId"]]["visitorId"]
    assert rows[c["eventId"]]["visitorId"] != rows[a["eventId"]]["visitorId"]


def test_client_device_and_geo_claims_are_ignored(running: Running) -> None:
    ev = event(siteId=running.site_id, deviceType="tablet", browser="Netscape", country="ZZ")
    running.client.post("/api/v1/collect", json=ev, headers=UA)
    [row] = running.stored(1)
    assert row["deviceType"] == "desktop"
    assert row["browser"] == "Chrome"
    assert row["country"] != "ZZ"


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "d", rate_limit_per_minute=60, rate_limit_burst=3)
    app = start_app(settings)
    run = next(app)
    try:
        codes = [
            run.client.post(
                "/api/v1/collect", json=event(siteId=run.site_id), headers=UA
            ).status_code
            for _ in range(5)
        ]
        assert codes[:3] == [204, 204, 204]
        assert codes[3:] == [429, 429]
        r = run.client.post("/api/v1/collect", json=event(siteId=run.site_id), headers=UA)
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"
    finally:
        app.close()


def test_full_buffer_answers_503_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "d", spool_max_bytes=1)
    app = start_app(settings)
    run = next(app)
    try:
        run.services.loader.stop()  # nothing drains the buffer
        first = run.client.post("/api/v1/collect", json=event(siteId=run.site_id), headers=UA)
        assert first.status_code == 204
        r = run.client.post("/api/v1/collect", json=event(siteId=run.site_id), headers=UA)
        assert r.status_code == 503
        assert r.headers["retry-after"]
        assert r.json()["error"]["code"] == "overloaded"
    finally:
        app.close()


def test_x_forwarded_for_is_used_only_from_trusted_proxies(running: Running) -> None:
    # the test client's peer (203.0.113.77) is not a trusted proxy: its XFF header is ignored,
    # so both requests hash to the same anonymous visitor.
    sid = running.site_id
    running.client.post(
        "/api/v1/collect", json=event(siteId=sid), headers={**UA, "X-Forwarded-For": "198.51.100.1"}
    )
    running.client.post(
        "/api/v1/collect", json=event(siteId=sid), headers={**UA, "X-Forwarded-For": "198.51.100.2"}
    )
    rows = running.stored(2)
    assert rows[0]["visitorId"] == rows[1]["visitorId"]


def test_get_is_405(running: Running) -> None:
    r = running.client.get("/api/v1/collect")
    assert r.status_code == 405


@pytest.mark.parametrize("number", ["1e999", "-1e400", "1E+308999", "9" * 400 + ".5"])
def test_a_number_beyond_a_double_in_properties_reads_back_as_null(
    running: Running, number: str
) -> None:
    # Valid JSON that msgspec refuses to decode: collect takes such an object through as it
    # is (scanning every body for it would cost the request path more than the rest of
    # the check), so one used to break every read of the page it was on.
    plain = json.dumps(event(eventType="click", properties={"price": "N", "sku": "e123"}))
    accented = json.dumps(event(eventType="click", properties={"prix": "N", "café": "é"}))
    body = "[{}, {}]".format(plain.replace('"N"', number), accented.replace('"N"', number))
    body = f'{{"siteId": {json.dumps(running.site_id)}, "events": {body}}}'
    r = running.client.post("/api/v1/collect", content=body, headers=UA)
    assert r.status_code == 204, r.text
    stored = running.stored(2)
    assert sorted(json.dumps(e["properties"], sort_keys=True) for e in stored) == sorted(
        [
            json.dumps({"price": None, "sku": "e123"}),
            json.dumps({"café": "é", "prix": None}, sort_keys=True),
        ]
    )
    bad = '{"siteId": %s, "eventType": "x", "properties": {"a": 1e999, "b": "\\ud800"}}'
    r = running.client.post(
        "/api/v1/collect", content=bad % json.dumps(running.site_id), headers=UA
    )
    assert r.status_code == 400  # what is not JSON is refused still (a lone surrogate)


def test_properties_stored_with_a_number_beyond_a_double_read_as_null() -> None:
    from cadlink.web_names import event_json

    row = {"properties": '{"a": 1e999, "b": [-1e400, 2], "c": "x"}'}
    assert event_json(row)["properties"] == {"a": None, "b": [None, 2], "c": "x"}


def test_a_body_nested_too_deeply_is_400_not_500(running: Running) -> None:
    nested = "[" * 5000 + "]" * 5000
    site = json.dumps(running.site_id)
    deep = f'{{"siteId": {site}, "eventType": "x", "properties": {{"a": {nested}}}}}'
    r = running.client.post("/api/v1/collect", content=deep, headers=UA)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_json"
    assert "nested too deeply" in r.json()["error"]["message"]


def test_an_unknown_site_on_a_later_event_is_named_where_it_was_sent(running: Running) -> None:
    body = {"siteId": running.site_id, "events": [event(), event(siteId="nope")]}
    r = running.client.post("/api/v1/collect", json=body, headers=UA)
    assert r.status_code == 400
    assert r.json()["error"]["details"] == {"field": "events[1].siteId"}


def test_a_request_for_several_sites_is_buffered_whole_or_not_at_all(tmp_path: Path) -> None:
    # With room for one record, a request for two sites used to store the first site's
    # events and answer 503 for the second.
    settings = make_settings(tmp_path / "d", spool_max_bytes=1)
    app = start_app(settings)
    run = next(app)
    try:
        run.services.loader.stop()  # nothing drains the buffer
        other = run.services.meta.create_site("other.example").public_id
        time.sleep(1.05)  # the miss-triggered refresh is rate limited to once a second
        two_sites = {"events": [event(siteId=run.site_id), event(siteId=other)]}
        r = run.client.post("/api/v1/collect/batch", json=two_sites, headers=UA)
        assert r.status_code == 200, r.text
        assert r.json() == {"success": True, "queued": 2}
        held = run.services.backlog.bytes
        again = {"events": [event(siteId=run.site_id), event(siteId=other)]}
        r = run.client.post("/api/v1/collect/batch", json=again, headers=UA)
        assert r.status_code == 503
        assert run.services.backlog.bytes == held  # nothing of the refused request
    finally:
        app.close()


def test_only_the_collect_paths_collect(running: Running) -> None:
    for path in ("/api/v1/collectfoo", "/api/v1/collect/typo", "/api/v1/collect/batch/x"):
        r = running.client.post(path, json=event(siteId=running.site_id), headers=UA)
        assert r.status_code == 404, (path, r.status_code)
    for path in ("/api/v1/collect/", "/api/v1/collect/batch/"):
        r = running.client.post(path, json=event(siteId=running.site_id), headers=UA)
        assert r.status_code in (200, 204), (path, r.status_code)
    assert len(running.stored(2)) == 2
    time.sleep(0.3)
    assert running.services.events.count_events() == 2


def test_metrics_count_refused_events_and_collect_requests(running: Running) -> None:
    def sample(name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        text = running.client.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return 0.0

    before = sample("cadlink_events_rejected_total", reason="invalid_event")
    accepted_requests = sample("cadlink_collect_requests_total", outcome="accepted")
    bad = {
        "siteId": running.site_id,
        "events": [event() for _ in range(49)] + [event(timestamp=-1)],
    }
    assert running.client.post("/api/v1/collect", json=bad, headers=UA).status_code == 400
    assert sample("cadlink_events_rejected_total", reason="invalid_event") == before + 50
    assert running.client.post("/api/v1/collect", content=b"{", headers=UA).status_code == 400
    assert sample("cadlink_events_rejected_total", reason="invalid_json") == 1
    ok = {"siteId": running.site_id, "events": [event(), event()]}
    assert running.client.post("/api/v1/collect", json=ok, headers=UA).status_code == 204
    assert sample("cadlink_collect_requests_total", outcome="accepted") == accepted_requests + 1
    assert sample("cadlink_collect_requests_total", outcome="rejected") >= 2
