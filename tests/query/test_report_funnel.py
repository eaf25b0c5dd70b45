"""The funnel report equals a plain-Python walk over the same events; edge cases by hand."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from reference import Reference

from cadlink.events import Envelope, IncomingEvent
from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query.params import filters as parse_filters
from cadlink.query.reports import funnel
from cadlink.query.spec import Period, QueryError, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events.duckdb_store import DuckDBEventStore

END = datetime(2026, 6, 10, 18, tzinfo=UTC)
SITE = "11111111-2222-3333-4444-555555555555"
HAND = "99999999-2222-3333-4444-555555555555"  # hand-made events for the edge cases
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
T0 = datetime(2026, 6, 9, 12, tzinfo=UTC)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def hand_events() -> list[Envelope]:
    """Visitor n's events as (minutes after T0, event type, path, properties)."""
    journeys: dict[int, list[tuple[float, str, str, dict[str, Any] | None]]] = {
        1: [(0, "page_view", "/", None), (1, "product_view", "/p/1", None),
            (2, "affiliate_click", "/p/1", {"platform": "amazon"})],  # completes
        2: [(0, "product_view", "/p/1", None), (1, "page_view", "/", None),
            (2, "affiliate_click", "/p/1", {"platform": "amazon"})],  # out of order: step 1 only
        3: [(0, "page_view", "/", None), (1, "product_view", "/p/1", None),
            (60 * 25, "affiliate_click", "/p/1", {"platform": "amazon"})],  # window expired
        4: [(0, "page_view", "/", None), (5, "page_view", "/", None), (6, "product_view", "/p/2", None),
            (7, "product_view", "/p/3", None), (9, "affiliate_click", "/p/3", {"platform": "ebay"}),
            (10, "affiliate_click", "/p/3", {"platform": "amazon"})],  # repeats; first entry wins
        5: [(0, "page_view", "/blog/x", None), (3, "product_view", "/p/1", None)],  # stops at 2
    }  # fmt: skip
    out = []
    for visitor, items in journeys.items():
        events = [
            IncomingEvent(event_type=et, event_id=f"h{visitor}-{i}", page_path=path,
                          page_url="https://shop.example" + path, properties=props,
                          timestamp=_ms(T0 + timedelta(minutes=m)))
            for i, (m, et, path, props) in enumerate(items)
        ]  # fmt: skip
        received = max(e.timestamp or 0 for e in events)
        out.append(Envelope(received, HAND, 1000 + visitor, "", UA, events))
    return out


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DuckDBEventStore, Reference]]:
    path: Path = tmp_path_factory.mktemp("funnel")
    store = DuckDBEventStore(str(path / "events.duckdb"))
    # No geo database: these reports do not depend on it, and loading it costs seconds.
    enricher = Enricher(
        build_ua_parser(), GeoLocator(str(path / "none")), late_event_hours=24 * 3650
    )
    loader = Loader(SpoolReader(path / "spool"), store, enricher)
    loader.load_history(generate(DemoConfig(site_id=SITE, days=6, events=12_000, end=END, seed=11)))
    loader.load_envelopes(hand_events())
    rows = store.fetch("SELECT * FROM analytics_events WHERE site_id = ?", [SITE])
    for r in rows:
        r["properties_obj"] = json.loads(r["properties"]) if r["properties"] else None
    yield store, Reference(rows)
    store.close()


# -- the reference ----------------------------------------------------------------------------


def _prop_text(v: Any) -> str | None:
    if v is None:
        return None
    return str(v).lower() if isinstance(v, bool) else str(v)


def _matches(e: dict[str, Any], step: funnel.Step) -> bool:
    if e["event_type"] != step.event_type:
        return False
    if step.page is not None:
        path = e["page_path"] or ""
        ok = path.startswith(step.page[:-1]) if step.page.endswith("*") else path == step.page
        if not ok:
            return False
    if step.key is not None:
        return _prop_text((e["properties_obj"] or {}).get(step.key)) == step.value
    return True


def reference_funnel(
    events: list[dict[str, Any]], steps: tuple[funnel.Step, ...], window: timedelta
) -> tuple[list[int], list[float | None]]:
    by_visitor: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in sorted(events, key=lambda e: e["ts"]):
        by_visitor[e["visitor_id"]].append(e)
    counts = [0] * len(steps)
    gaps: list[list[float]] = [[] for _ in steps]
    for evs in by_visitor.values():
        firsts = [e["ts"] for e in evs if _matches(e, steps[0])]
        if not firsts:
            continue
        entry = cur = firsts[0]
        counts[0] += 1
        for k in range(1, len(steps)):
            later = [
                e["ts"] for e in evs if _matches(e, steps[k]) and cur < e["ts"] <= entry + window
            ]
            if not later:
                break
            counts[k] += 1
            gaps[k - 1].append((later[0] - cur).total_seconds())
            cur = later[0]
    return counts, [statistics.median(g) if g else None for g in gaps]


# -- correctness on demo traffic ---------------------------------------------------------------

CASES = [
    ("UTC", "[]", "page_view,product_view,affiliate_click", None),
    ("America/New_York", "[]", "page_view@/,page_view@/products/*,page_view@/cart", "2h"),
    ("Asia/Kolkata", '[["device","is","mobile"]]', "product_view,product_click,purchase", "90"),
    ("Europe/Berlin", '[["channel","is",["search","social"]]]',
     "session_start,product_view,affiliate_click[platform=amazon]", "3d"),
    ("UTC", '[["browser","is_not","Chrome"]]', "page_view,affiliate_click[position=1]", "30m"),
    ("UTC", '[["prop:variant","is","B"]]', "page_view,page_view,page_view", None),
]  # fmt: skip


@pytest.mark.parametrize(("tz", "raw_filters", "raw_steps", "raw_window"), CASES)
def test_funnel_matches_reference(
    loaded: tuple[DuckDBEventStore, Reference],
    tz: str,
    raw_filters: str,
    raw_steps: str,
    raw_window: str | None,
) -> None:
    store, ref = loaded
    flt = parse_filters(raw_filters)
    period = Period(date(2026, 6, 5), date(2026, 6, 9), tz)
    data = funnel.report(store, ReportSpec(SITE, period, flt), raw_steps, raw_window)
    steps, window = funnel.parse_steps(raw_steps), funnel.parse_window(raw_window)
    counts, medians = reference_funnel(ref.events_in(period, flt), steps, window)
    assert [s["visitors"] for s in data["steps"]] == counts
    assert counts[0] > 0 and counts[1] > 0
    for k, s in enumerate(data["steps"]):
        assert s["medianSecondsToNext"] == pytest.approx(
            None if k == len(steps) - 1 else medians[k], abs=1e-3
        )
        prev = counts[k - 1] if k else counts[0]
        assert s["dropOff"] == prev - counts[k]
        assert s["conversionFromFirst"] == round(counts[k] / counts[0], 4)
        assert s["conversionFromPrevious"] == (round(counts[k] / prev, 4) if prev else 0.0)
    assert data["entered"] == counts[0] and data["completed"] == counts[-1]
    assert data["windowMinutes"] == window.total_seconds() // 60


# -- edge cases on hand-made journeys ---------------------------------------------------------


def _hand(store: DuckDBEventStore, raw_steps: str, raw_window: str | None = None) -> list[int]:
    period = Period(date(2026, 6, 9), date(2026, 6, 10))
    data = funnel.report(store, ReportSpec(HAND, period), raw_steps, raw_window)
    return [s["visitors"] for s in data["steps"]]


def test_order_window_and_repeats(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, _ = loaded
    # 1 completes; 2 is out of order; 3's click is 25 h later; 4 repeats steps; 5 stops early.
    assert _hand(store, "page_view,product_view,affiliate_click") == [5, 4, 2]
    assert _hand(store, "page_view,product_view,affiliate_click", "2d") == [5, 4, 3]
    assert _hand(store, "page_view,product_view,affiliate_click", "5") == [5, 3, 1]
    assert _hand(store, "page_view,affiliate_click[platform=amazon]") == [5, 3]
    assert _hand(store, "page_view@/,page_view@/") == [4, 1]  # only 4 viewed / twice
    assert _hand(store, "page_view@/blog/*,product_view") == [1, 1]
    assert _hand(store, "product_view,product_view,affiliate_click[platform=ebay]") == [5, 1, 1]


def test_median_time_to_next_step(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, _ = loaded
    period = Period(date(2026, 6, 9), date(2026, 6, 9))
    data = funnel.report(store, ReportSpec(HAND, period), "page_view,product_view", "1h")
    # Visitors 1, 3, 4 and 5 view a product 1, 1, 6 and 3 minutes after entering; 2 never does.
    assert data["steps"][0]["medianSecondsToNext"] == 120.0
    assert data["steps"][1]["medianSecondsToNext"] is None


def test_nobody_enters(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, _ = loaded
    data = funnel.report(
        store, ReportSpec(HAND, Period(date(2026, 6, 9), date(2026, 6, 9))), "nothing,page_view"
    )
    assert [(s["visitors"], s["conversionFromFirst"]) for s in data["steps"]] == [(0, 0.0)] * 2
    assert data["conversionRate"] == 0.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "2-10"),
        ("page_view", "2-10"),
        (",".join(["page_view"] * 11), "2-10"),
        ("page_view,", "is not event_type"),
        ("page view,click", "is not event_type"),
        ("page_view@checkout,click", "is not event_type"),
        ("click[a=b,click", "is not event_type"),
        ("click[bad-key=1],click", "is not event_type"),
        ("click[a=],click", "1-512"),
    ],
)
def test_bad_steps_name_the_parameter(raw: str | None, message: str) -> None:
    with pytest.raises(QueryError, match=message) as err:
        funnel.parse_steps(raw)
    assert err.value.field == "steps"


def test_step_grammar() -> None:
    steps = funnel.parse_steps(" product_view , page_view@/blog/*,affiliate_click[platform=a b]")
    assert steps[0] == funnel.Step("product_view", "product_view")
    assert steps[1].page == "/blog/*"
    assert (steps[2].key, steps[2].value) == ("platform", "a b")
    both = funnel.parse_step("click@/p[element=buy]")
    assert (both.page, both.key, both.value) == ("/p", "element", "buy")


@pytest.mark.parametrize(
    ("raw", "minutes"), [(None, 1440), ("90", 90), ("30m", 30), ("2h", 120), ("7d", 10080)]
)
def test_window_grammar(raw: str | None, minutes: int) -> None:
    assert funnel.parse_window(raw) == timedelta(minutes=minutes)


@pytest.mark.parametrize("raw", ["0", "91d", "1w", "-5", "1.5h", "h"])
def test_bad_window(raw: str) -> None:
    with pytest.raises(QueryError) as err:
        funnel.parse_window(raw)
    assert err.value.field == "window"


def test_prefix_match_escapes_like_wildcards(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, _ = loaded
    # `_` and `%` in a prefix are literal characters, not LIKE wildcards.
    assert _hand(store, "page_view@/blog_*,product_view") == [0, 0]
    assert _hand(store, "page_view@/%*,product_view") == [0, 0]
