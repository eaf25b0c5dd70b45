"""Web vitals p75 equal a plain-Python continuous percentile over the same demo events."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import pytest
from behaviour_data import CASES, loaded, number, plan, props, quantile_cont

from cadlink.query.reports import vitals

START, END = date(2026, 5, 20), date(2026, 6, 9)


def _shape(evs: list[dict[str, Any]]) -> dict[str, Any]:
    samples: dict[str, list[float]] = {m: [] for m in vitals.METRICS}
    for e in evs:
        for m in vitals.METRICS:
            v = number(props(e).get(m))
            if v is not None and v >= 0:
                samples[m].append(v)
    return {
        "samples": len(evs),
        "p75": {m: quantile_cont(samples[m], 0.75) for m in vitals.METRICS},
        "counts": {m: len(samples[m]) for m in vitals.METRICS},
    }


def _check(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["samples"] == want["samples"]
    assert got["counts"] == want["counts"]
    for m in vitals.METRICS:
        if want["p75"][m] is None:
            assert got["p75"][m] is None
        else:
            unit = 0.0001 if m == "cls" else 0.1
            assert got["p75"][m] == pytest.approx(want["p75"][m], abs=unit / 2 + 1e-9), m
        assert got["rating"][m] == vitals.rating(m, got["p75"][m])


@pytest.mark.parametrize(("tz", "raw_filters"), CASES)
def test_vitals_match_reference(tz: str, raw_filters: str) -> None:
    store, ref = loaded()
    p = plan(START, END, tz, raw_filters, limit=10_000)
    events = [
        e for e in ref.events_in(p.spec.period, p.spec.filters) if e["event_type"] == "web_vitals"
    ]
    got = vitals.vitals(p, store)
    _check(got["overall"], _shape(events))
    by_page: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_page[e["page_path"]].append(e)
    order = sorted(by_page, key=lambda k: (-len(by_page[k]), k is None, k or ""))
    assert [r["page"] for r in got["pages"]] == order
    for row in got["pages"]:
        _check(row, _shape(by_page[row["page"]]))
    if raw_filters == "[]":
        assert got["overall"]["samples"] > 500
        assert got["overall"]["counts"]["lcp"] == got["overall"]["samples"]


def test_mobile_is_slower_and_limit() -> None:
    store, _ = loaded()
    mobile = vitals.vitals(plan(START, END, raw_filters='[["device","is","mobile"]]'), store)
    desktop = vitals.vitals(plan(START, END, raw_filters='[["device","is","desktop"]]'), store)
    assert mobile["overall"]["p75"]["lcp"] > desktop["overall"]["p75"]["lcp"]
    assert len(vitals.vitals(plan(START, END, limit=3), store)["pages"]) == 3


def test_a_range_without_vitals_has_an_empty_overall_and_no_pages() -> None:
    store, _ = loaded()
    got = vitals.vitals(plan(date(2020, 1, 1), date(2020, 1, 31)), store)
    assert got["overall"]["samples"] == 0
    assert got["overall"]["p75"] == {m: None for m in vitals.METRICS}
    assert got["pages"] == []


def test_ratings() -> None:
    assert vitals.rating("lcp", 2500) == "good"
    assert vitals.rating("lcp", 2501) == "needs-improvement"
    assert vitals.rating("cls", 0.26) == "poor"
    assert vitals.rating("inp", None) is None


def test_interpolation_is_continuous() -> None:
    assert quantile_cont([1.0, 2.0, 3.0, 4.0], 0.75) == pytest.approx(3.25)
    assert quantile_cont([5.0], 0.75) == 5.0
