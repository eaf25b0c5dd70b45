"""Heartbeat (with a short interval), idle detection, hidden pages and scroll depth."""

from __future__ import annotations

import itertools

import pytest
from tracker_harness import Tab, by_type, props, wait_for

pytestmark = pytest.mark.browser

HIDE = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""
SHOW = """() => {
  delete document.visibilityState;
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def test_heartbeat_while_visible_paused_while_hidden(tab: Tab) -> None:
    tab.open("/read", heartbeat_interval=300)
    tab.page.wait_for_timeout(1400)
    hidden_at = tab.call("Date.now()")
    tab.page.evaluate(HIDE)
    tab.page.wait_for_timeout(1200)
    shown_at = tab.call("Date.now()")
    tab.page.evaluate(SHOW)
    tab.page.wait_for_timeout(800)
    tab.page.goto("about:blank")  # ends the heartbeats; the last batch leaves as a beacon

    stored = tab.site.settle()
    beats = sorted(by_type(tab.sent_events(), "heartbeat"), key=lambda e: e["timestamp"])
    before = [b for b in beats if b["timestamp"] <= hidden_at]
    during = [b for b in beats if hidden_at + 50 < b["timestamp"] < shown_at]
    after = [b for b in beats if b["timestamp"] >= shown_at]
    assert len(before) >= 3
    assert during == []
    assert len(after) >= 1
    # Timers jitter on a loaded machine; on average the interval holds.
    gaps = [b["timestamp"] - a["timestamp"] for a, b in itertools.pairwise(before)]
    assert 200 <= sum(gaps) / len(gaps) <= 500, gaps
    # timeOnPage counts visible time only: the hidden 1.2 s are not in it.
    span = beats[-1]["timestamp"] - beats[0]["timestamp"]
    assert props(beats[-1])["timeOnPage"] < span + 300 - 1000
    # Every heartbeat arrived, once. (The stored ones may include one whose beacon body
    # Playwright could not show us as the page unloaded.)
    stored_ids = [e["eventId"] for e in by_type(stored, "heartbeat")]
    assert len(stored_ids) == len(set(stored_ids))
    assert {b["eventId"] for b in beats} <= set(stored_ids)


def test_idle_start_and_end(tab: Tab) -> None:
    tab.open("/idle", heartbeat_interval=200, idle_timeout=700)
    tab.page.wait_for_timeout(1500)  # no input at all: idle after 0.7 s
    tab.page.mouse.move(200, 200)
    tab.page.mouse.move(220, 240)
    tab.page.wait_for_timeout(500)
    events = tab.site.wait_types("idle_start", "idle_end")
    sent = sorted(tab.sent_events(), key=lambda e: e["timestamp"])
    start = by_type(sent, "idle_start")[0]
    end = by_type(sent, "idle_end")[0]
    view = by_type(sent, "page_view")[0]
    # Dated when the idleness began (about the timeout after the last activity, load here).
    assert 500 <= start["timestamp"] - view["timestamp"] <= 1200
    assert props(end)["idleTime"] >= 300
    # No heartbeat while idle; heartbeats again afterwards.
    beats = by_type(sent, "heartbeat")
    assert not [b for b in beats if start["timestamp"] < b["timestamp"] < end["timestamp"]]
    # Heartbeats again after the visitor came back.
    tab.page.mouse.move(250, 260)
    wait_for(
        lambda: any(
            b["timestamp"] > end["timestamp"] for b in by_type(tab.sent_events(), "heartbeat")
        ),
        sleep=tab.sleep,
    )
    assert len(by_type(events, "idle_end")) >= 1


def test_scroll_milestones_once_each_per_page_view(tab: Tab) -> None:
    tab.open("/long", tall=True)
    height = tab.call("document.documentElement.scrollHeight - innerHeight")
    for fraction in (0.1, 0.35, 0.3, 0.7, 0.2, 1.0, 0.5, 1.0):
        tab.call(f"window.scrollTo(0, {int(height * fraction)})")
        tab.page.wait_for_timeout(80)
    events = tab.site.wait(lambda ev: len(by_type(ev, "scroll_depth")) >= 5)
    depths = sorted(props(e)["depth"] for e in by_type(events, "scroll_depth"))
    assert depths == [25, 50, 75, 90, 100]

    # A new (SPA) page view starts the milestones again.
    tab.call("window.scrollTo(0, 0)")
    tab.call("history.pushState({}, '', '/long/2')")
    tab.call("window.scrollTo(0, document.documentElement.scrollHeight)")
    events = tab.site.wait(lambda ev: len(by_type(ev, "scroll_depth")) >= 10)
    second = [
        props(e)["depth"] for e in by_type(events, "scroll_depth") if e["pagePath"] == "/long/2"
    ]
    assert sorted(second) == [25, 50, 75, 90, 100]
    assert len(by_type(tab.site.settle(), "scroll_depth")) == 10


def test_switching_captures_off(tab: Tab) -> None:
    tab.open("/quiet", tall=True, disable="scroll,heartbeat, session", heartbeat_interval=200)
    tab.call("window.scrollTo(0, document.documentElement.scrollHeight)")
    tab.page.wait_for_timeout(700)
    tab.call("cadlink.track('still_manual')")
    tab.call("cadlink.flush()")
    tab.site.wait_types("page_view", "still_manual")
    types = {e["eventType"] for e in tab.site.settle()}
    assert types == {"page_view", "still_manual"}
