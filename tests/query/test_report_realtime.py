"""The realtime report on events placed around a fixed `now`, against a plain-Python count."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from reference import Reference

from cadlink.events import CONVERSION_EVENT_TYPES, Envelope, IncomingEvent
from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query.reports import realtime
from cadlink.query.spec import Period
from cadlink.services import build_ua_parser
from cadlink.store.events.duckdb_store import DuckDBEventStore

SITE = "11111111-2222-3333-4444-555555555555"
OTHER = "22222222-2222-3333-4444-555555555555"
# 23:30 on June 9 in New York, already June 10 in UTC: "today" depends on the time zone.
NOW = datetime(2026, 6, 10, 3, 30, tzinfo=UTC)
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
GOOGLE = "https://www.google.com/"

# Visitor → (user agent, network prefix, referrer, [(seconds from NOW, event type, path)]).
Journey = tuple[str, str, str | None, list[tuple[int, str, str]]]
JOURNEYS: dict[int, Journey] = {
    1: (CHROME, "8.8.8.0", GOOGLE, [(-600, "page_view", "/"), (-240, "page_view", "/a"),
                                     (-30, "click", "/a")]),
    2: (CHROME, "81.2.69.0", None, [(-360, "page_view", "/gone")]),  # left 6 minutes ago
    3: (IPHONE, "1.1.1.0", GOOGLE, [(-50, "page_view", "/p"), (-20, "product_click", "/p"),
                                     (-10, "affiliate_click", "/p")]),
    4: (IPHONE, "5.9.0.0", None, [(30, "page_view", "/ahead")]),  # a clock 30 s fast
    5: (CHROME, "8.8.8.0", None, [(-90, "page_view", "/b")]),
    6: (CHROME, "8.8.8.0", None, [(-59, "outbound_click", "/c"), (120, "page_view", "/later")]),
    # Sessions of the evening before: today in New York, yesterday in UTC (7 is neither).
    7: (CHROME, "8.8.8.0", None, [(-3600 * 24 - 1800, "page_view", "/"),
                                   (-3600 * 24 - 1790, "purchase", "/thanks")]),
    8: (CHROME, "8.8.8.0", None, [(-3600 * 7, "page_view", "/"), (-3600 * 7 + 5, "form_submit", "/")]),
}  # fmt: skip
# A crowd of 60 one-page visitors within the last 5 minutes (the list keeps 50).
for i in range(60):
    JOURNEYS[100 + i] = (CHROME, "81.2.69.0", None, [(-240 + 2 * i, "page_view", f"/crowd/{i}")])


def _envelopes(site: str, journeys: dict[int, Journey]) -> list[Envelope]:
    out = []
    for visitor, (ua, prefix, referrer, items) in journeys.items():
        events = [
            IncomingEvent(event_type=et, event_id=f"{site[:4]}-{visitor}-{i}", page_path=path,
                          page_url="https://shop.example" + path, referrer=referrer,
                          timestamp=int((NOW + timedelta(seconds=s)).timestamp() * 1000))
            for i, (s, et, path) in enumerate(items)
        ]  # fmt: skip
        for e in events:  # one request per event, received when it happened
            assert e.timestamp is not None
            out.append(Envelope(e.timestamp, site, 7000 + visitor, prefix, ua, [e]))
    return out


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DuckDBEventStore, Reference]]:
    path: Path = tmp_path_factory.mktemp("realtime")
    store = DuckDBEventStore(str(path / "events.duckdb"))
    enricher = Enricher(build_ua_parser(), GeoLocator(), late_event_hours=24 * 3650)
    loader = Loader(SpoolReader(path / "spool"), store, enricher)
    loader.load_envelopes(_envelopes(SITE, JOURNEYS))
    # Another site, active right now: it must not show up.
    loader.load_envelopes(_envelopes(OTHER, {1: (CHROME, "8.8.8.0", None, [(-5, "click", "/x")])}))
    rows = store.fetch("SELECT * FROM analytics_events WHERE site_id = ?", [SITE])
    for r in rows:
        r["properties_obj"] = json.loads(r["properties"]) if r["properties"] else None
    yield store, Reference(rows)
    store.close()


def reference_realtime(ref: Reference, timezone: str, now: datetime) -> dict[str, Any]:
    lo, hi = now - timedelta(minutes=5), now + timedelta(minutes=1)
    recent = [e for e in ref.events if lo <= e["ts"] < hi]
    last_minute = [e for e in recent if e["ts"] >= now - timedelta(minutes=1)]
    latest: dict[int, dict[str, Any]] = {}
    for e in sorted(recent, key=lambda e: (e["ts"], e["event_id"])):
        latest[e["visitor_id"]] = e
    clicks = {"click", "product_click", "affiliate_click", "outbound_click"}
    day = now.astimezone(ZoneInfo(timezone)).date()
    today = ref.sessions_in(Period(day, day, timezone), ())
    converted = [
        s for s in today if any(e["event_type"] in CONVERSION_EVENT_TYPES for e in s.events)
    ]
    visitors = [
        {
            "visitorId": str(v),
            "currentPage": e["page_path"],
            "lastSeen": int(e["ts"].timestamp() * 1000 + 0.5),
            "country": e["country"],
            "deviceType": e["device_type"],
            "browser": e["browser"],
            "source": ref.session_of[e["event_id"]].attr("source"),
        }
        for v, e in sorted(latest.items(), key=lambda kv: (-kv[1]["ts"].timestamp(), kv[0]))
    ]
    return {
        "activeUsers": len(latest),
        "pageViewsLastMinute": sum(e["event_type"] == "page_view" for e in last_minute),
        "clicksLastMinute": sum(e["event_type"] in clicks for e in last_minute),
        "conversionRate": round(len(converted) / len(today), 4) if today else 0.0,
        "visitors": visitors[:50],
    }


@pytest.mark.parametrize("tz", ["America/New_York", "UTC", "Asia/Tokyo"])
def test_realtime_matches_reference(loaded: tuple[DuckDBEventStore, Reference], tz: str) -> None:
    store, ref = loaded
    assert realtime.realtime(store, SITE, tz, NOW) == reference_realtime(ref, tz, NOW)


def test_realtime_by_hand(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, _ = loaded
    data = realtime.realtime(store, SITE, "America/New_York", NOW)
    # Active: 1, 3, 4, 5, 6 and the crowd of 60 (2 left 6 minutes ago).
    assert data["activeUsers"] == 65
    assert data["pageViewsLastMinute"] == 2  # 3 at -50 s and 4 at +30 s
    assert data["clicksLastMinute"] == 4  # 1's click, 3's two, 6's outbound click
    # Sessions started on June 9 in New York: 1-6, 8 and the crowd; 3 and 8 converted.
    assert data["conversionRate"] == round(2 / 67, 4)
    top = data["visitors"][:4]
    assert [v["currentPage"] for v in top] == ["/ahead", "/p", "/a", "/c"]
    assert top[1] == {
        "visitorId": top[1]["visitorId"],
        "currentPage": "/p",
        "lastSeen": int((NOW - timedelta(seconds=10)).timestamp() * 1000),
        "country": "AU",
        "deviceType": "mobile",
        "browser": "Safari",
        "source": "Google",
    }
    assert isinstance(top[1]["visitorId"], str) and int(top[1]["visitorId"])
    assert len(data["visitors"]) == 50
    assert data["visitors"][-1]["currentPage"] == "/crowd/15"  # the 50 most recent of 65
    # In UTC, June 10 has only just begun: 1-6 and the crowd (3 converted).
    assert realtime.realtime(store, SITE, "UTC", NOW)["conversionRate"] == round(1 / 66, 4)


def test_a_quiet_moment(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, _ = loaded
    data = realtime.realtime(store, SITE, "UTC", datetime(2026, 6, 1, tzinfo=UTC))
    assert data == {"activeUsers": 0, "pageViewsLastMinute": 0, "clicksLastMinute": 0,
                    "conversionRate": 0.0, "visitors": []}  # fmt: skip
