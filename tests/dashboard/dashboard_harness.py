"""A real `cadlink serve` with demo history, and a headless Chromium logged in to its dashboard.

One server and one browser per module: generating the demo history and starting the server
cost more than all the page checks together.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from server_process import Server, base_env, cli

ROOT = Path(__file__).resolve().parents[2]
# A test run saves what each page looked like under build/ (gitignored), for a person to look
# at; `make screenshots` points this at docs/screenshots to refresh the documentation's.
SCREENSHOTS = Path(os.environ.get("CADLINK_TEST_SCREENSHOTS_DIR") or ROOT / "build" / "screenshots")
APP_INDEX = ROOT / "src" / "cadlink" / "web" / "static" / "app" / "index.html"
CHROMIUM = os.environ.get("CADLINK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EMAIL = "admin@cadlink.local"
PASSWORD = "dashboard-test-password"
UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


@dataclass
class Dashboard:
    server: Server
    site_id: str
    token: str

    @property
    def url(self) -> str:
        return self.server.url

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(
            self.url + path,
            params={"siteId": self.site_id, **params},
            headers={"Authorization": "Bearer " + self.token},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json()["data"]


@contextmanager
def serve_demo(
    tmp_path_factory: pytest.TempPathFactory, *, days: int = 30, events: int = 20000
) -> Iterator[Dashboard]:
    """A server with the admin account and one site ("Demo shop", UTC) with `days` of demo
    history; a module needing its own (sites or accounts the others must not see) starts one."""
    if not APP_INDEX.exists():
        pytest.fail("the dashboard is not built: run `npm run build:dashboard`", pytrace=False)
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    data_dir = tmp_path_factory.mktemp("dashboard") / "data"
    env = base_env(data_dir)
    cli(env, "init", "--ensure-admin", EMAIL, "--admin-password", PASSWORD)
    site = cli(env, "sites", "create", "--domain", "shop.example", "--name", "Demo shop")
    cli(env, "demo", "--site", site["id"], "--days", str(days), "--events", str(events))
    server = Server(data_dir, env)
    server.start(timeout=180)  # a busy CI machine (or a parallel run) takes more than a minute
    try:
        token = server.login(EMAIL, PASSWORD)["Authorization"].split(" ", 1)[1]
        yield Dashboard(server, site["id"], token)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    with serve_demo(tmp_path_factory) as d:
        yield d


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def new_context(browser: Browser, **options: Any) -> BrowserContext:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    ctx.set_default_timeout(15_000)
    return ctx


def log_in(page: Page, base: str, email: str = EMAIL, password: str = PASSWORD) -> None:
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("nav.nav")


@pytest.fixture(scope="module")
def context(browser: Browser, dashboard: Dashboard) -> Iterator[BrowserContext]:
    ctx = new_context(browser, accept_downloads=True)
    page = ctx.new_page()
    log_in(page, dashboard.url)
    page.close()
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield pg
    finally:
        pg.close()
    assert not errors, errors


def shoot(page: Page, name: str) -> None:
    """Save a full-page screenshot to SCREENSHOTS (for a person to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def eventually(check: Callable[[], None], timeout: float = 10.0) -> None:
    """Retry `check` until it stops raising AssertionError (the page re-renders after fetches)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def metric(page: Page, name: str) -> float:
    raw = page.get_attribute(f'[data-metric="{name}"]', "data-value")
    assert raw is not None, name
    return float(json.loads(raw))
