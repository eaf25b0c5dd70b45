"""Consent, Do Not Track / Global Privacy Control, opt-in mode and sampling."""

from __future__ import annotations

import pytest
from tracker_harness import STUB, Tab, by_type, tracker_page

pytestmark = pytest.mark.browser

STORAGE = "JSON.stringify({...localStorage, ...sessionStorage})"


def storage(tab: Tab) -> dict[str, str]:
    return dict(tab.page.evaluate(f"JSON.parse({STORAGE})"))


def test_anonymous_by_default(tab: Tab) -> None:
    tab.open("/")
    tab.site.wait_types("page_view")
    view = by_type(tab.sent_events(), "page_view")[0]
    assert view["consent"] is False
    assert "visitorId" not in view
    assert "cadlink:v" not in storage(tab)
    assert tab.context.cookies() == []


def test_consent_granted_keeps_a_visitor_id(tab: Tab) -> None:
    head = f"<script>{STUB} cadlink('consent', {{analytics: true, marketing: false}});</script>"
    tab.open("/", tracker_page(tab.server, tab.site, head=head))
    tab.site.wait_types("page_view")
    first = by_type(tab.sent_events(), "page_view")[0]
    assert first["consent"] is True
    visitor = first["visitorId"]
    assert storage(tab)["cadlink:v"] == visitor

    # A later visit in another tab (a new session; consent remembered) keeps the visitor id.
    second_tab = tab.context.new_page()
    tab.serve("/again", tracker_page(tab.server, tab.site))
    second_tab.goto(tab.pages.url(tab.site.host, "/again"))
    second_tab.wait_for_function("window.cadlink && window.cadlink.api")
    events = tab.site.wait_types("page_view", "page_view", "session_start", "session_start")
    second = next(e for e in by_type(tab.sent_events(), "page_view") if e["pagePath"] == "/again")
    assert second["visitorId"] == visitor
    assert second["sessionId"] != first["sessionId"]
    assert all(e["consent"] is True for e in events)
    assert tab.context.cookies() == []


def test_consent_refused_stops_sending_and_forgets_ids(tab: Tab) -> None:
    tab.open("/")
    tab.call("cadlink.consent({analytics: true})")
    tab.call("cadlink.track('before_refusal')")
    tab.site.wait_types("page_view", "before_refusal")
    assert "cadlink:v" in storage(tab)

    tab.call("cadlink.consent({analytics: false})")
    posts_at_refusal = len(tab.collect_requests())
    tab.call("cadlink.track('after_refusal')")
    tab.call("window.scrollTo(0, 500)")
    tab.call("cadlink.flush()")
    left = storage(tab)
    assert "cadlink:v" not in left and "cadlink:s" not in left and "cadlink:u" not in left
    assert left.get("cadlink:c") == "0"

    # The refusal is remembered on the next page load: still nothing is sent.
    tab.open("/next", tracker_page(tab.server, tab.site))
    tab.page.wait_for_timeout(800)
    assert len(tab.collect_requests()) == posts_at_refusal
    types = [e["eventType"] for e in tab.site.settle()]
    assert "after_refusal" not in types
    assert types.count("page_view") == 1

    # Granting again resumes, with a new visitor id.
    tab.call("cadlink.consent({analytics: true})")
    tab.call("cadlink.track('after_grant')")
    tab.site.wait_types("after_grant")


def test_require_consent_sends_nothing_until_granted(tab: Tab) -> None:
    tab.open("/", require_consent="true")
    tab.call("cadlink.track('too_early')")
    tab.page.wait_for_timeout(600)
    assert tab.collect_requests() == []
    assert storage(tab) == {}  # not even a session id
    tab.call("cadlink.consent({analytics: true})")
    tab.call("cadlink.track('granted')")
    events = tab.site.wait_types("granted")
    assert "too_early" not in {e["eventType"] for e in events}
    assert by_type(tab.sent_events(), "granted")[0]["visitorId"]


@pytest.mark.parametrize(
    "signal",
    [
        "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})",
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})",
    ],
    ids=["dnt", "gpc"],
)
def test_do_not_track_and_gpc_are_honoured(tab: Tab, signal: str) -> None:
    tab.context.add_init_script(signal)
    tab.open("/", tall=True)
    tab.call("cadlink.track('ignored')")
    tab.call("window.scrollTo(0, document.documentElement.scrollHeight)")
    tab.call("cadlink.flush()")
    tab.page.wait_for_timeout(800)
    tab.page.goto("about:blank")
    tab.page.wait_for_timeout(300)
    assert tab.collect_requests() == []
    assert tab.site.events() == []


def test_respect_dnt_false_opts_out_of_the_signal(tab: Tab) -> None:
    tab.use_site(respect_dnt=False)
    tab.context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})"
    )
    tab.open("/", respect_dnt="false")
    tab.site.wait_types("page_view")


def test_sampling_rate_zero_sends_nothing(tab: Tab) -> None:
    tab.open("/", sample_rate="0")
    tab.call("cadlink.track('sampled_out')")
    tab.call("cadlink.flush()")
    tab.page.wait_for_timeout(600)
    assert tab.collect_requests() == []
    # The decision is made once per session: this tab's session stays out even at rate 1.
    tab.open("/2", sample_rate="1")
    tab.page.wait_for_timeout(400)
    assert tab.collect_requests() == []
