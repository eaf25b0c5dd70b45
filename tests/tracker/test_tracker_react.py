"""The React binding (tracker/react.js) in a real page, with React and ReactDOM from npm."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from tracker_harness import ROOT, Tab, by_type, props

pytestmark = pytest.mark.browser

APP = """
import { createElement as h, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { AnalyticsProvider, useAnalytics } from "./tracker/react.js";

function Product() {
  const { track, trackProductView } = useAnalytics();
  // Runs before t.js has loaded: the call is queued and replayed.
  useEffect(() => { trackProductView({ id: "sku-9", name: "Mug" }, "react"); }, []);
  return h("button", { id: "buy", onClick: () => track("react_click", { from: "hook" }) }, "Buy");
}

function App() {
  const [user, setUser] = useState(null);
  return h(AnalyticsProvider,
    { src: window.TRACKER_SRC, siteId: window.SITE_ID, options: { flushInterval: 200 },
      consent: { analytics: true }, userId: user },
    h(Product),
    h("button", { id: "login", onClick: () => setUser("react-user") }, "Log in"));
}

createRoot(document.getElementById("root")).render(h(App));
"""


DEFINE = '--define:process.env.NODE_ENV="production"'


@pytest.fixture(scope="module")
def react_bundle() -> bytes:
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists() or shutil.which("node") is None:
        pytest.fail("node_modules missing: run `npm ci`", pytrace=False)
    out = subprocess.run(
        [esbuild, "--bundle", "--format=iife", "--minify", "--loader=js", DEFINE],
        input=APP.encode(),
        cwd=ROOT,  # resolves ./tracker/react.js and react from the repository's node_modules
        capture_output=True,
        check=True,
        timeout=120,
    )
    return out.stdout


def test_provider_and_hook(tab: Tab, react_bundle: bytes) -> None:
    tab.serve("/app.js", react_bundle, "text/javascript")
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>React shop</title></head><body>"
        '<div id="root"></div>'
        f"<script>window.TRACKER_SRC = '{tab.server.base_url}/t.js';"
        f" window.SITE_ID = '{tab.site.id}';</script>"
        '<script src="/app.js"></script></body></html>'
    )
    tab.open("/react", page)
    tab.page.click("#buy")
    tab.page.click("#login")
    tab.page.click("#buy")
    events = tab.site.wait_types(
        "product_view", "page_view", "react_click", "react_click", "identify"
    )
    sent = tab.sent_events()
    view = by_type(sent, "product_view")[0]
    # The provider's consent applied before the child's first effect: it has a visitor id.
    assert view["consent"] is True and view["visitorId"]
    assert props(by_type(events, "product_view")[0]) == {
        "productId": "sku-9",
        "productName": "Mug",
        "source": "react",
    }
    clicks = by_type(sent, "react_click")
    assert "userId" not in clicks[0]
    assert clicks[1]["userId"] == "react-user"
    assert by_type(sent, "identify")[0]["userId"] == "react-user"
    assert tab.call("document.querySelectorAll('script[src$=\"/t.js\"]').length") == 1
