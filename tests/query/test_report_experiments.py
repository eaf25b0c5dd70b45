"""The experiments report equals a plain-Python count; the z-test matches a hand computation."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from reference import Reference

from cadlink.events import CONVERSION_EVENT_TYPES, Envelope, IncomingEvent
from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.demo import DemoConfig, generate
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.query.params import filters as parse_filters
from cadlink.query.reports import experiments
from cadlink.query.spec import Period, QueryError, ReportSpec
from cadlink.services import build_ua_parser
from cadlink.store.events.duckdb_store import DuckDBEventStore

END = datetime(2026, 6, 10, 18, tzinfo=UTC)
SITE = "11111111-2222-3333-4444-555555555555"
HAND = "99999999-2222-3333-4444-555555555555"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
T0 = datetime(2026, 6, 9, 12, tzinfo=UTC)

# Visitor → (minutes after T0, event type, properties).
JOURNEYS: dict[int, list[tuple[int, str, dict[str, Any] | None]]] = {
    1: [(0, "page_view", {"variant": "A"}), (1, "purchase", {"revenue": 9})],
    2: [(0, "purchase", None), (1, "page_view", {"variant": "A"})],  # converted before exposure
    3: [(0, "page_view", {"variant": "B"}), (1, "page_view", {"variant": "A"}),
        (2, "affiliate_click", None)],  # first exposure wins: B
    4: [(0, "page_view", {"variant": "B"})],
    5: [(0, "page_view", None), (1, "form_submit", None)],  # never exposed
    6: [(0, "page_view", {"variant": "C"}), (1, "signup", None)],  # converts only to goal=signup
    7: [(0, "exp_seen", {"arm": 2}), (3, "copied_coupon", None)],
}  # fmt: skip


def hand_events() -> list[Envelope]:
    out = []
    for visitor, items in JOURNEYS.items():
        events = [
            IncomingEvent(event_type=et, event_id=f"x{visitor}-{i}", page_path="/p",
                          properties=props, timestamp=int((T0 + timedelta(minutes=m)).timestamp() * 1000))
            for i, (m, et, props) in enumerate(items)
        ]  # fmt: skip
        out.append(
            Envelope(max(e.timestamp or 0 for e in events), HAND, 500 + visitor, "", UA, events)
        )
    return out


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DuckDBEventStore, Reference]]:
    path: Path = tmp_path_factory.mktemp("experiments")
    store = DuckDBEventStore(str(path / "events.duckdb"))
    # No geo database: these reports do not depend on it, and loading it costs seconds.
    enricher = Enricher(
        build_ua_parser(), GeoLocator(str(path / "none")), late_event_hours=24 * 3650
    )
    loader = Loader(SpoolReader(path / "spool"), store, enricher)
    loader.load_history(generate(DemoConfig(site_id=SITE, days=6, events=14_000, end=END, seed=3)))
    loader.load_envelopes(hand_events())
    rows = store.fetch("SELECT * FROM analytics_events WHERE site_id = ?", [SITE])
    for r in rows:
        r["properties_obj"] = json.loads(r["properties"]) if r["properties"] else None
    yield store, Reference(rows)
    store.close()


def _text(v: Any) -> str | None:
    return None if v is None else (str(v).lower() if isinstance(v, bool) else str(v))


def reference_experiment(
    events: list[dict[str, Any]], prop: str, exposure: str, goals: frozenset[str]
) -> dict[str, tuple[int, int]]:
    """variant → (conversions, exposures)."""
    first: dict[int, tuple[datetime, str]] = {}
    for e in events:
        value = _text((e["properties_obj"] or {}).get(prop))
        if e["event_type"] == exposure and value is not None:
            v = e["visitor_id"]
            first[v] = min(first.get(v, (e["ts"], value)), (e["ts"], value))
    last: dict[int, datetime] = {}
    for e in events:
        if e["event_type"] in goals:
            v = e["visitor_id"]
            last[v] = max(last.get(v, e["ts"]), e["ts"])
    out: dict[str, tuple[int, int]] = {}
    for v, (t, variant) in first.items():
        converted = v in last and last[v] > t
        x, n = out.get(variant, (0, 0))
        out[variant] = (x + converted, n + 1)
    return out


CASES = [
    ("UTC", "[]", None),
    ("America/Chicago", '[["device","is","desktop"]]', None),
    ("Asia/Kolkata", "[]", "affiliate_click"),
    ("UTC", '[["channel","is_not","direct"]]', "product_click"),
]


@pytest.mark.parametrize(("tz", "raw_filters", "goal"), CASES)
def test_experiment_matches_reference(
    loaded: tuple[DuckDBEventStore, Reference], tz: str, raw_filters: str, goal: str | None
) -> None:
    store, ref = loaded
    flt = parse_filters(raw_filters)
    period = Period(date(2026, 6, 5), date(2026, 6, 9), tz)
    got = experiments.report(store, ReportSpec(SITE, period, flt), goal=goal)
    goals = CONVERSION_EVENT_TYPES if goal is None else frozenset({goal})
    expected = reference_experiment(ref.events_in(period, flt), "variant", "page_view", goals)
    assert {v["variant"]: (v["conversions"], v["exposures"]) for v in got["variants"]} == expected
    assert sorted(expected) == ["A", "B"]
    assert got["control"] == "A"
    (xc, nc), (x, n) = expected["A"], expected["B"]
    a, b = got["variants"]
    assert (a["uplift"], a["pValue"], a["significant"]) == (None, None, False)
    assert b["rate"] == round(x / n, 4)
    assert b["uplift"] == round((x / n - xc / nc) / (xc / nc), 4)
    test = experiments.two_proportion_test(xc, nc, x, n)
    assert test is not None
    assert b["pValue"] == round(test[1], 6)
    assert b["significant"] is (test[1] < 0.05)


def test_two_proportion_z_test_by_hand() -> None:
    # 200/1000 vs 250/1000: pooled P = 0.225, SE = sqrt(0.225 * 0.775 * 0.002) = 0.018675,
    # z = 0.05 / 0.018675 = 2.6774; a normal table gives a two-sided p of about 0.0074.
    result = experiments.two_proportion_test(200, 1000, 250, 1000)
    assert result is not None
    z, p = result
    assert z == pytest.approx(2.6774, abs=1e-4)
    assert p == pytest.approx(0.0074, abs=1e-4)
    assert experiments.two_proportion_test(250, 1000, 200, 1000) == pytest.approx((-z, p))
    assert experiments.two_proportion_test(0, 10, 0, 10) is None  # nobody converted
    assert experiments.two_proportion_test(5, 5, 3, 3) is None  # everybody did
    assert experiments.two_proportion_test(0, 0, 1, 2) is None


def _hand(store: DuckDBEventStore, **kw: str) -> dict[str, Any]:
    spec = ReportSpec(HAND, Period(date(2026, 6, 9), date(2026, 6, 9)))
    return experiments.report(store, spec, **kw)


def test_exposure_order_and_goals(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, _ = loaded
    got = _hand(store)
    rows = {v["variant"]: v for v in got["variants"]}
    assert {k: (v["conversions"], v["exposures"]) for k, v in rows.items()} == {
        "A": (1, 2), "B": (1, 2), "C": (0, 1)
    }  # fmt: skip
    assert got["control"] == "A"
    assert (rows["B"]["uplift"], rows["B"]["zScore"], rows["B"]["pValue"]) == (0.0, 0.0, 1.0)
    # C: 0/1 against 1/2: P = 1/3, z = -0.5 / sqrt(1/3 * 2/3 * 1.5) = -0.866, p = 0.3865.
    assert rows["C"]["uplift"] == -1.0
    assert rows["C"]["zScore"] == pytest.approx(-0.866, abs=1e-3)
    assert rows["C"]["pValue"] == pytest.approx(math.erfc(0.8660254 / math.sqrt(2)), abs=1e-6)
    signup = {v["variant"]: v["conversions"] for v in _hand(store, goal="signup")["variants"]}
    assert signup == {"A": 0, "B": 0, "C": 1}


def test_control_exposure_and_property(loaded: tuple[DuckDBEventStore, Reference]) -> None:
    store, _ = loaded
    got = _hand(store, control="C", goal="signup")
    rows = {v["variant"]: v for v in got["variants"]}
    assert got["control"] == "C"
    assert rows["C"]["uplift"] is None and rows["A"]["uplift"] == -1.0
    unknown = _hand(store, control="Z")
    assert all(v["uplift"] is None and v["pValue"] is None for v in unknown["variants"])
    custom = _hand(store, prop="arm", exposure="exp_seen")
    assert [(v["variant"], v["conversions"], v["exposures"]) for v in custom["variants"]] == [
        ("2", 1, 1)
    ]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"prop": "bad key"}, "property"),
        ({"prop": "x" * 65}, "property"),
        ({"exposure": "page view"}, "exposure"),
        ({"goal": "a'b"}, "goal"),
    ],
)
def test_bad_parameters_name_the_field(
    loaded: tuple[DuckDBEventStore, Reference], kw: dict[str, str], field: str
) -> None:
    store, _ = loaded
    with pytest.raises(QueryError) as err:
        _hand(store, **kw)
    assert err.value.field == field
