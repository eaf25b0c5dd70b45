"""The column-wise enricher gives, row for row, what enriching each event on its own gives.

`_reference` is the straightforward per-event definition (the loader's original code); the
enricher computes the same columns with per-envelope, per-distinct-value and Arrow work.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

import msgspec
import pytest

from cadlink.events import EVENT_COLUMN_NAMES, Envelope, IncomingEvent
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.identity import consented_visitor_id
from cadlink.ingest.enrich.referrer import classify
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.ingest.enrich.utm import page_path, utm_from_url
from cadlink.pipeline.enrichment import Enricher

NOW = int(datetime(2026, 5, 4, 12, 0, tzinfo=UTC).timestamp() * 1000)
LATE_HOURS = 72
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "",
]
URLS = [
    None,
    "https://shop.example/",
    "https://shop.example/p/1?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
    "https://shop.example/c/x?gclid=abc",
    "https://shop.example/search?q=a%20b&utm_source=fb",
    "not a url",
]
REFERRERS = [None, "", "https://www.google.com/", "https://shop.example/x", "android-app://x"]


def _reference(envelopes: list[Envelope]) -> tuple[list[dict[str, Any]], dict[Any, int]]:
    """Each event enriched on its own, as the loader first did it."""
    rows: list[dict[str, Any]] = []
    drops: dict[tuple[str, date, str], int] = defaultdict(int)
    ua, geo = UserAgentParser(), GeoLocator(country_path=None)
    for env in envelopes:
        agent = ua.parse(env.user_agent)
        if agent.bot_reason is not None:
            day = datetime.fromtimestamp(env.received_ms / 1000, UTC).date()
            drops[(env.site_id, day, agent.bot_reason)] += len(env.events)
            continue
        place = geo.locate(env.ip_prefix)
        for ev in env.events:
            ts = ev.timestamp
            late = ts is not None and ts < env.received_ms - LATE_HOURS * 3_600_000
            if ts is None or ts > env.received_ms + 60_000 or late:
                ts = env.received_ms
            utm = utm_from_url(ev.page_url)  # each tag as sent, else as the URL has it
            source = ev.utm_source or utm.get("utm_source")
            medium = ev.utm_medium or utm.get("utm_medium")
            ref = classify(ev.referrer, ev.page_url, source, medium)
            visitor = (
                consented_visitor_id(env.site_id, ev.visitor_id)
                if ev.consent and ev.visitor_id
                else env.anon_visitor
            )
            props = msgspec.json.encode(ev.properties).decode() if ev.properties else None
            rows.append(
                {
                    "site_id": env.site_id,
                    "ts": datetime.fromtimestamp(ts / 1000, UTC),
                    "event_id": ev.event_id or None,
                    "event_type": ev.event_type,
                    "client_ts": ev.timestamp and datetime.fromtimestamp(ev.timestamp / 1000, UTC),
                    "received_at": datetime.fromtimestamp(env.received_ms / 1000, UTC),
                    "session_id": ev.session_id,
                    "visitor_id": visitor,
                    "user_id": ev.user_id,
                    "consent": ev.consent,
                    "page_url": ev.page_url,
                    "page_path": ev.page_path or page_path(ev.page_url),
                    "page_title": ev.page_title,
                    "referrer": ev.referrer or None,
                    "referrer_domain": ref.domain,
                    "source": ref.source,
                    "channel": ref.channel,
                    "device_type": agent.device_type,
                    "os": agent.os,
                    "os_version": agent.os_version or None,
                    "browser": agent.browser,
                    "browser_version": agent.browser_version or None,
                    "screen_resolution": ev.screen_resolution,
                    "viewport": ev.viewport,
                    "country": place.country,
                    "region": place.region,
                    "city": place.city,
                    "utm_source": source,
                    "utm_medium": medium,
                    "utm_campaign": ev.utm_campaign or utm.get("utm_campaign"),
                    "utm_term": ev.utm_term or utm.get("utm_term"),
                    "utm_content": ev.utm_content or utm.get("utm_content"),
                    "properties": props,
                }
            )
    return rows, dict(drops)


def _random_event(rng: random.Random, i: int) -> IncomingEvent:
    pick = rng.choice
    return IncomingEvent(
        event_type=pick(["page_view", "click", "identify", "purchase"]),
        event_id=pick([f"id-{i}", f"id-{i}", None, ""]),
        timestamp=pick([None, NOW, NOW - 1000, NOW + 59_000, NOW + 61_000, NOW - 73 * 3_600_000]),
        session_id=pick([None, "s1", "s2"]),
        visitor_id=pick([None, "", "v1", "v2", f"v{i % 7}"]),
        user_id=pick([None, "", "u1"]),
        consent=pick([True, False]),
        page_url=pick(URLS),
        page_path=pick([None, None, "", "/given"]),
        page_title=pick([None, "Title"]),
        referrer=pick(REFERRERS),
        screen_resolution=pick([None, "1920x1080"]),
        viewport=pick([None, "390x664"]),
        utm_source=pick([None, None, "", "google", "Newsletter"]),
        utm_medium=pick([None, "cpc", "email", ""]),
        utm_campaign=pick([None, "c1"]),
        utm_term=pick([None, "t"]),
        utm_content=pick([None, "x"]),
        properties=pick([None, {}, {"revenue": 9.5}, {"a": [1, {"b": "é"}], "n": None}]),
    )


def _random_envelopes(seed: int) -> list[Envelope]:
    rng = random.Random(seed)
    envelopes, i = [], 0
    for _ in range(rng.randint(1, 60)):
        events = []
        for _ in range(rng.randint(1, 12)):
            events.append(_random_event(rng, i))
            i += 1
        site = rng.choice(["site-a", "site-b"])
        received = NOW + rng.randint(-5, 5)
        prefix = rng.choice(["", "203.0.113.0", "2001:db8:1::"])
        envelopes.append(
            Envelope(
                received, site, rng.randint(-(2**63), 2**63 - 1), prefix, rng.choice(AGENTS), events
            )
        )
    return envelopes


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(UserAgentParser(), GeoLocator(country_path=None), LATE_HOURS)


@pytest.mark.parametrize("seed", range(12))
def test_column_wise_enrichment_equals_per_event_enrichment(enricher: Enricher, seed: int) -> None:
    envelopes = _random_envelopes(seed)
    expected_rows, expected_drops = _reference(envelopes)
    enriched = enricher.enrich(envelopes)
    rows = enriched.rows.to_pylist()
    assert list(enriched.rows.schema.names) == list(EVENT_COLUMN_NAMES)
    assert enriched.drops == expected_drops
    assert len(rows) == len(expected_rows)
    for row, expected in zip(rows, expected_rows, strict=True):
        if expected["event_id"] is None:  # assigned by the loader: a UUIDv7 of its arrival
            arrived_ms = int(row["received_at"].timestamp() * 1000)
            assert re.fullmatch(r"[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}", row["event_id"])
            assert row["event_id"][:12] == f"{arrived_ms:012x}"
            expected["event_id"] = row["event_id"]
        assert row == expected
    identified = [
        (r["site_id"], r["user_id"], r["ts"])
        for r in expected_rows
        if r["event_type"] == "identify" and r["user_id"]
    ]
    assert [(i.site_id, i.user_id, i.seen_at) for i in enriched.identities] == identified


def test_assigned_event_ids_are_distinct(enricher: Enricher) -> None:
    events = [IncomingEvent(event_type="page_view") for _ in range(1000)]
    rows = enricher.enrich([Envelope(NOW, "site-a", 1, "", AGENTS[0], events)]).rows
    assert len(set(rows.column("event_id").to_pylist())) == 1000


def test_nothing_to_enrich(enricher: Enricher) -> None:
    bots = [Envelope(NOW, "site-a", 1, "", "curl/8.5.0", [IncomingEvent(event_type="x")])]
    for envelopes in ([], bots):
        enriched = enricher.enrich(envelopes)
        assert enriched.rows.num_rows == 0
        assert list(enriched.rows.schema.names) == list(EVENT_COLUMN_NAMES)


def test_each_utm_tag_not_sent_is_read_from_the_page_url(enricher: Enricher) -> None:
    # One tag sent (or sent empty) used to discard every tag of the URL.
    url = "https://shop.example/p?utm_source=url&utm_medium=email&utm_campaign=spring"
    sent = [
        IncomingEvent(event_type="page_view", event_id="a", timestamp=NOW, page_url=url,
                      utm_source="explicit"),
        IncomingEvent(event_type="page_view", event_id="b", timestamp=NOW, page_url=url,
                      utm_source=""),
    ]  # fmt: skip
    rows = enricher.enrich([Envelope(NOW, "s", 1, "", AGENTS[0], sent)]).rows.to_pylist()
    tags = [(r["utm_source"], r["utm_medium"], r["utm_campaign"], r["channel"]) for r in rows]
    assert tags == [("explicit", "email", "spring", "email"), ("url", "email", "spring", "email")]
