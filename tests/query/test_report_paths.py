"""The paths report equals a plain-Python walk over sessions rebuilt from the demo events."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import pytest
from behaviour_data import CASES, loaded, plan
from reference import RefSession

from cadlink.query.reports import paths
from cadlink.query.spec import QueryError

START, END = date(2026, 5, 20), date(2026, 6, 9)
PAGES = ("/", "/search", "/checkout")


def _views(s: RefSession) -> list[str | None]:
    return [e["page_path"] for e in s.events if e["event_type"] == "page_view"]


def _ranked(counts: Counter[str | None], views: int) -> list[dict[str, Any]]:
    rows = [{"page": k, "count": n, "share": round(n / views, 4)} for k, n in counts.items()]
    return sorted(rows, key=lambda r: (-r["count"], r["page"] is None, r["page"] or ""))


def expected_page(sessions: list[RefSession], page: str) -> dict[str, Any]:
    nxt: Counter[str | None] = Counter()
    prev: Counter[str | None] = Counter()
    views = exits = entrances = 0
    for s in sessions:
        seq = _views(s)
        for i, p in enumerate(seq):
            if p != page:
                continue
            views += 1
            if i + 1 < len(seq):
                nxt[seq[i + 1]] += 1
            else:
                exits += 1
            if i > 0:
                prev[seq[i - 1]] += 1
            else:
                entrances += 1
    return {
        "page": page,
        "views": views,
        "exits": exits,
        "entrances": entrances,
        "next": _ranked(nxt, views),
        "previous": _ranked(prev, views),
    }


def expected_journeys(sessions: list[RefSession], steps: int) -> list[dict[str, Any]]:
    counts = Counter(tuple(seq[:steps]) for s in sessions if (seq := _views(s)))
    rows = [{"pages": list(k), "sessions": n} for k, n in counts.items()]

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        pages = r["pages"] + [None] * (steps - len(r["pages"]))
        return (-r["sessions"], -len(r["pages"]), *((p is None, p or "") for p in pages))

    return sorted(rows, key=key)


@pytest.mark.parametrize(("tz", "raw_filters"), [*CASES, ("UTC", '[["page","is","/deals"]]')])
def test_paths_match_reference(tz: str, raw_filters: str) -> None:
    store, ref = loaded()
    p = plan(START, END, tz, raw_filters, limit=10_000)
    sessions = ref.sessions_in(p.spec.period, p.spec.filters)
    for page in PAGES:
        assert paths.neighbours(p, store, page, 10_000) == expected_page(sessions, page), page
    for steps in (1, 3):
        assert paths.journeys(p, store, steps, 10_000) == expected_journeys(sessions, steps)
    if raw_filters == "[]":
        home = expected_page(sessions, "/")
        assert home["next"] and home["previous"] and home["exits"]


def test_paths_default_and_limit() -> None:
    store, ref = loaded()
    p = plan(START, END, limit=5)
    got = paths.paths(p, store, "/")
    sessions = ref.sessions_in(p.spec.period, ())
    want = expected_page(sessions, "/")
    assert got["page"] == {**want, "next": want["next"][:5], "previous": want["previous"][:5]}
    journeys = expected_journeys(sessions, 3)
    assert [j["sessions"] for j in got["journeys"]] == [j["sessions"] for j in journeys[:5]]
    assert any(len(j["pages"]) == 3 for j in journeys)
    assert paths.paths(p, store, None)["page"] is None


def test_paths_reject_bad_arguments() -> None:
    store, _ = loaded()
    p = plan(START, END)
    with pytest.raises(QueryError) as e:
        paths.journeys(p, store, 0, 10)
    assert e.value.field == "steps"
    with pytest.raises(QueryError) as e:
        paths.neighbours(p, store, "", 10)
    assert e.value.field == "page"
