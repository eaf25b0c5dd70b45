"""data-track clicks, outbound links, forms, JavaScript errors and web vitals."""

from __future__ import annotations

import pytest
from tracker_harness import Tab, by_type, props, tracker_page

pytestmark = pytest.mark.browser


def test_data_track_clicks_with_camel_case_properties(tab: Tab) -> None:
    body = (
        '<button id="buy" data-track="add_to_cart" data-track-product-id="sku-42"'
        ' data-track-list-position="3" data-track-x="y"><span id="inner">Add</span></button>'
        '<div data-track="promo click!"><a id="promo" href="#p">Promo</a></div>'
        '<button id="plain">No tracking</button>'
    )
    tab.open("/shop", body=body)
    tab.page.click("#inner")  # a click inside the element counts
    tab.page.click("#promo")
    tab.page.click("#plain")
    events = tab.site.wait_types("add_to_cart", "promo_click_")
    assert props(by_type(events, "add_to_cart")[0]) == {
        "productId": "sku-42",
        "listPosition": "3",
        "x": "y",
    }
    # The name is made acceptable to the server instead of failing the batch.
    assert props(by_type(events, "promo_click_")[0]) == {}
    types = {e["eventType"] for e in tab.site.settle()}
    assert types == {"session_start", "page_view", "add_to_cart", "promo_click_"}


def test_outbound_link_click_arrives_as_the_page_unloads(tab: Tab) -> None:
    other = f"other-{tab.site.host}"
    tab.pages.add(other, "/", "<!doctype html><title>Elsewhere</title><p>elsewhere</p>")
    url = tab.pages.url(other, "/")
    body = f'<a id="out" href="{url}">Partner</a> <a id="in" href="/inside">Inside</a>'
    tab.open("/links", body=body, flush_interval=60_000, batch_size=100)
    tab.page.click("#out")
    tab.page.wait_for_url(url)
    events = tab.site.wait_types("outbound_click", "page_exit")
    assert props(by_type(events, "outbound_click")[0]) == {"url": url}
    kinds = {r.resource_type for r in tab.collect_requests()}
    assert "fetch" not in kinds, kinds  # the batch left as a beacon


def test_form_start_submit_and_abandon(tab: Tab) -> None:
    body = (
        '<form id="signup" onsubmit="event.preventDefault()">'
        '<input name="email"><input name="id"><button id="send">Send</button></form>'
        '<form name="search" action="/s"><input id="q" name="q"></form>'
        '<form><input id="anon"></form>'
    )
    tab.open("/forms", body=body)
    tab.page.fill("input[name=email]", "someone@example.com")
    tab.page.fill("input[name=id]", "secret")
    tab.page.click("#send")
    tab.page.fill("#q", "kettle")  # started, never submitted
    tab.page.focus("#anon")
    tab.call("history.pushState({}, '', '/forms/next')")  # ends the page view
    events = tab.site.wait_types("form_start", "form_start", "form_start", "form_submit")
    events = tab.site.wait_types("form_abandon", "form_abandon")
    starts = sorted(props(e)["formId"] for e in by_type(events, "form_start"))
    assert starts == ["form2", "search", "signup"]
    assert [props(e)["formId"] for e in by_type(events, "form_submit")] == ["signup"]
    abandons = by_type(events, "form_abandon")
    assert sorted(props(e)["formId"] for e in abandons) == ["form2", "search"]
    assert {e["pagePath"] for e in abandons} == {"/forms"}
    # Field values are never sent.
    assert not [r for r in tab.collect_requests() if "someone@example.com" in (r.post_data or "")]


def test_errors_are_reported_once_and_capped(tab: Tab) -> None:
    tab.allowed_console += ["boom", "rejected", "error number"]
    tab.open("/errors")
    for _ in range(3):
        tab.call("setTimeout(() => { throw new Error('boom') }, 0)")
    tab.call("void Promise.reject(new Error('rejected'))")
    tab.call(
        "for (let i = 0; i < 15; i++) setTimeout(() => { throw new Error('error number ' + i) })"
    )
    tab.page.wait_for_timeout(300)
    tab.call("cadlink.flush()")
    events = tab.site.wait(lambda ev: len(by_type(ev, "js_error")) >= 10)
    errors = [props(e) for e in by_type(tab.site.settle(), "js_error")]
    assert len(errors) == 10  # at most 10 distinct errors a page
    messages = [e["message"] for e in errors]
    assert messages.count("Uncaught Error: boom") == 1
    rejected = [e for e in errors if e.get("kind") == "unhandledrejection"]
    assert rejected and rejected[0]["message"] == "rejected"
    boom = next(e for e in errors if e["message"] == "Uncaught Error: boom")
    assert "stack" in boom and boom["line"] >= 1
    assert events


def test_web_vitals_when_the_page_is_left(tab: Tab) -> None:
    slow_click = "const t = performance.now(); while (performance.now() - t < 60) {}"
    body = (
        '<p id="hero" style="font-size:48px">Largest paint</p>'
        f'<button id="b" onclick="{slow_click}">Click</button>'
    )
    tab.open("/vitals", body=body)
    tab.page.click("#b")
    tab.page.wait_for_timeout(200)
    tab.page.goto("about:blank")
    events = tab.site.wait_types("web_vitals")
    vitals = props(by_type(events, "web_vitals")[0])
    assert by_type(events, "web_vitals")[0]["pagePath"] == "/vitals"
    assert vitals["ttfb"] >= 0
    assert vitals["fcp"] > 0
    assert vitals["lcp"] >= vitals["fcp"]
    assert vitals["inp"] >= 50  # the slow click handler
    assert len(by_type(events, "web_vitals")) == 1


def test_page_works_with_no_site_and_bad_input(tab: Tab) -> None:
    # Robustness: odd calls never throw into the page.
    tab.open("/odd", tracker_page(tab.server, tab.site))
    tab.call("cadlink.track('x'.repeat(200), {nested: {a: [1, 2]}})")
    tab.call("cadlink('no_such_method')")
    tab.call("cadlink.identify(null)")
    tab.call("cadlink.consent()")
    tab.call("cadlink.trackProductView(null)")
    tab.call("cadlink.flush()")
    events = tab.site.wait(lambda ev: any(len(e["eventType"]) == 64 for e in ev))
    long_one = next(e for e in events if len(e["eventType"]) == 64)
    assert props(long_one) == {"nested": {"a": [1, 2]}}
