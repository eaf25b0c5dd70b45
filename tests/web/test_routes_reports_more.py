"""Realtime, funnel, product and experiment routes over a real server (needs app.py wiring)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from cadlink_fixtures import Running

UA = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
}
BASE = "/api/v1/analytics"


def _send(running: Running) -> None:
    """One visitor, just now: home → product (variant B) → affiliate click on Amazon."""
    now = int(time.time() * 1000) - 5_000
    items: list[tuple[int, str, str, dict[str, Any] | None]] = [
        (0, "page_view", "/", None),
        (1_000, "page_view", "/products/x", {"variant": "B"}),
        (1_500, "product_view", "/products/x", {"productId": "sku-1", "productName": "X"}),
        (3_000, "affiliate_click", "/products/x",
         {"productId": "sku-1", "platform": "amazon", "position": 1}),
    ]  # fmt: skip
    events = [
        {"eventType": et, "eventId": uuid.uuid4().hex, "timestamp": now + dt, "pagePath": path,
         "pageUrl": "https://shop.example" + path, **({"properties": p} if p else {})}
        for dt, et, path, p in items
    ]  # fmt: skip
    r = running.client.post(
        "/api/v1/collect", json={"siteId": running.site_id, "events": events}, headers=UA
    )
    assert r.status_code == 204, r.text
    running.stored(len(events))


def _get(running: Running, path: str, **params: Any) -> Any:
    r = running.client.get(
        BASE + path, params={"siteId": running.site_id, **params}, headers=running.auth
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    return body["data"]


def test_reports_answer_over_http(running: Running) -> None:
    _send(running)
    rt = _get(running, "/realtime")
    assert (rt["activeUsers"], rt["pageViewsLastMinute"], rt["clicksLastMinute"]) == (1, 2, 1)
    assert rt["conversionRate"] == 1.0
    [visitor] = rt["visitors"]
    assert visitor["currentPage"] == "/products/x"
    assert isinstance(visitor["visitorId"], str)

    fn = _get(running, "/funnel", steps="page_view@/,product_view,affiliate_click[platform=amazon]")
    assert [s["visitors"] for s in fn["steps"]] == [1, 1, 1]
    assert fn["windowMinutes"] == 1440
    assert fn["steps"][0]["medianSecondsToNext"] == 1.5
    none = _get(
        running, "/funnel", steps="page_view,affiliate_click", filters='[["device","is","mobile"]]'
    )
    assert none["entered"] == 0

    [product] = _get(running, "/products/top", limit=5)
    assert (product["productId"], product["views"], product["affiliateClicks"]) == ("sku-1", 1, 1)
    aff = _get(running, "/products/affiliate")
    assert aff["byPlatform"] == [{"platform": "amazon", "clicks": 1, "visitors": 1}]
    assert aff["byPosition"] == [{"position": "1", "clicks": 1, "visitors": 1}]

    ex = _get(running, "/experiments", goal="affiliate_click")
    assert ex["control"] == "B"
    assert [(v["variant"], v["exposures"], v["conversions"]) for v in ex["variants"]] == [
        ("B", 1, 1)
    ]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/funnel", {}, "steps"),
        ("/funnel", {"steps": "page_view"}, "steps"),
        ("/funnel", {"steps": "a b,c"}, "steps"),
        ("/funnel", {"steps": "a,b", "window": "forever"}, "window"),
        ("/funnel", {"steps": "a,b", "startDate": "soon"}, "startDate"),
        ("/products/top", {"filters": "[1]"}, "filters"),
        ("/products/top", {"limit": 0}, "limit"),
        ("/products/affiliate", {"endDate": "x"}, "endDate"),
        ("/experiments", {"property": "no way"}, "property"),
        ("/experiments", {"goal": "a b"}, "goal"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(
    running: Running, path: str, params: dict[str, Any], field: str
) -> None:
    r = running.client.get(
        BASE + path, params={"siteId": running.site_id, **params}, headers=running.auth
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"]["field"] == field


@pytest.mark.parametrize(
    "path", ["/realtime", "/funnel", "/products/top", "/products/affiliate", "/experiments"]
)
def test_auth_and_unknown_site(running: Running, path: str) -> None:
    params = {"siteId": running.site_id, "steps": "a,b"}
    assert running.client.get(BASE + path, params=params).status_code == 401
    r = running.client.get(BASE + path, params={**params, "siteId": "nope"}, headers=running.auth)
    assert r.status_code == 404
    assert r.json()["error"]["details"]["field"] == "siteId"
