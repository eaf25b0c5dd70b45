"""The errors report equals a plain-Python grouping of the same demo events."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date
from typing import Any

import pytest
from behaviour_data import CASES, loaded, plan, props, text

from cadlink.query.reports import errors

START, END = date(2026, 5, 13), date(2026, 6, 10)


def _grouped(
    events: list[dict[str, Any]], kind: str, keys: tuple[str, ...]
) -> list[tuple[tuple[str | None, ...], dict[str, Any]]]:
    groups: dict[tuple[str | None, ...], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["event_type"] == kind:
            groups[tuple(text(props(e).get(k)) for k in keys)].append(e)
    rows = [
        (
            key,
            {
                "count": len(evs),
                "visitors": len({e["visitor_id"] for e in evs}),
                "pages": len({e["page_path"] for e in evs if e["page_path"] is not None}),
                "lastSeen": max(e["ts"] for e in evs).astimezone(UTC).isoformat(),
            },
        )
        for key, evs in groups.items()
    ]
    rows.sort(
        key=lambda r: (-r[1]["count"], -r[1]["visitors"], *((k is None, k or "") for k in r[0]))
    )
    return rows


def expected(events: list[dict[str, Any]]) -> dict[str, Any]:
    def who(kind: str) -> set[int]:
        return {e["visitor_id"] for e in events if e["event_type"] == kind}

    js, viewers = who("js_error"), who("page_view")
    return {
        "summary": {
            "jsErrors": sum(e["event_type"] == "js_error" for e in events),
            "jsErrorVisitors": len(js),
            "apiErrors": sum(e["event_type"] == "api_error" for e in events),
            "apiErrorVisitors": len(who("api_error")),
            "errorVisitorShare": round(len(js) / len(viewers), 4) if viewers else 0.0,
        },
        "jsErrors": [{"message": k[0], **m} for k, m in _grouped(events, "js_error", ("message",))],
        "apiErrors": [
            {
                "endpoint": k[0],
                "method": k[1],
                "status": int(k[2]) if k[2] is not None and k[2].isdigit() else k[2],
                **m,
            }
            for k, m in _grouped(events, "api_error", ("endpoint", "method", "status"))
        ],
    }


@pytest.mark.parametrize(("tz", "raw_filters"), CASES)
def test_errors_match_reference(tz: str, raw_filters: str) -> None:
    store, ref = loaded()
    p = plan(START, END, tz, raw_filters)
    got = errors.errors(p, store)
    assert got == expected(ref.events_in(p.spec.period, p.spec.filters))
    if raw_filters == "[]":
        assert len(got["jsErrors"]) >= 3
        assert got["apiErrors"] and isinstance(got["apiErrors"][0]["status"], int)


def test_page_filter_and_limit() -> None:
    store, ref = loaded()
    p = plan(START, END, raw_filters='[["page","contains","/products/"]]', limit=2)
    got = errors.errors(p, store)
    want = expected(ref.events_in(p.spec.period, p.spec.filters))
    assert got["summary"] == want["summary"]
    assert got["jsErrors"] == want["jsErrors"][:2]
