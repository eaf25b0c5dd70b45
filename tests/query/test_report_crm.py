"""CRM numbers against a plain-Python computation over controlled events."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cadlink.events import Envelope, IncomingEvent
from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query import service
from cadlink.query.reports import crm
from cadlink.query.spec import Period, QueryError, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events.duckdb_store import DuckDBEventStore

SITE = "crm-site"
NOW = datetime(2026, 8, 20, 12, tzinfo=UTC)
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"


def _events() -> list[tuple[int, str | None, datetime, str]]:
    """(visitor, userId, time, page): 40 users with varied histories plus anonymous noise."""
    rng = random.Random(3)
    out: list[tuple[int, str | None, datetime, str]] = []
    for u in range(40):
        first = NOW - timedelta(
            days=rng.choice([1, 3, 12, 25, 40, 55, 70, 90]), hours=rng.randint(0, 20)
        )
        t = first
        while t <= NOW:
            for k in range(rng.randint(1, 3)):  # a visit: a few pages a minute apart
                out.append((u, f"user-{u}", t + timedelta(minutes=k), f"/p{rng.randint(0, 4)}"))
            t += timedelta(days=rng.choice([1, 2, 5, 9, 20, 45]), hours=rng.randint(0, 5))
        if u % 7 == 0:
            out.append((u, f"user-{u}", NOW - timedelta(minutes=2), "/live"))
    out += [(1000 + i, None, NOW - timedelta(days=i % 30), "/anon") for i in range(50)]
    # A visitor who browses, then signs in (identify()) on the third page of the same visit.
    late = NOW - timedelta(hours=2)
    out += [(500, None, late, "/a"), (500, None, late + timedelta(minutes=1), "/b")]
    out += [(500, "user-late", late + timedelta(minutes=2), "/c")]
    return out


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DuckDBEventStore, list[tuple[int, str | None, datetime, str]]]]:
    path: Path = tmp_path_factory.mktemp("crm")
    store = DuckDBEventStore(str(path / "e.duckdb"))
    loader = Loader(
        SpoolReader(path / "spool"), store, Enricher(build_ua_parser(), GeoLocator(), 24 * 3650)
    )
    rows = _events()
    envs = [
        Envelope(int(t.timestamp() * 1000), SITE, v, "", UA, [IncomingEvent(
            event_type="page_view", event_id=f"e{i}", timestamp=int(t.timestamp() * 1000),
            user_id=u, page_path=p)])
        for i, (v, u, t, p) in enumerate(rows)
    ]  # fmt: skip
    loader.load_envelopes(envs)
    yield store, rows
    store.close()


def _plan(store: DuckDBEventStore) -> Any:
    return service.plan_for(store, ReportSpec(SITE, Period(date(2026, 8, 1), date(2026, 8, 20))))


def test_summary_cards(loaded: Any) -> None:
    store, rows = loaded
    per_user: dict[str, list[datetime]] = {}
    for _, u, t, _ in rows:
        if u:
            per_user.setdefault(u, []).append(t)
    d30, d60 = NOW - timedelta(days=30), NOW - timedelta(days=60)
    prev = {u for u, ts in per_user.items() if any(d60 <= t < d30 for t in ts)}
    churned = {u for u in prev if not any(t >= d30 for t in per_user[u])}
    got = crm.summary(_plan(store), store, NOW)
    assert got == {
        "totalUsers": len(per_user),
        "onlineNow": sum(max(ts) >= NOW - timedelta(minutes=5) for ts in per_user.values()),
        "newThisWeek": sum(min(ts) >= NOW - timedelta(days=7) for ts in per_user.values()),
        "churnRate": round(len(churned) / len(prev), 4),
    }
    assert got["onlineNow"] >= 5
    assert 0 < got["churnRate"] < 1


def test_users_per_day(loaded: Any) -> None:
    store, rows = loaded
    series = crm.users_per_day(_plan(store), store, NOW)
    assert len(series) == 30
    assert series[-1]["date"] == "2026-08-20"
    for point in series:
        d = date.fromisoformat(point["date"])
        assert point["users"] == len({u for _, u, t, _ in rows if u and t.date() == d and t <= NOW})


def test_segments_partition_the_users(loaded: Any) -> None:
    store, rows = loaded
    counts = crm.segment_counts(_plan(store), store, NOW)
    assert sum(counts.values()) == len({u for _, u, _, _ in rows if u})
    listed = crm.users(_plan(store), store, NOW, None, 500)
    for user in listed:
        first, last = user["firstSeen"] / 1000, user["lastSeen"] / 1000
        age_first = (NOW.timestamp() - first) / 86400
        age_last = (NOW.timestamp() - last) / 86400
        expected = (
            "new" if age_first <= 7
            else ("returning" if user["sessions30d"] >= 2 else "active") if age_last <= 7
            else "dormant" if age_last <= 30
            else "churned"
        )  # fmt: skip
        assert user["segment"] == expected, user
    for seg in crm.SEGMENTS:
        only = crm.users(_plan(store), store, NOW, seg, 500)
        assert len(only) == counts[seg]
        assert all(u["segment"] == seg for u in only)
    assert [u["lastSeen"] for u in listed] == sorted((u["lastSeen"] for u in listed), reverse=True)
    with pytest.raises(QueryError):
        crm.users(_plan(store), store, NOW, "vip", 10)


def test_user_detail_lists_sessions_with_pages(loaded: Any) -> None:
    store, rows = loaded
    mine = sorted((t, p) for _, u, t, p in rows if u == "user-7")
    detail = crm.user_detail(_plan(store), store, "user-7")
    assert detail is not None
    pages = [pg["path"] for s in reversed(detail["sessions"]) for pg in s["pages"]]
    assert pages == [p for _, p in mine][-len(pages) :]
    assert sum(s["pageViews"] for s in detail["sessions"]) == len(pages)
    assert crm.user_detail(_plan(store), store, "nobody") is None


def test_page_views_are_those_of_the_sessions_a_user_was_identified_in(loaded: Any) -> None:
    """Pages viewed before `identify()` in the same visit count: a buyer identified at checkout
    listed 0 page views while their session showed every page they had seen."""
    store, _ = loaded
    listed = {u["userId"]: u for u in crm.users(_plan(store), store, NOW, None, 500)}
    assert listed["user-late"]["pageViews"] == 3
    assert all(u["revenueByCurrency"] == [] for u in listed.values())  # nobody bought
    for user_id in ("user-late", "user-7", "user-14"):
        detail = crm.user_detail(_plan(store), store, user_id)
        assert detail is not None
        assert listed[user_id]["pageViews"] == sum(s["pageViews"] for s in detail["sessions"])


def test_user_revenue_per_currency_includes_purchases_made_before_identify(
    tmp_path: Path,
) -> None:
    """A shop identifies its buyer on the order confirmation, after the purchase event: the
    purchase carries no userId but is the user's revenue. Currencies are never added up."""
    store = DuckDBEventStore(str(tmp_path / "e.duckdb"))
    loader = Loader(
        SpoolReader(tmp_path / "spool"), store, Enricher(build_ua_parser(), GeoLocator(), 24 * 3650)
    )

    def at(t: datetime, kind: str, user: str | None = None, **props: Any) -> IncomingEvent:
        ms = int(t.timestamp() * 1000)
        return IncomingEvent(kind, timestamp=ms, user_id=user, page_path="/shop", properties=props)

    day1, day9 = NOW - timedelta(days=9), NOW - timedelta(days=1)
    visits = [
        (800, [at(day1, "page_view"), at(day1 + timedelta(minutes=1), "purchase",
               revenue=40.5, currency="EUR", productId="p1"),
               at(day1 + timedelta(minutes=2), "identify", "buyer")]),
        (800, [at(day9, "page_view", "buyer"), at(day9 + timedelta(minutes=1), "purchase",
               "buyer", revenue=12, currency="USD"),
               at(day9 + timedelta(minutes=2), "purchase", "buyer", revenue=9.5, currency="EUR"),
               at(day9 + timedelta(minutes=3), "purchase", "buyer", revenue="n/a", currency="GBP")]),
        # Another visitor's purchase in the same minutes is not the buyer's.
        (801, [at(day9, "page_view"), at(day9 + timedelta(minutes=1), "purchase",
               revenue=99, currency="EUR")]),
    ]  # fmt: skip
    loader.load_envelopes(
        Envelope(e.timestamp or 0, SITE, v, "", UA, [e]) for v, events in visits for e in events
    )
    try:
        detail = crm.user_detail(_plan(store), store, "buyer")
        assert detail is not None
        assert detail["revenueByCurrency"] == [
            {"currency": "EUR", "revenue": 50.0},
            {"currency": "USD", "revenue": 12.0},
        ]
        newest, oldest = detail["sessions"]
        assert newest["revenueByCurrency"] == [
            {"currency": "EUR", "revenue": 9.5},
            {"currency": "USD", "revenue": 12.0},
        ]
        assert oldest["revenueByCurrency"] == [{"currency": "EUR", "revenue": 40.5}]
        listed = crm.users(_plan(store), store, NOW, None, 10)
        assert [u["userId"] for u in listed] == ["buyer"]
        assert listed[0]["revenueByCurrency"] == detail["revenueByCurrency"]
    finally:
        store.close()
