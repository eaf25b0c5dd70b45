"""Page views, sessions, SPA navigation, the pre-load queue and the contract's event fields."""

from __future__ import annotations

import re

import pytest
from tracker_harness import STUB, Tab, by_type, props, tracker_page

pytestmark = pytest.mark.browser

# The server's form of an id (staging._NEW_ID): the time in ms as 12 hex digits, 7, random.
EVENT_ID = re.compile(r"^[0-9a-f]{12}7[0-9a-f]{19}$")


def test_page_view_carries_the_contract_fields(tab: Tab) -> None:
    tab.open(
        "/landing?utm_source=news&utm_medium=email&utm_campaign=spring&utm_term=kettle"
        "&utm_content=hero",
        title="Landing page",
    )
    events = tab.site.wait_types("session_start", "page_view")
    assert sorted(e["eventType"] for e in events) == ["page_view", "session_start"]

    sent = {e["eventType"]: e for e in tab.sent_events()}
    view = sent["page_view"]
    assert EVENT_ID.match(view["eventId"])
    # Ids sort by time (the duplicate check skips stored row groups by their id ranges).
    assert abs(int(view["eventId"][:12], 16) - view["timestamp"]) < 60_000
    assert view["sessionId"] == sent["session_start"]["sessionId"]
    assert view["pagePath"] == "/landing"
    assert view["pageUrl"].startswith(f"http://{tab.site.host}:")
    assert view["pageTitle"] == "Landing page"
    assert re.match(r"^\d+x\d+$", view["screenResolution"])
    assert view["viewport"] == "1280x720"
    assert view["consent"] is False
    assert "visitorId" not in view  # no visitor id without consent
    assert "userId" not in view
    assert (view["utmSource"], view["utmMedium"], view["utmCampaign"], view["utmTerm"],
            view["utmContent"]) == ("news", "email", "spring", "kettle", "hero")  # fmt: skip
    assert abs(view["timestamp"] - tab.call("Date.now()")) < 60_000

    stored = by_type(events, "page_view")[0]
    assert stored["eventId"] == view["eventId"]
    assert stored["pagePath"] == "/landing"
    assert stored["sessionId"] == view["sessionId"]
    # Nothing in cookies, ever.
    assert tab.context.cookies() == []


def test_spa_navigation_records_page_views_and_exits(tab: Tab) -> None:
    tab.open("/app")
    tab.site.wait_types("page_view")
    tab.page.wait_for_timeout(300)
    tab.call("history.pushState({}, '', '/app/products')")
    tab.call("history.replaceState({}, '', '/app/products?sort=price')")  # same path: no view
    tab.call("history.replaceState({}, '', '/app/cart')")
    tab.call("history.back()")  # popstate back to /app
    tab.page.wait_for_function("location.pathname == '/app'")

    events = tab.site.wait_types(*["page_view"] * 4, *["page_exit"] * 3)
    views = [e["pagePath"] for e in by_type(events, "page_view")]
    assert views == ["/app", "/app/products", "/app/cart", "/app"]
    exits = by_type(events, "page_exit")
    assert [e["pagePath"] for e in exits] == ["/app", "/app/products", "/app/cart"]
    assert props(exits[0])["timeOnPage"] >= 250
    assert len({e["sessionId"] for e in events}) == 1
    assert len(by_type(events, "session_start")) == 1
    # The previous in-app page is the referrer of the next one.
    sent = by_type(tab.sent_events(), "page_view")
    assert sent[1]["referrer"].endswith("/app")


def test_preload_queue_and_aliases(tab: Tab) -> None:
    head = (
        f"<script>{STUB}"
        "cadlink('identify', 'user-7', {plan: 'pro'});"
        "cadlink('track', 'early_event', {step: 1});</script>"
    )
    tab.open("/", tracker_page(tab.server, tab.site, head=head))
    tab.call("window.vibeTrack('crm_event', {source: 'crm'})")
    tab.call("cadlink.track('late_event', {n: 2})")
    tab.call("window.vibeIdentify('user-8')")
    tab.call("cadlink('track', 'function_form', {n: 3})")

    events = tab.site.wait_types(
        "identify", "early_event", "page_view", "crm_event", "late_event", "function_form"
    )
    sent = tab.sent_events()
    order = [e["eventType"] for e in sent]
    # Queued calls run before the first page view, so it already carries the user id.
    assert order.index("identify") < order.index("page_view")
    assert order.index("early_event") < order.index("page_view")
    view = by_type(sent, "page_view")[0]
    assert view["userId"] == "user-7"
    assert props(by_type(events, "identify")[0]) == {"plan": "pro"}
    assert props(by_type(events, "crm_event")[0]) == {"source": "crm"}
    assert by_type(sent, "late_event")[0]["userId"] == "user-7"
    assert by_type(sent, "function_form")[0]["userId"] == "user-8"


def test_product_and_affiliate_helpers(tab: Tab) -> None:
    tab.open("/product")
    tab.call(
        "cadlink.trackProductView({id: 'sku-1', name: 'Kettle', price: 39.5, currency: 'EUR'},"
        " 'search')"
    )
    tab.call(
        "cadlink.trackAffiliateClick('sku-2', 'https://partner.example/k?ref=1', 3, 'Buy now')"
    )
    events = tab.site.wait_types("product_view", "affiliate_click")
    assert props(by_type(events, "product_view")[0]) == {
        "productId": "sku-1",
        "productName": "Kettle",
        "price": 39.5,
        "currency": "EUR",
        "source": "search",
    }
    assert props(by_type(events, "affiliate_click")[0]) == {
        "productId": "sku-2",
        "url": "https://partner.example/k?ref=1",
        "position": 3,
        "ctaText": "Buy now",
    }


def test_manual_pageviews_only(tab: Tab) -> None:
    tab.open("/manual", auto="false")
    tab.call("cadlink.pageview({section: 'docs'})")
    tab.call("history.pushState({}, '', '/manual/2')")  # not watched with data-auto=false
    tab.call("cadlink.flush()")
    events = tab.site.wait_types("page_view")
    events = tab.site.settle()
    assert [e["eventType"] for e in events] == ["page_view"]
    assert props(events[0]) == {"section": "docs"}


def test_double_inclusion_is_harmless(tab: Tab) -> None:
    page = tracker_page(tab.server, tab.site)
    tag = re.search(r"<script defer src=[^>]+></script>", page)
    assert tag
    tab.open("/twice", page.replace("</body>", tag.group(0) + "</body>"))
    events = tab.site.wait_types("page_view")
    events = tab.site.settle()
    assert len(by_type(events, "page_view")) == 1
