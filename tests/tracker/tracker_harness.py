"""Browser tests of the tracker: headless Chromium (Debian's) driven by Playwright, against a real
`cadlink serve` subprocess and test pages served from a local HTTP server.

The page server answers for any `*.localhost` host (Chromium resolves them all to the loopback
address), so each test gets a site of its own, `tN.localhost`, and reads back only its events.
t.js is loaded cross-origin from the cadlink server (127.0.0.1), as on a real site.
"""

from __future__ import annotations

import contextlib
import html
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACKER = ROOT / "src" / "cadlink" / "web" / "static" / "t.js"
CHROMIUM = "/usr/bin/chromium"
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
ADMIN_EMAIL = "tracker-tests@cadlink.test"
ADMIN_PASSWORD = "tracker tests password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        sleep(interval)


# --- the cadlink server -----------------------------------------------------------------------


@dataclass
class CadlinkServer:
    """A running `cadlink serve` and an admin session on it."""

    base_url: str
    http: httpx.Client
    log: Path
    token: str = ""
    _sites: Iterator[int] = field(default_factory=itertools.count)

    def login(self) -> None:
        r = self.http.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert r.status_code == 200, r.text
        self.token = r.json()["data"]["accessToken"]

    def _get(self, path: str, **params: Any) -> httpx.Response:
        r = self.http.get(path, params=params, headers={"Authorization": f"Bearer {self.token}"})
        if r.status_code == 401:  # the access token expired during a long run
            self.login()
            r = self.http.get(
                path, params=params, headers={"Authorization": f"Bearer {self.token}"}
            )
        return r

    def create_site(self, respect_dnt: bool = True) -> Site:
        """A new site whose pages live on their own host, `tN.localhost`."""
        host = f"t{next(self._sites)}-{os.getpid()}.localhost"
        r = self.http.post(
            "/api/v1/sites",
            json={"domain": host, "respectDnt": respect_dnt},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert r.status_code == 201, r.text
        return Site(self, r.json()["data"]["id"], host)

    def events(self, site_id: str) -> list[dict[str, Any]]:
        """Every stored event of the site, through `GET /api/v1/analytics/events`."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"siteId": site_id, "limit": 1000, "startDate": "2000-01-01"}
            if cursor:
                params["cursor"] = cursor
            r = self._get("/api/v1/analytics/events", **params)
            assert r.status_code == 200, r.text
            body = r.json()
            out.extend(body["data"])
            cursor = body.get("meta", {}).get("nextCursor")
            if not cursor:
                return out

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class Site:
    server: CadlinkServer
    id: str
    host: str
    # How to pass the time while waiting; a Tab makes it keep Playwright's event loop turning,
    # or route handlers and request events would wait for the test's next Playwright call.
    sleep: Callable[[float], None] = time.sleep

    def events(self) -> list[dict[str, Any]]:
        return self.server.events(self.id)

    def wait(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """Polls the stored events until `predicate(events)` holds; returns them."""
        last: list[dict[str, Any]] = []

        def ready() -> list[dict[str, Any]] | None:
            nonlocal last
            last = self.events()
            return last if predicate(last) else None

        try:
            return list(wait_for(ready, timeout, 0.2, self.sleep))
        except AssertionError:
            summary = [(e.get("eventType"), e.get("pagePath"), e.get("properties")) for e in last]
            raise AssertionError(f"stored events never matched; last seen: {summary}") from None

    def wait_types(self, *types: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Waits until each of `types` is stored (with multiplicity); returns all events."""

        def has_all(events: list[dict[str, Any]]) -> bool:
            stored = [e["eventType"] for e in events]
            return all(stored.count(t) >= types.count(t) for t in set(types))

        return self.wait(has_all, timeout)

    def settle(self, seconds: float = 1.5, limit: float = 20.0) -> list[dict[str, Any]]:
        """The stored events once nothing new has arrived for `seconds`."""
        deadline = time.monotonic() + limit
        events = self.events()
        while True:
            self.sleep(seconds)
            again = self.events()
            if len(again) == len(events):
                return again
            if time.monotonic() > deadline:
                raise AssertionError("events kept arriving")
            events = again


@pytest.fixture(scope="session")
def cadlink_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CadlinkServer]:
    if not TRACKER.exists():
        pytest.fail("t.js is not built: run `npm ci && npm run build:tracker`", pytrace=False)
    cli = Path(sys.executable).parent / "cadlink"
    data = tmp_path_factory.mktemp("cadlink-data")
    env = {
        **os.environ,
        "CADLINK_DATA_DIR": str(data),
        "CADLINK_ENV": "test",
        "CADLINK_SECRET_KEY": "tracker-tests-" + "k" * 40,
        "CADLINK_RATE_LIMIT_PER_MINUTE": "0",
        "CADLINK_LOADER_INTERVAL_SECONDS": "0.05",
        "CADLINK_SITE_REFRESH_SECONDS": "0.2",
    }
    subprocess.run(
        [
            cli,
            "users",
            "create",
            "--role",
            "ADMIN",
            "--json",
            "--email",
            ADMIN_EMAIL,
            "--password",
            ADMIN_PASSWORD,
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    log = data / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base_url, timeout=10) as client:
        server = CadlinkServer(base_url, client, log)

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"cadlink serve exited:\n{server.log_tail()}")
            try:
                return client.get("/api/health").status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_for(up, timeout=60, interval=0.2)
            server.login()
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- the test pages ---------------------------------------------------------------------------


class PageServer:
    """Serves registered pages (and files) for any Host, on one loopback port."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[str, bytes]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/favicon.ico":  # browsers ask for it; a 404 is a console error
                    self.send_response(204)
                    self.end_headers()
                    return
                host = (self.headers.get("Host") or "").split(":")[0]
                found = routes.get((host, urlsplit(self.path).path))
                if found is None:
                    self.send_error(404)
                    return
                ctype, body = found
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(
        self, host: str, path: str, body: str | bytes, ctype: str = "text/html; charset=utf-8"
    ) -> None:
        self.routes[host, path] = (ctype, body.encode() if isinstance(body, str) else body)

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def pages() -> Iterator[PageServer]:
    server = PageServer()
    yield server
    server.close()


STUB = (
    "window.cadlink = window.cadlink || function () {"
    " (cadlink.q = cadlink.q || []).push(arguments); };"
)


def tracker_page(
    server: CadlinkServer,
    site: Site,
    *,
    body: str = "",
    head: str = "",
    title: str = "Tracker test page",
    tall: bool = False,
    **options: Any,
) -> str:
    """A page with the installation tag; `options` become data-* attributes (snake → kebab).

    Batches leave quickly by default (flush interval 200 ms) so tests need not wait.
    """
    attrs = {"flush_interval": 200, **options}
    data = "".join(
        f' data-{k.replace("_", "-")}="{html.escape(str(v), quote=True)}"' for k, v in attrs.items()
    )
    style = "body{font:16px system-ui;margin:2rem}" + (".spacer{height:4000px}" if tall else "")
    spacer = '<div class="spacer"></div><p id="end">end</p>' if tall else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        f"<style>{style}</style>{head}"
        f'<script defer src="{server.base_url}/t.js" data-site="{site.id}"{data}></script>'
        f"</head><body><h1>{html.escape(title)}</h1>{body}{spacer}</body></html>"
    )


# --- the browser ------------------------------------------------------------------------------


# Module scope, as the dashboard tests' browser: one Playwright (sync API) at a time in a
# process. A session-wide one stayed alive in a test worker (xdist) while a dashboard module
# started its own, which Playwright refuses ("Sync API inside the asyncio loop").
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium`", pytrace=False)
    # Headless Chromium says "HeadlessChrome" in its user agent, which the server rightly drops
    # as a bot; the tests play a visitor's ordinary Chromium. It is set for the whole browser,
    # not per context: beacons that outlive their page are sent with the browser's own.
    version = subprocess.run(
        [CHROMIUM, "--version"], capture_output=True, text=True, check=False
    ).stdout
    major = (re.findall(r"\b(\d+)\.\d+\.\d+", version) or ["156"])[0]
    user_agent = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{major}.0.0.0 Safari/537.36"
    )
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--user-agent={user_agent}"]
        )
        yield b
        b.close()


@dataclass
class Tab:
    """One browser context and page, with everything the page said and requested."""

    context: Any
    page: Any
    site: Site
    pages: PageServer
    server: CadlinkServer
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    allowed_console: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)  # host:port a test sends to itself

    def open(self, path: str = "/", html_text: str | None = None, **options: Any) -> None:
        """Serves `html_text` (default: a tracker page with `options`) at `path` and loads it."""
        if html_text is None:
            html_text = tracker_page(self.server, self.site, **options)
        self.serve(path.split("?")[0], html_text)
        self.page.goto(self.pages.url(self.site.host, path))
        self.page.wait_for_function("window.cadlink && window.cadlink.api")

    def serve(self, path: str, body: str | bytes, ctype: str = "text/html; charset=utf-8") -> None:
        self.pages.add(self.site.host, path, body, ctype)

    def use_site(self, respect_dnt: bool) -> None:
        """Switches to a new site with these settings (before the first `open`)."""
        self.site = self.server.create_site(respect_dnt=respect_dnt)
        self.site.sleep = self.sleep

    def __post_init__(self) -> None:
        self.site.sleep = self.sleep

    def sleep(self, seconds: float) -> None:
        """Waits while letting Playwright deliver events and call route handlers: the sync API
        only does so during its own calls, never while the test sleeps."""
        try:
            self.page.wait_for_timeout(seconds * 1000)
        except Exception:  # the page is closed
            time.sleep(seconds)

    def pump(self) -> None:
        self.sleep(0.05)

    def collect_requests(self) -> list[Any]:
        self.pump()
        return [r for r in self.requests if "/api/v1/collect" in r.url]

    def sent_events(self) -> list[dict[str, Any]]:
        """Every event the page posted (as the tracker sent it, before the server saw it)."""
        out: list[dict[str, Any]] = []
        for r in self.collect_requests():
            if r.method == "POST" and r.post_data:
                out.extend(json.loads(r.post_data)["events"])
        return out

    def call(self, expression: str) -> Any:
        return self.page.evaluate(expression)


@pytest.fixture
def tab(browser: Any, cadlink_server: CadlinkServer, pages: PageServer) -> Iterator[Tab]:
    """A fresh context on a fresh site. After the test: the console had no errors (except those
    the test allowed) and no request left the page's host and the cadlink server."""
    site = cadlink_server.create_site()
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    t = Tab(context, page, site, pages, cadlink_server)
    page.on("console", lambda m: t.console.append((m.type, m.text)))
    page.on("pageerror", lambda e: t.errors.append(str(e)))
    context.on("request", lambda r: t.requests.append(r))
    yield t
    t.pump()
    with contextlib.suppress(Exception):  # a test may have closed it already
        context.close()
    # The page server's own *.localhost hosts (tests link between them) and the cadlink server.
    foreign = {urlsplit(r.url).netloc for r in t.requests} - {
        urlsplit(cadlink_server.base_url).netloc,
        *t.allowed_hosts,
    }
    foreign = {h for h in foreign if not h.endswith(f".localhost:{pages.port}")}
    assert not foreign, f"requests to other hosts: {foreign}"
    bad = [
        text
        for kind, text in t.console
        if kind == "error" and not any(re.search(p, text) for p in t.allowed_console)
    ]
    bad += [e for e in t.errors if not any(re.search(p, e) for p in t.allowed_console)]
    assert not bad, f"console errors: {bad}"


def by_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["eventType"] == event_type]


def props(event: dict[str, Any]) -> dict[str, Any]:
    """An event's properties, whether the API returns them as an object or as JSON text."""
    p = event.get("properties") or {}
    return json.loads(p) if isinstance(p, str) else dict(p)
