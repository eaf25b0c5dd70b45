"""The synthetic traffic generator behind `cadlink demo` and the benchmarks."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random

import msgspec
import pytest

from cadlink.events import ENGAGEMENT_EVENT_TYPES, SEED_EVENT_TYPES, Envelope, IncomingEvent
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.demo_devices import COUNTRY_CODES, GEOIP_PATH, IpSampler

END = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)  # a Monday noon
END_MS = int(END.timestamp() * 1000)
BOT_UA = re.compile(r"bot|headless|python-requests|externalhit", re.IGNORECASE)


def _collect(config: DemoConfig) -> list[list[Envelope]]:
    return list(generate(config))


@pytest.fixture(scope="module")
def big() -> list[list[Envelope]]:
    return _collect(DemoConfig(site_id="site_demo", days=30, events=100_000, end=END, seed=7))


@pytest.fixture(scope="module")
def envelopes(big: list[list[Envelope]]) -> list[Envelope]:
    return [env for chunk in big for env in chunk]


@pytest.fixture(scope="module")
def events(envelopes: list[Envelope]) -> list[IncomingEvent]:
    return [ev for env in envelopes for ev in env.events]


@pytest.fixture(scope="module")
def types(events: list[IncomingEvent]) -> Counter[str]:
    return Counter(ev.event_type for ev in events)


def test_same_seed_same_events_other_seed_other_events() -> None:
    cfg = DemoConfig(site_id="s1", days=3, events=4_000, end=END, seed=1)
    one, two = _collect(cfg), _collect(cfg)
    other = _collect(DemoConfig(site_id="s1", days=3, events=4_000, end=END, seed=2))
    enc = msgspec.json.encode
    assert enc(one) == enc(two)
    assert enc(one) != enc(other)


@pytest.mark.parametrize(("days", "n"), [(1, 1_500), (7, 20_000), (90, 30_000)])
def test_total_is_close_to_the_request(days: int, n: int) -> None:
    total = sum(
        len(e.events) for c in generate(DemoConfig("s", days=days, events=n, end=END)) for e in c
    )
    assert abs(total - n) <= 0.1 * n


def test_total_of_the_big_sample(events: list[IncomingEvent]) -> None:
    assert abs(len(events) - 100_000) <= 10_000


def test_nothing_requested_nothing_generated() -> None:
    assert list(generate(DemoConfig("s", events=0, end=END))) == []


def test_default_end_is_now() -> None:
    chunks = _collect(DemoConfig("s", days=1, events=500))
    now = datetime.now(UTC).timestamp() * 1000
    stamps = [env.received_ms for chunk in chunks for env in chunk]
    assert stamps and now - 86_400_000 - 5_000 <= min(stamps) <= max(stamps) <= now + 5_000


def test_timestamps_within_the_window_and_chunks_in_order(big: list[list[Envelope]]) -> None:
    start_ms = END_MS - 30 * 86_400_000
    last = start_ms
    for chunk in big:
        for env in chunk:
            assert env.received_ms >= last  # chronological across chunks
            last = env.received_ms
            for ev in env.events:
                assert ev.timestamp is not None
                assert start_ms <= ev.timestamp <= env.received_ms <= END_MS
                assert env.received_ms - ev.timestamp <= 31_000  # sent with the next request
    assert all(1_000 <= sum(len(e.events) for e in c) <= 5_000 for c in big[:-1])


def test_every_event_and_envelope_round_trips(envelopes: list[Envelope]) -> None:
    sample = envelopes[::4]
    decoded = msgspec.json.decode(msgspec.json.encode(sample), type=list[Envelope])
    assert decoded == sample
    for env in sample[:3_000]:
        for ev in env.events:
            assert msgspec.json.decode(msgspec.json.encode(ev), type=IncomingEvent) == ev


def test_wire_names_are_camel_case(events: list[IncomingEvent]) -> None:
    wire = msgspec.json.decode(msgspec.json.encode(events[:200]))
    keys = set().union(*(e.keys() for e in wire))
    assert {"eventType", "eventId", "timestamp", "sessionId", "pageUrl", "pagePath"} <= keys
    assert not any("_" in k for k in keys)


def test_envelope_fields(envelopes: list[Envelope]) -> None:
    per_visitor_day: dict[int, set[str]] = defaultdict(set)
    for env in envelopes:
        assert env.site_id == "site_demo"
        assert -(2**63) <= env.anon_visitor < 2**63
        assert env.user_agent
        per_visitor_day[env.anon_visitor].add(env.user_agent)
        if GEOIP_PATH.exists():
            assert re.fullmatch(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.0", env.ip_prefix), env.ip_prefix
    assert statistics.mean(len(u) for u in per_visitor_day.values()) < 1.05  # one browser each
    ids = [ev.event_id for env in envelopes for ev in env.events]
    assert len(set(ids)) == len(ids)


def test_ip_prefix_is_empty_without_the_database(tmp_path: Path) -> None:
    assert IpSampler(tmp_path / "missing").prefix(Random(1), "DE") == ""


@pytest.mark.skipif(not GEOIP_PATH.exists(), reason="needs Debian's tor-geoipdb")
def test_ip_prefixes_are_located_in_their_country() -> None:
    """The server locates a visitor by the /24 it keeps: each prefix the demo draws for a
    country must be found in that country (a sixth of them were found next door)."""
    geo = GeoLocator(str(GEOIP_PATH))
    sampler, rng = IpSampler(), Random(3)
    for country in COUNTRY_CODES:
        found = Counter(geo.locate(sampler.prefix(rng, country)).country for _ in range(200))
        assert found == Counter({country: 200}), country


def test_all_event_families_show_up(types: Counter[str]) -> None:
    expected = {
        "session_start", "page_view", "heartbeat", "scroll_depth", "page_exit", "product_view",
        "product_click", "product_hover", "product_wishlist", "product_compare", "affiliate_click",
        "purchase", "search_query", "zero_results", "search_filter", "search_sort", "form_start",
        "form_submit", "form_abandon", "js_error", "web_vitals", "identify",
    }  # fmt: skip
    assert expected <= set(types)
    assert set(types) <= SEED_EVENT_TYPES


def test_funnel_narrows(types: Counter[str]) -> None:
    assert types["product_view"] > types["affiliate_click"] > types["purchase"] > 0
    assert types["form_start"] >= types["form_submit"]


def test_pages_follow_zipf(events: list[IncomingEvent]) -> None:
    views = Counter(ev.page_path for ev in events if ev.event_type == "page_view")
    counts = sorted(views.values(), reverse=True)
    assert len(counts) > 200
    assert counts[0] > 10 * statistics.median(counts)
    products = Counter(
        ev.properties["productId"]
        for ev in events
        if ev.event_type == "product_view" and ev.properties
    )
    top = products.most_common()
    assert len(top) > 150 and top[0][1] > 10 * top[len(top) // 2][1]


def test_properties_look_like_the_trackers(events: list[IncomingEvent]) -> None:
    seen: set[str] = set()
    full = vitals = 0
    for ev in events:
        p = ev.properties or {}
        t = ev.event_type
        seen.add(t)
        if t == "scroll_depth":
            assert p["depth"] in (25, 50, 75, 90, 100)
        elif t == "page_exit":
            assert isinstance(p["timeOnPage"], int) and p["timeOnPage"] >= 0
        elif t == "product_view":
            assert {"productId", "productName", "category", "price", "source"} <= p.keys()
            assert ev.page_path is not None and ev.page_path.startswith("/products/")
        elif t == "affiliate_click":
            assert {"productId", "platform", "position", "ctaText", "url"} <= p.keys()
            assert isinstance(p["position"], int) and p["url"].startswith("https://")
        elif t == "purchase":
            assert p["revenue"] > 0 and p["currency"] in ("USD", "EUR", "GBP") and p["orderId"]
        elif t == "search_query":
            assert p["query"] and isinstance(p["resultsCount"], int)
        elif t == "zero_results":
            assert p["query"]
        elif t == "web_vitals":
            # INP only after an interaction, CLS only after a shift (the tracker's vitals.js)
            assert {"ttfb", "fcp", "lcp"} <= p.keys() <= {"ttfb", "fcp", "lcp", "cls", "inp"}
            full += p.keys() == {"ttfb", "fcp", "lcp", "cls", "inp"}
            vitals += 1
            assert 0 < p["ttfb"] <= p["fcp"] and p["ttfb"] <= p["lcp"]
        elif t == "js_error":
            assert {"message", "source", "line"} <= p.keys()
        elif t == "identify":
            assert ev.user_id and "plan" in p
        elif t == "page_view" and ev.page_path and ev.page_path.startswith("/products/"):
            assert p["variant"] in ("A", "B")
        assert ev.event_id and ev.page_url and ev.page_title
        assert ev.session_id or t == "page_view"  # link-preview and spam bots keep no session
        assert ev.page_url.startswith("https://demo-shop.example/")
        if ev.visitor_id is not None:
            assert ev.consent
    assert full > 0.6 * vitals  # most visitors interact with the page
    zero = [ev for ev in events if ev.event_type == "search_query"]
    share = sum(1 for ev in zero if ev.properties and ev.properties["resultsCount"] == 0) / len(
        zero
    )
    assert 0.05 < share < 0.2


def test_web_vitals_are_slower_on_phones(envelopes: list[Envelope]) -> None:
    lcp: dict[bool, list[int]] = {True: [], False: []}
    for env in envelopes:
        phone = "iPhone" in env.user_agent or (
            "Android" in env.user_agent and "Mobile" in env.user_agent
        )
        for ev in env.events:
            if ev.event_type == "web_vitals" and ev.properties:
                lcp[phone].append(ev.properties["lcp"])
    assert statistics.median(lcp[True]) > 1.4 * statistics.median(lcp[False])


def test_sources_and_campaigns(events: list[IncomingEvent]) -> None:
    starts = [ev for ev in events if ev.event_type == "session_start"]
    refs = Counter((ev.referrer or "").split("/")[2] if ev.referrer else "" for ev in starts)
    assert refs[""] > 0 and refs["www.google.com"] > 0 and refs["www.google.de"] > 0
    assert any("facebook" in r for r in refs) and any("reddit" in r for r in refs)
    utm = [ev for ev in starts if ev.utm_source]
    assert 0.05 < len(utm) / len(starts) < 0.4
    assert all(f"utm_source={ev.utm_source}" in (ev.page_url or "") for ev in utm)
    assert {ev.utm_medium for ev in utm} >= {"email", "cpc", "paid_social"}


def test_devices_and_screens(envelopes: list[Envelope]) -> None:
    uas = Counter(env.user_agent for env in envelopes)
    text = " ".join(uas)
    for family in ("Windows NT 10.0", "Macintosh", "X11; Linux", "iPhone", "iPad", "Android"):
        assert family in text
    for browser in ("Chrome/", "Firefox/", "Edg/", "Version/18", "SamsungBrowser"):
        assert browser in text
    screens = {ev.screen_resolution for env in envelopes[:20_000] for ev in env.events}
    assert {"1920x1080", "390x844"} <= screens


def test_bots_are_a_small_share(envelopes: list[Envelope]) -> None:
    uas = Counter(env.user_agent for env in envelopes)
    bots = sum(n for ua, n in uas.items() if BOT_UA.search(ua))
    assert 0.01 <= bots / len(envelopes) <= 0.04
    assert any("Googlebot" in ua for ua in uas)
    assert any("HeadlessChrome" in ua for ua in uas)


def test_variant_b_converts_better(events: list[IncomingEvent]) -> None:
    variant: dict[str, str] = {}
    converted: set[str] = set()
    for ev in events:
        sid = ev.session_id or ""
        if ev.event_type == "page_view" and ev.properties and "variant" in ev.properties:
            variant.setdefault(sid, ev.properties["variant"])
        elif ev.event_type in ("affiliate_click", "purchase"):
            converted.add(sid)
    rate = {}
    for arm in ("A", "B"):
        sessions = [s for s, v in variant.items() if v == arm]
        rate[arm] = sum(1 for s in sessions if s in converted) / len(sessions)
    assert rate["B"] > rate["A"] * 1.1


def test_returning_visitors_consent_and_identity(envelopes: list[Envelope]) -> None:
    days_by_visitor: dict[str, set[int]] = defaultdict(set)
    users: dict[str, set[str]] = defaultdict(set)
    for env in envelopes:
        for ev in env.events:
            if ev.visitor_id:
                days_by_visitor[ev.visitor_id].add(env.received_ms // 86_400_000)
            if ev.user_id and ev.session_id:
                users[ev.user_id].add(ev.session_id)
    back = sum(1 for d in days_by_visitor.values() if len(d) > 1) / len(days_by_visitor)
    assert 0.2 < back < 0.45
    assert any(len(s) > 1 for s in users.values())  # identified users come back identified


def test_daily_weekly_rhythm_and_growth(envelopes: list[Envelope]) -> None:
    by_hour: Counter[int] = Counter()
    by_day: Counter[date] = Counter()
    for env in envelopes:
        when = datetime.fromtimestamp(env.received_ms / 1000, UTC)
        by_hour[when.hour] += len(env.events)
        by_day[when.date()] += len(env.events)
    assert sum(by_hour[h] for h in range(13, 21)) > 1.5 * sum(by_hour[h] for h in range(2, 10))
    days = sorted(by_day)[1:-1]  # whole days only
    weekdays = statistics.median(by_day[d] for d in days if d.weekday() < 5)
    weekends = statistics.median(by_day[d] for d in days if d.weekday() >= 5)
    assert weekdays > 1.1 * weekends


def test_traffic_grows_over_the_history() -> None:
    """12% a month: over 13 weeks, the last 4 whole weeks carry about a quarter more events
    than the first 4 (1.1 to 1.45 over eight seeds). Whole weeks on both sides, so the weekly rhythm cancels out; 13 weeks,
    so the growth stands well clear of the day-to-day noise (comparing the medians of 10 days
    a month apart failed now and then: the growth there is the size of the noise)."""
    config = DemoConfig(site_id="site_growth", days=91, events=40_000, end=END, seed=11)
    by_day: Counter[date] = Counter()
    for chunk in generate(config):
        for env in chunk:
            by_day[datetime.fromtimestamp(env.received_ms / 1000, UTC).date()] += len(env.events)
    days = sorted(by_day)[1:-1]  # whole days only
    first, last = sum(by_day[d] for d in days[:28]), sum(by_day[d] for d in days[-28:])
    assert 1.0 < last / first < 1.6, (first, last)


def test_history_ends_at_end() -> None:
    end = END + timedelta(minutes=17)
    chunks = _collect(DemoConfig("s", days=2, events=3_000, end=end))
    assert max(env.received_ms for env in chunks[-1]) <= int(end.timestamp() * 1000)


@pytest.mark.parametrize(
    ("end", "zone", "first"),
    [
        # 30 calendar days up to the end's day: 2025-05-04 .. 2025-06-02 (UTC).
        (END, "UTC", datetime(2025, 5, 4, tzinfo=UTC)),
        # Berlin is UTC+2 in May: its midnight is 22:00 UTC the day before.
        (END, "Europe/Berlin", datetime(2025, 5, 3, 22, tzinfo=UTC)),
        # Ending at midnight: the day that just ended is the last one.
        (datetime(2025, 6, 2, tzinfo=UTC), "UTC", datetime(2025, 5, 3, tzinfo=UTC)),
    ],
)
def test_history_in_a_timezone_fills_whole_calendar_days(
    end: datetime, zone: str, first: datetime
) -> None:
    """`cadlink demo` fills the dashboard's "last 30 days" and nothing before it: a sliver of
    the day before made the comparison with the previous period read "+24925%"."""
    config = DemoConfig("s", days=30, events=20_000, end=end, seed=3, timezone=zone)
    stamps = [
        ts
        for chunk in generate(config)
        for env in chunk
        for ts in (env.received_ms, *(ev.timestamp or 0 for ev in env.events))
    ]
    first_ms, end_ms = int(first.timestamp() * 1000), int(end.timestamp() * 1000)
    assert first_ms <= min(stamps) < first_ms + 3 * 3_600_000
    assert max(stamps) <= end_ms
    assert abs(len(stamps) - 20_000) / 20_000 < 0.5  # events plus envelopes, roughly


def test_bounce_rate_is_a_real_shops(events: list[IncomingEvent]) -> None:
    """About a third of human visits leave the landing page within 10 s without interacting
    (the store's bounce); the demo had 1.4% when every visitor lingered and scrolled."""
    by_session: dict[str, list[IncomingEvent]] = defaultdict(list)
    for ev in events:
        by_session[ev.session_id or ""].append(ev)
    humans = bounces = 0
    for evs in by_session.values():
        if not any(ev.event_type == "session_start" for ev in evs):
            continue  # a bot's (crawlers start sessions too, but never exit)
        if not any(ev.event_type == "page_exit" for ev in evs):
            continue
        humans += 1
        stamps = [ev.timestamp or 0 for ev in evs]
        views = sum(ev.event_type == "page_view" for ev in evs)
        engaged = any(ev.event_type in ENGAGEMENT_EVENT_TYPES for ev in evs)
        bounces += views == 1 and not engaged and max(stamps) - min(stamps) < 10_000
    assert 0.25 < bounces / humans < 0.5, (bounces, humans)
