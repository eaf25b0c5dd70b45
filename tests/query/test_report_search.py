"""The search report equals a plain-Python count over the same demo events."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from typing import Any

import pytest
from behaviour_data import CASES, loaded, number, plan, props, text

from cadlink.query.reports import search

START, END = date(2026, 5, 20), date(2026, 6, 9)


def _query(e: dict[str, Any]) -> str | None:
    q = text(props(e).get("query"))
    return None if q is None else q.strip(" ").lower()


def expected(events: list[dict[str, Any]]) -> dict[str, Any]:
    sq = [e for e in events if e["event_type"] == "search_query"]
    zr = [e for e in events if e["event_type"] == "zero_results"]
    zero_sq = [e for e in sq if number(props(e).get("resultsCount")) == 0]
    searches = len(sq)
    zero = max(len(zero_sq), len(zr))
    summary = {
        "searches": searches,
        "searchers": len({e["visitor_id"] for e in sq}),
        "distinctQueries": len({q for e in sq if (q := _query(e))}),
        "zeroResultSearches": zero,
        "zeroResultRate": round(zero / searches, 4) if searches else 0.0,
    }
    top: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in sq:
        if q := _query(e):
            top[q].append(e)
    top_rows: list[dict[str, Any]] = []
    for q, evs in top.items():
        counts = [n for e in evs if (n := number(props(e).get("resultsCount"))) is not None]
        top_rows.append(
            {
                "query": q,
                "searches": len(evs),
                "visitors": len({e["visitor_id"] for e in evs}),
                "avgResults": round(sum(counts) / len(counts), 2) if counts else None,
                "zeroResultSearches": sum(n == 0 for n in counts),
            }
        )
    top_rows.sort(key=lambda r: (-r["searches"], -r["visitors"], r["query"]))
    zq: dict[str, Counter[str]] = defaultdict(Counter)
    zv: dict[str, set[int]] = defaultdict(set)
    for kind, evs in (("sq", zero_sq), ("zr", zr)):
        for e in evs:
            if q := _query(e):
                zq[q][kind] += 1
                zv[q].add(e["visitor_id"])
    zero_rows: list[dict[str, Any]] = [
        {"query": q, "searches": max(c["sq"], c["zr"]), "visitors": len(zv[q])}
        for q, c in zq.items()
    ]
    zero_rows.sort(key=lambda r: (-r["searches"], -r["visitors"], r["query"]))
    return {
        "summary": summary,
        "topQueries": top_rows,
        "zeroResultQueries": zero_rows,
        "filters": _used(events, "search_filter", ("filter", "value")),
        "sorts": _used(events, "search_sort", ("sort",)),
    }


def _used(events: list[dict[str, Any]], kind: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    groups: dict[tuple[str | None, ...], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["event_type"] == kind:
            groups[tuple(text(props(e).get(k)) for k in keys)].append(e)
    rows: list[dict[str, Any]] = [
        {
            **dict(zip(keys, key, strict=True)),
            "events": len(evs),
            "visitors": len({e["visitor_id"] for e in evs}),
        }
        for key, evs in groups.items()
    ]
    rows.sort(
        key=lambda r: (-r["events"], -r["visitors"], *((r[k] is None, r[k] or "") for k in keys))
    )
    return rows


@pytest.mark.parametrize(("tz", "raw_filters"), CASES)
def test_search_matches_reference(tz: str, raw_filters: str) -> None:
    store, ref = loaded()
    p = plan(START, END, tz, raw_filters)
    got = search.search(p, store)
    want = expected(ref.events_in(p.spec.period, p.spec.filters))
    assert got == want
    if raw_filters == "[]":
        assert want["summary"]["searches"] > 20
        assert want["summary"]["zeroResultSearches"] > 0
        assert want["filters"] and want["sorts"]


def test_limit_keeps_the_top_rows() -> None:
    store, ref = loaded()
    p = plan(START, END, limit=3)
    got = search.search(p, store)
    want = expected(ref.events_in(p.spec.period, ()))
    assert [r["searches"] for r in got["topQueries"]] == [
        r["searches"] for r in want["topQueries"][:3]
    ]
    assert len(got["sorts"]) == 3


def test_query_filter_on_a_property() -> None:
    store, ref = loaded()
    p = plan(START, END, raw_filters='[["prop:query","contains","head"]]')
    got = search.search(p, store)
    want = expected(ref.events_in(p.spec.period, p.spec.filters))
    assert got == want
    assert all("head" in r["query"] for r in got["topQueries"])
