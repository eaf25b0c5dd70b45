"""The dashboard in headless Chromium against a real server with demo history.

Each test checks what a person sees against what the API answers for the same view, and saves
a screenshot of the page to build/screenshots/ (`make screenshots`: docs/screenshots/).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
from datetime import datetime
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import httpx
import pyarrow.parquet as pq
import pytest
from dashboard_harness import (
    EMAIL,
    UA,
    Dashboard,
    eventually,
    log_in,
    metric,
    new_context,
    shoot,
)
from playwright.sync_api import Browser, Page, Route, expect

pytestmark = pytest.mark.browser

CARDS = ("visitors", "pageViews", "sessions", "viewsPerSession", "bounceRate", "avgSessionDuration")


def overview_matches_api(page: Page, dashboard: Dashboard, filters: str | None = None) -> None:
    params = {"filters": filters} if filters else {}
    expected = dashboard.get("/api/v1/analytics/dashboard", **params)["summary"]

    def check() -> None:
        for name in CARDS:
            assert metric(page, name) == pytest.approx(expected[name]), name

    eventually(check)


def wait_idle(page: Page) -> None:
    page.wait_for_selector(".refreshing", state="detached")
    page.wait_for_selector(".spinner", state="detached")


def _equal(a: object, b: object) -> None:
    assert a == b


def test_login_page_then_overview_numbers_equal_the_api(
    browser: Browser, dashboard: Dashboard
) -> None:
    ctx = new_context(browser)
    page = ctx.new_page()
    page.goto(dashboard.url + "/")
    page.wait_for_url("**/login*")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("do not match")
    shoot(page, "login")
    log_in(page, dashboard.url)
    page.wait_for_selector('[data-metric="visitors"]')
    wait_idle(page)
    overview_matches_api(page, dashboard)
    # The demo fills exactly the last 30 days: nothing to compare with, so no card claims
    # better or worse (bounce rate read green "new": lower is better there). A rate with
    # nothing to measure is null (no sessions before), a count 0.
    previous = dashboard.get("/api/v1/analytics/dashboard")["summary"]["previous"]
    for name in CARDS:
        assert previous[name] in (0, None), name
        delta = page.locator(f'[data-metric="{name}"] .card-delta')
        expect(delta).to_have_text("new")
        expect(delta).to_have_class("card-delta flat")
    assert parse_qs(urlparse(page.url).query)["site"] == [dashboard.site_id]
    # The chart drew, and the breakdown panels show the API's top rows.
    assert page.locator(".chart canvas").count() >= 1
    top_page = dashboard.get("/api/v1/analytics/dashboard")["breakdowns"]["page"][0]["value"]
    expect(page.locator('[data-panel="pages"] .barlist-row').first).to_contain_text(top_page)
    shoot(page, "overview")
    refresh = page.evaluate("() => JSON.parse(localStorage.getItem('cadlink.auth')).refreshToken")
    page.click("text=Log out")
    page.wait_for_url("**/login*")
    assert page.evaluate("() => localStorage.getItem('cadlink.auth')") is None
    # The server ended the session: a copy of the refresh token no longer works.
    r = httpx.post(f"{dashboard.url}/api/v1/auth/refresh", json={"refreshToken": refresh})
    assert r.status_code == 401
    ctx.close()


def test_clicking_a_breakdown_row_filters_the_page_and_the_url(
    page: Page, dashboard: Dashboard
) -> None:
    page.goto(f"{dashboard.url}/?site={dashboard.site_id}")
    row = page.locator('[data-panel="sources"] .barlist-row').first
    source = row.get_attribute("data-row")
    assert source
    before = metric(page, "visitors")
    row.locator("button").click()
    page.wait_for_url("**f=source*")
    assert parse_qs(urlparse(page.url).query)["f"] == [f"source|is|{source}"]
    expect(page.locator(".chip")).to_contain_text(source)
    wait_idle(page)
    overview_matches_api(page, dashboard, json.dumps([["source", "is", source]]))
    assert metric(page, "visitors") < before
    # Every panel is filtered: the sources panel now shows only that source.
    expect(page.locator('[data-panel="sources"] .barlist-row')).to_have_count(1)
    shoot(page, "overview-filtered")
    # The URL alone restores the view.
    page.reload()
    expect(page.locator(".chip")).to_contain_text(source)
    page.get_by_role("button", name=f"Remove filter Source {source}").click()
    expect(page.locator(".chip")).to_have_count(0)
    assert "f=" not in page.url


def test_date_range_preset_is_in_the_url(page: Page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/?site={dashboard.site_id}")
    page.wait_for_selector('[data-metric="visitors"]')
    page.select_option("select[aria-label='Date range']", "7d")
    page.wait_for_url("**period=7d*")
    start, end = page.inner_text("[data-testid=range]").split(" \u2013 ")
    expected = dashboard.get("/api/v1/analytics/dashboard", startDate=start, endDate=end)
    eventually(lambda: _equal(metric(page, "pageViews"), expected["summary"]["pageViews"]))
    # Today so far is the last bucket, drawn dashed (it read as a drop in traffic)...
    days = len(expected["timeseries"])
    expect(page.locator(".chart")).to_have_attribute("data-partial", str(days - 1))
    # ...a range that ended has none, and today by the hour stops at the hour now.
    page.select_option("select[aria-label='Date range']", "yesterday")
    page.wait_for_url("**period=yesterday*")
    expect(page.locator(".chart")).to_have_attribute("data-partial", "-1")
    page.select_option("select[aria-label='Date range']", "today")
    page.wait_for_url("**period=today*")
    zone = ZoneInfo(dashboard.get(f"/api/v1/sites/{dashboard.site_id}")["timezone"])
    today = datetime.now(zone).date().isoformat()
    hour = datetime.now(zone).hour
    visits = dashboard.get("/api/v1/analytics/dashboard", startDate=today, endDate=today)
    if visits["summary"]["pageViews"]:  # else the page says "No visits in this period yet"
        now = re.compile(f"^({hour}|{(hour + 1) % 24})$")  # the hour may turn meanwhile
        expect(page.locator(".chart")).to_have_attribute("data-partial", now)


def test_funnel_is_built_and_shows_the_api_counts(page: Page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/funnels?site={dashboard.site_id}")
    page.wait_for_selector("[data-testid=funnel-step]")
    # Build: replace step 3 with "product_click", add a 4th step "affiliate_click".
    page.fill("input[aria-label='Step 3 event type']", "product_click")
    page.click("text=+ Add step")
    page.fill("input[aria-label='Step 4 event type']", "affiliate_click")
    page.select_option("select[aria-label='Conversion window']", "7d")
    page.click("text=Show funnel")
    steps = "page_view,product_view,product_click,affiliate_click"
    page.wait_for_url("**window=7d*")
    assert parse_qs(urlparse(page.url).query)["steps"] == [steps]
    expect(page.locator("[data-testid=funnel-step]")).to_have_count(4)
    expected = [
        s["visitors"]
        for s in dashboard.get("/api/v1/analytics/funnel", steps=steps, window="7d")["steps"]
    ]

    def shown() -> list[int]:
        return [
            int(v)
            for v in page.locator("[data-testid=funnel-step]").evaluate_all(
                "els => els.map(e => e.dataset.visitors)"
            )
        ]

    eventually(lambda: _equal(shown(), expected))
    assert expected[0] > expected[-1] > 0
    # The window as the user picked it (it read "168h").
    expect(page.locator("[data-testid=funnel] p").first).to_contain_text("within 7 days.")
    shoot(page, "funnels")


def test_crm_users_and_user_detail(page: Page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/crm?site={dashboard.site_id}")
    summary = dashboard.get("/api/v1/crm/summary")
    page.wait_for_selector('[data-metric="totalUsers"]')
    eventually(lambda: _equal(metric(page, "totalUsers"), summary["totalUsers"]))
    # The 30 days end today: today so far is dashed, not a drop.
    days = len(summary["usersPerDay"])
    expect(page.locator(".chart")).to_have_attribute("data-partial", str(days - 1))
    assert metric(page, "newThisWeek") == summary["newThisWeek"]
    first = page.locator(".table-wrap tbody tr").first
    expect(first).to_be_visible()
    # Each listed buyer's revenue in their currency.
    listed = dashboard.get("/api/v1/crm/users", limit=50)
    buyer = next(u for u in listed if u["revenueByCurrency"])
    row = page.locator(".table-wrap tbody tr", has_text=buyer["userId"])
    expect(row).to_contain_text(buyer["revenueByCurrency"][0]["currency"])
    shoot(page, "crm")
    # Segment filter: the table shows the API's users of that segment.
    segment = max(summary["segments"], key=lambda k: summary["segments"][k])
    page.get_by_role("tab", name=segment.capitalize()).click()
    page.wait_for_url(f"**segment={segment}*")
    users = dashboard.get("/api/v1/crm/users", segment=segment, limit=50)
    expect(page.locator(".table-wrap tbody tr")).to_have_count(len(users))
    user_id = users[0]["userId"]
    page.locator(".table-wrap tbody tr").first.click()
    page.wait_for_url("**user=*")
    detail = dashboard.get(f"/api/v1/crm/users/{user_id}")
    page.wait_for_selector("[data-testid=user-detail] .session")
    expect(page.locator("[data-testid=user-detail]")).to_contain_text(user_id)
    expect(page.locator("[data-testid=user-detail] .session")).to_have_count(
        len(detail["sessions"])
    )
    first_path = next(p["path"] for s in detail["sessions"] for p in s["pages"])
    expect(page.locator("[data-testid=user-detail]")).to_contain_text(first_path)
    # A buyer: their revenue in the main currency, and on the session that bought.
    buyer = next(
        d
        for u in dashboard.get("/api/v1/crm/users", limit=200)
        if (d := dashboard.get(f"/api/v1/crm/users/{u['userId']}"))["revenueByCurrency"]
    )
    main = max(buyer["revenueByCurrency"], key=lambda c: c["revenue"])
    page.goto(f"{dashboard.url}/crm?site={dashboard.site_id}&user={buyer['userId']}")
    card = page.locator('[data-testid=user-detail] [data-metric="revenue"]')
    expect(card.locator(".card-value")).to_contain_text(main["currency"])
    assert metric(page, "revenue") == main["revenue"]
    badges = page.locator("[data-testid=user-detail] .session .badge.good")
    expect(badges.filter(has_text=main["currency"]).first).to_be_visible()
    shoot(page, "crm-user")


def test_exports_download_files_that_parse(page: Page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/exports?site={dashboard.site_id}")
    page.wait_for_selector("[data-export=summary]")
    shoot(page, "exports")
    with page.expect_download() as info:
        page.click("[data-export=summary] [data-format=csv]")
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text())))
    expected = dashboard.get("/api/v1/analytics/dashboard")["summary"]
    assert int(rows[0]["pageViews"]) == expected["pageViews"]
    with page.expect_download() as info:
        page.click("[data-export=timeseries] [data-format=json]")
    lines = [json.loads(x) for x in info.value.path().read_text().splitlines() if x.strip()]
    assert sum(r["pageViews"] for r in lines) == expected["pageViews"]
    with page.expect_download() as info:
        page.click("[data-export=sessions] [data-format=parquet]")
    assert info.value.suggested_filename.endswith(".parquet")
    assert pq.read_table(info.value.path()).num_rows == expected["sessions"]


def test_realtime_counter_changes_within_a_second_of_an_event(
    page: Page, dashboard: Dashboard
) -> None:
    page.goto(f"{dashboard.url}/realtime?site={dashboard.site_id}")
    expect(page.locator("[data-testid=live-status]")).to_have_text("Live")
    page.wait_for_selector('[data-metric="pageViewsLastMinute"]')
    before = metric(page, "pageViewsLastMinute")
    event = {
        "siteId": dashboard.site_id,
        "eventType": "page_view",
        "eventId": uuid.uuid4().hex,
        "timestamp": int(time.time() * 1000),
        "visitorId": "dashboard-test-visitor",
        "consent": True,
        "pagePath": "/live-test",
        "pageUrl": "https://shop.example/live-test",
    }
    sent = time.monotonic()
    r = httpx.post(dashboard.url + "/api/v1/collect", json=event, headers={"User-Agent": UA})
    assert r.status_code == 204, r.text
    page.wait_for_function(
        "before => Number(document.querySelector('[data-metric=pageViewsLastMinute]')"
        ".dataset.value) > before",
        arg=before,
        timeout=5000,
    )
    elapsed = time.monotonic() - sent
    expect(page.locator(".table-wrap tbody")).to_contain_text("/live-test")
    shoot(page, "realtime")
    assert elapsed < 1.0, f"the counter changed {elapsed:.2f} s after the event"


def test_products_behaviour_and_settings_pages(page: Page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/products?site={dashboard.site_id}")
    top = dashboard.get("/api/v1/analytics/products/top", limit=20)
    page.wait_for_selector(".table-wrap tbody tr")
    expect(page.locator(".table-wrap tbody tr").first).to_contain_text(top[0]["name"])
    # Revenue per currency, the largest first: never one sum across currencies.
    sold = next(p for p in top if len(p["revenueByCurrency"]) > 1)
    row = page.locator(".table-wrap tbody tr", has_text=sold["name"]).first
    cell = row.locator("td").last
    by = sorted(sold["revenueByCurrency"], key=lambda c: -c["revenue"])
    expect(cell).to_contain_text(by[0]["currency"])
    assert cell.inner_text().index(by[0]["currency"]) < cell.inner_text().index(by[1]["currency"])
    shoot(page, "products")
    for tab in ("search", "engagement", "vitals", "errors", "goals", "experiments"):
        page.goto(f"{dashboard.url}/behaviour?site={dashboard.site_id}&tab={tab}")
        page.wait_for_selector(".panel")
        wait_idle(page)
        assert page.locator(".state.error").count() == 0, tab
        if tab == "goals":  # revenue in the main currency, the others beneath, never added up
            by = dashboard.get("/api/v1/analytics/goals")["summary"]["revenueByCurrency"]
            main, *rest = sorted(by, key=lambda c: -c["revenue"])
            card = page.locator('[data-metric="revenue"]')
            expect(card.locator(".card-value")).to_contain_text(main["currency"])
            assert metric(page, "revenue") == main["revenue"]
            for other in rest:
                expect(card.locator(".card-delta")).to_contain_text(other["currency"])
        if tab in ("search", "engagement", "experiments"):
            shoot(page, f"behaviour-{tab}")
    page.goto(f"{dashboard.url}/settings?site={dashboard.site_id}")
    snippet = dashboard.get(f"/api/v1/sites/{dashboard.site_id}/snippet")["snippet"]
    expect(page.locator("[data-testid=snippet]")).to_have_text(snippet)
    shoot(page, "settings")
    # editing the site goes through the API (and only the name changes here, so the other
    # tests sharing this server keep their time zone)
    form = page.locator("[data-testid=edit-site]")
    old_name = dashboard.get(f"/api/v1/sites/{dashboard.site_id}")["name"]
    form.get_by_label("Name").fill("Renamed shop")
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("status")).to_contain_text("Saved")
    assert dashboard.get(f"/api/v1/sites/{dashboard.site_id}")["name"] == "Renamed shop"
    form.get_by_label("Name").fill(old_name)
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("status")).to_contain_text("Saved")


def test_expired_access_token_is_refreshed_and_a_dead_session_goes_to_login(
    browser: Browser, dashboard: Dashboard
) -> None:
    ctx = new_context(browser)
    page = ctx.new_page()
    log_in(page, dashboard.url)
    # A stale access token (still "valid" by the clock): the API says 401, the app refreshes.
    page.evaluate(
        """() => { const t = JSON.parse(localStorage.getItem('cadlink.auth'));
        t.accessToken = 'expired.token.value'; t.expiresAt = Date.now() + 3600e3;
        localStorage.setItem('cadlink.auth', JSON.stringify(t)); }"""
    )
    page.goto(f"{dashboard.url}/?site={dashboard.site_id}")
    page.wait_for_selector('[data-metric="visitors"]')
    # A revoked refresh token too: back to the login page, which says why.
    page.evaluate(
        """() => { localStorage.setItem('cadlink.auth', JSON.stringify({accessToken: 'x',
        refreshToken: 'revoked-refresh-token', expiresAt: 0})); }"""
    )
    page.goto(f"{dashboard.url}/crm?site={dashboard.site_id}")
    page.wait_for_url("**/login*")
    expect(page.locator(".notice")).to_contain_text("session has ended")
    assert "next=%2Fcrm" in page.url
    ctx.close()


def test_two_tabs_refreshing_with_one_token_both_stay_signed_in(
    browser: Browser, dashboard: Dashboard
) -> None:
    """Tab B's refresh, sent with the token both tabs read, reaches the server just after tab A
    rotated it: B is refused without ending the session, and takes the pair A stored. (Before,
    the server took it for a stolen token and signed both tabs out.)"""
    ctx = new_context(browser)
    a = ctx.new_page()
    log_in(a, dashboard.url)
    a.wait_for_selector('[data-metric="visitors"]')
    stale = """() => { const t = JSON.parse(localStorage.getItem('cadlink.auth'));
        t.accessToken = 'expired.token.value'; t.expiresAt = Date.now() + 3600e3;
        localStorage.setItem('cadlink.auth', JSON.stringify(t)); }"""
    a.evaluate(stale)
    held: list[Route] = []
    b = ctx.new_page()
    b.route("**/api/v1/auth/refresh", lambda route: held.append(route))  # B's waits here
    b.goto(f"{dashboard.url}/?site={dashboard.site_id}")
    deadline = time.monotonic() + 15
    while not held:
        assert time.monotonic() < deadline, "tab B never asked for a refresh"
        b.wait_for_timeout(50)
    a.goto(f"{dashboard.url}/?site={dashboard.site_id}")  # A refreshes with the same token
    a.wait_for_selector('[data-metric="visitors"]')
    held[0].continue_()  # now B's, with the token A has just used
    b.wait_for_selector('[data-metric="visitors"]')
    assert "/login" not in b.url
    a.evaluate(stale)  # the session lives on: the pair A stored refreshes again
    a.reload()
    a.wait_for_selector('[data-metric="visitors"]')
    assert "/login" not in a.url
    ctx.close()


def test_a_refresh_whose_answer_was_lost_does_not_end_the_session(
    browser: Browser, dashboard: Dashboard
) -> None:
    """The tab moved on while its refresh was in flight: the server rotated the token, the
    page never stored the new pair, and the next page refreshed with the rotated token. That
    was refused and signed the user out (a CI failure of the test above, whose first page was
    still loading when the test planted its stale token)."""
    ctx = new_context(browser)
    page = ctx.new_page()
    log_in(page, dashboard.url)
    page.wait_for_selector('[data-metric="visitors"]')
    held: list[Route] = []

    def answer_lost(route: Route) -> None:
        route.fetch()  # the server rotates the token; the page never hears back
        held.append(route)

    page.route("**/api/v1/auth/refresh", answer_lost)
    page.evaluate(
        """() => { const t = JSON.parse(localStorage.getItem('cadlink.auth'));
        t.accessToken = 'expired.token.value'; t.expiresAt = Date.now() + 3600e3;
        localStorage.setItem('cadlink.auth', JSON.stringify(t)); }"""
    )
    page.click("nav.nav >> text=Funnels")  # its requests carry the stale token: a refresh
    deadline = time.monotonic() + 15
    while not held:
        assert time.monotonic() < deadline, "the page never asked for a refresh"
        page.wait_for_timeout(50)
    page.unroute("**/api/v1/auth/refresh")
    page.goto(f"{dashboard.url}/?site={dashboard.site_id}")  # the tab moves on
    page.wait_for_selector('[data-metric="visitors"]')
    assert "/login" not in page.url
    ctx.close()


def test_phone_width_and_dark_mode(browser: Browser, dashboard: Dashboard) -> None:
    for name, options in (
        ("overview-phone", {"viewport": {"width": 390, "height": 844}, "is_mobile": True}),
        ("overview-dark", {"color_scheme": "dark"}),
    ):
        ctx = browser.new_context(**options)  # type: ignore[arg-type]
        page = ctx.new_page()
        log_in(page, dashboard.url)
        page.wait_for_selector('[data-metric="visitors"]')
        wait_idle(page)
        page.wait_for_selector(".chart canvas")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= page.evaluate("window.innerWidth") + 1, "horizontal scrolling"
        shoot(page, name)
        ctx.close()
