"""Accounts and sites in the dashboard: site settings, roles, the login lockout.

A server of its own: these tests add sites and accounts that the other modules' pages (which
open the first site) must not see.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from dashboard_harness import Dashboard, log_in, new_context, serve_demo, shoot
from playwright.sync_api import Browser, Page, Request, Route, expect

from server_process import cli

pytestmark = pytest.mark.browser

VIEWER = "viewer@cadlink.local"
VIEWER_PASSWORD = "dashboard-viewer-password"
REPORT_PATHS = ("/", "/realtime", "/funnels", "/products", "/behaviour", "/crm", "/exports")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    with serve_demo(tmp_path_factory, days=7, events=2000) as d:
        yield d


def new_site(dashboard: Dashboard, **fields: Any) -> dict[str, Any]:
    body = {"domain": f"{uuid.uuid4().hex[:8]}.example", "timezone": "UTC", **fields}
    r = httpx.post(
        dashboard.url + "/api/v1/sites",
        json=body,
        headers={"Authorization": "Bearer " + dashboard.token},
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


def site(dashboard: Dashboard, site_id: str) -> dict[str, Any]:
    return dict(dashboard.get(f"/api/v1/sites/{site_id}"))


def test_switching_site_shows_and_saves_the_selected_sites_settings(
    page: Page, dashboard: Dashboard
) -> None:
    """The form kept the first site's name, domain and origins, and Save wrote them over the
    site switched to."""
    other = new_site(
        dashboard, name="Blog", allowedOrigins=["https://www.blog.example"], timezone="UTC"
    )
    first = site(dashboard, dashboard.site_id)
    page.goto(f"{dashboard.url}/settings?site={dashboard.site_id}")
    form = page.locator("[data-testid=edit-site]")
    expect(form.get_by_label("Domain")).to_have_value(first["domain"])
    page.select_option("select[aria-label=Site]", other["id"])
    page.wait_for_url(f"**site={other['id']}*")
    expect(form.get_by_label("Name")).to_have_value("Blog")
    expect(form.get_by_label("Domain")).to_have_value(other["domain"])
    expect(form.get_by_label("Other allowed origins (comma-separated)")).to_have_value(
        "https://www.blog.example"
    )
    expect(form).to_contain_text(other["id"])
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("status")).to_contain_text("Saved")
    assert site(dashboard, other["id"]) == other
    assert site(dashboard, dashboard.site_id) == first
    shoot(page, "settings-switched")


def test_saved_settings_reach_the_site_switcher_and_date_ranges_without_a_reload(
    page: Page, dashboard: Dashboard
) -> None:
    created = new_site(dashboard, name="Before", timezone="UTC")
    # A zone whose date differs from UTC's now: 14 h ahead from 10:00 UTC, 11 h behind before.
    zone = "Pacific/Kiritimati" if datetime.now(UTC).hour >= 10 else "Pacific/Pago_Pago"
    page.goto(f"{dashboard.url}/settings?site={created['id']}")
    page.evaluate("() => { window.notReloaded = true; }")
    form = page.locator("[data-testid=edit-site]")
    form.get_by_label("Name").fill("After")
    form.get_by_label("Time zone").fill(zone)
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("status")).to_contain_text("Saved")
    expect(page.locator("select[aria-label=Site] option:checked")).to_have_text("After")
    page.click("nav.nav >> text=Overview")
    page.select_option("select[aria-label='Date range']", "today")
    today = datetime.now(ZoneInfo(zone)).date().isoformat()
    expect(page.locator("[data-testid=range]")).to_have_text(today)
    assert page.evaluate("() => window.notReloaded") is True


@pytest.fixture(scope="module")
def viewer(dashboard: Dashboard) -> str:
    cli(
        dashboard.server.env,
        *("users", "create", "--email", VIEWER, "--password", VIEWER_PASSWORD),
        *("--role", "VIEWER"),
    )
    return VIEWER


def test_a_viewer_is_told_why_reports_are_closed_and_asks_for_none(
    browser: Browser, dashboard: Dashboard, viewer: str
) -> None:
    """The API gives reports, CRM and exports to ADMIN and ANALYST; a viewer saw "Could not
    load this" with a "Try again" that could never work, and Realtime polled forever."""
    ctx = new_context(browser)
    page = ctx.new_page()
    refused: list[str] = []
    page.on(
        "request",
        lambda r: refused.append(r.url) if "/analytics/" in r.url or "/crm/" in r.url else None,
    )
    log_in(page, dashboard.url, viewer, VIEWER_PASSWORD)
    for path in REPORT_PATHS:
        page.goto(f"{dashboard.url}{path}?site={dashboard.site_id}")
        notice = page.locator("[data-testid=forbidden]")
        expect(notice).to_contain_text("Your account is a viewer")
        expect(notice).to_contain_text("Ask an admin for the analyst role")
        expect(page.get_by_role("button", name="Try again")).to_have_count(0)
        expect(page.locator("select[aria-label='Date range']")).to_have_count(0)
        if path == "/":
            shoot(page, "viewer-overview")
    page.goto(f"{dashboard.url}/realtime?site={dashboard.site_id}")
    page.wait_for_timeout(6000)  # longer than the realtime page's 5 s poll
    assert refused == []
    # Settings: the snippet and the site, read-only.
    page.goto(f"{dashboard.url}/settings?site={dashboard.site_id}")
    snippet = dashboard.get(f"/api/v1/sites/{dashboard.site_id}/snippet")["snippet"]
    expect(page.locator("[data-testid=snippet]")).to_have_text(snippet)
    details = page.locator("[data-testid=site-details]")
    expect(details).to_contain_text("Only administrators can change sites")
    expect(details).to_contain_text(site(dashboard, dashboard.site_id)["domain"])
    expect(page.locator("[data-testid=edit-site]")).to_have_count(0)
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    expect(page.get_by_role("button", name="Add site")).to_have_count(0)
    shoot(page, "viewer-settings")
    ctx.close()


def _refuse(route: Route) -> None:
    body = {"success": False, "error": {"code": "forbidden", "message": "this needs a role"}}
    route.fulfill(status=403, content_type="application/json", body=json.dumps(body))


def test_realtime_stops_polling_and_streaming_after_a_403(page: Page, dashboard: Dashboard) -> None:
    """A role taken away after the token was issued: the server refuses what the token's role
    promised. The page says why and stops, instead of asking every 5 s."""
    asked: list[str] = []

    def count(request: Request) -> None:
        if "/analytics/realtime" in request.url or "/analytics/live" in request.url:
            asked.append(request.url.split("?")[0].rsplit("/", 1)[1])

    page.on("request", count)
    page.route("**/api/v1/analytics/realtime*", _refuse)
    page.route("**/api/v1/analytics/live*", _refuse)
    page.goto(f"{dashboard.url}/realtime?site={dashboard.site_id}")
    page.wait_for_timeout(7000)  # a poll (5 s) and two reconnects (2 s, 4 s) would have come
    assert sorted(asked) == ["live", "realtime"]
    expect(page.locator("[data-testid=forbidden]")).to_be_visible()
    expect(page.get_by_role("button", name="Try again")).to_have_count(0)
    expect(page.locator("[data-testid=live-status]")).to_have_text("Stopped")
    shoot(page, "realtime-refused")


def test_login_lockout_says_how_long_to_wait(browser: Browser, dashboard: Dashboard) -> None:
    """The page said "Wait a minute" whatever the server's Retry-After (15 minutes and more)."""
    ctx = new_context(browser)
    page = ctx.new_page()
    wait = {"seconds": 840}

    def locked(route: Route) -> None:
        seconds = wait["seconds"]
        message = f"too many failed logins; try again in {seconds} seconds"
        route.fulfill(
            status=429,
            headers={"Retry-After": str(seconds), "Content-Type": "application/json"},
            body=json.dumps(
                {"success": False, "error": {"code": "too_many_attempts", "message": message}}
            ),
        )

    page.route("**/api/v1/auth/login", locked)
    page.goto(dashboard.url + "/login")
    page.fill("input[name=email]", "someone@cadlink.local")
    page.fill("input[name=password]", "a wrong password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("Too many attempts. Try again in 14 minutes.")
    shoot(page, "login-lockout")
    wait["seconds"] = 42
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("Too many attempts. Try again in 42 seconds.")
    ctx.close()
