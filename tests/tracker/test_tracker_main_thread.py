"""The tracker costs the page almost nothing: its evaluation and start-up take far less than a
50 ms long task, measured in the browser around an inline copy of the served script."""

from __future__ import annotations

import html

import pytest
from tracker_harness import TRACKER, Tab

pytestmark = pytest.mark.browser


def test_start_up_is_far_below_a_long_task(tab: Tab) -> None:
    code = TRACKER.read_text()
    api = f"{tab.server.base_url}/api/v1/collect"
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>cost</title>"
        "<script>window.__t0 = performance.now()</script>"
        f'<script data-site="{tab.site.id}" data-api="{html.escape(api, quote=True)}">{code}</script>'
        "<script>window.__t1 = performance.now()</script>"
        "</head><body><h1>cost</h1></body></html>"
    )
    # The best of five loads: a loaded CI machine can deschedule the renderer for tens of ms in
    # any one load, which is the machine's cost, not the script's.
    took = []
    for i in range(5):
        tab.open(f"/cost{i}", html_text=page)
        took.append(tab.call("window.__t1 - window.__t0"))
    assert min(took) < 50, f"tracker start-up took {sorted(took)} ms on the main thread"
    tab.site.wait_types("page_view")  # and it did start: the page view arrived
