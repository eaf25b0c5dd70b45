"""The engagement report equals a plain-Python computation over the same demo events."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from statistics import fmean
from typing import Any

import pytest
from behaviour_data import CASES, loaded, number, plan, props, quantile_cont

from cadlink.query.reports import engagement

START, END = date(2026, 5, 20), date(2026, 6, 9)


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def _secs(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 3)


def _top(e: dict[str, Any]) -> float | None:
    if e["event_type"] != "page_exit":
        return None
    v = number(props(e).get("timeOnPage"))
    return v if v is not None and v >= 0 else None


def expected_scroll(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    views = [e for e in events if e["event_type"] == "page_view"]
    viewers = {e["visitor_id"] for e in views}
    out = []
    for m in (25, 50, 75, 90, 100):
        hits = [
            e
            for e in events
            if e["event_type"] == "scroll_depth" and number(props(e).get("depth")) == m
        ]
        who = {e["visitor_id"] for e in hits}
        out.append(
            {
                "depth": m,
                "pageViews": len(hits),
                "share": _ratio(len(hits), len(views)),
                "visitors": len(who),
                "visitorShare": _ratio(len(who), len(viewers)),
            }
        )
    return out


def expected_pages(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_page: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["page_path"] is not None and e["event_type"] in (
            "page_view",
            "page_exit",
            "scroll_depth",
        ):
            by_page[e["page_path"]].append(e)
    rows = []
    for page, evs in by_page.items():
        views = [e for e in evs if e["event_type"] == "page_view"]
        tops = [t for e in evs if (t := _top(e)) is not None]
        s75 = sum(
            e["event_type"] == "scroll_depth" and number(props(e).get("depth")) == 75 for e in evs
        )
        rows.append(
            {
                "page": page,
                "views": len(views),
                "visitors": len({e["visitor_id"] for e in views}),
                "exits": len(tops),
                "avgSeconds": _secs(fmean(tops)) if tops else None,
                "medianSeconds": _secs(quantile_cont(tops, 0.5)),
                "reached75": _ratio(s75, len(views)),
                "_avg": fmean(tops) if tops else None,
            }
        )
    return rows


def _strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "_avg"} for r in rows]


def _close(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for k in ("avgSeconds", "medianSeconds"):
            if w[k] is None:
                assert g[k] is None
            else:
                assert g[k] == pytest.approx(w[k], abs=0.0011)
        rest = ("page", "views", "visitors", "exits", "reached75")
        assert {k: g[k] for k in rest} == {k: w[k] for k in rest}


@pytest.mark.parametrize(("tz", "raw_filters"), CASES)
def test_engagement_matches_reference(tz: str, raw_filters: str) -> None:
    store, ref = loaded()
    p = plan(START, END, tz, raw_filters, limit=10_000)
    events = ref.events_in(p.spec.period, p.spec.filters)
    got = engagement.engagement(p, store)
    assert got["scrollDepth"] == expected_scroll(events)
    tops = [t for e in events if (t := _top(e)) is not None]
    assert got["timeOnPage"]["exits"] == len(tops)
    assert got["timeOnPage"]["avgSeconds"] == pytest.approx(_secs(fmean(tops)), abs=0.0011)
    assert got["timeOnPage"]["medianSeconds"] == pytest.approx(
        _secs(quantile_cont(tops, 0.5)), abs=0.0011
    )
    rows = expected_pages(events)
    by_views = sorted((r for r in rows if r["views"] > 0), key=lambda r: (-r["views"], r["page"]))
    _close(got["pages"], _strip(by_views))
    engaged = sorted(
        (r for r in rows if r["exits"] >= engagement.MIN_EXITS),
        key=lambda r: (-r["_avg"], r["page"]),
    )
    _close(got["mostEngaged"], _strip(engaged))
    if raw_filters == "[]":
        assert got["scrollDepth"][0]["pageViews"] > got["scrollDepth"][-1]["pageViews"] > 0
        assert got["mostEngaged"]


def test_limit() -> None:
    store, _ = loaded()
    got = engagement.engagement(plan(START, END, limit=4), store)
    assert len(got["pages"]) == 4
    assert len(got["mostEngaged"]) == 4
    views = [r["views"] for r in got["pages"]]
    assert views == sorted(views, reverse=True)
    avgs = [r["avgSeconds"] for r in got["mostEngaged"]]
    assert avgs == sorted(avgs, reverse=True)
