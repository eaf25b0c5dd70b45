"""An independent, plain-Python computation of the reports, for checking the SQL.

It sessionizes from raw events itself (it does not read the `sessions` table) and applies
filters row by row, so a bug in the SQL cannot hide behind the same bug here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cadlink.events import ENGAGEMENT_EVENT_TYPES
from cadlink.query.spec import Filter, Op, Period

GAP = timedelta(minutes=30)
EVENT_COLS = {"page": "page_path", "event_type": "event_type", "page_title": "page_title"}
SESSION_COLS = {
    "entry_page": "landing_page", "exit_page": "exit_page", "source": "source", "channel": "channel",
    "referrer": "referrer_domain", "utm_source": "utm_source", "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign", "utm_term": "utm_term", "utm_content": "utm_content",
}  # fmt: skip
BOTH_COLS = {
    "country": "country", "region": "region", "city": "city", "device": "device_type",
    "browser": "browser", "os": "os", "screen": "screen_resolution",
}  # fmt: skip


@dataclass
class RefSession:
    visitor_id: int
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def started_at(self) -> datetime:
        return self.events[0]["ts"]

    @property
    def ended_at(self) -> datetime:
        return self.events[-1]["ts"]

    @property
    def page_views(self) -> int:
        return sum(e["event_type"] == "page_view" for e in self.events)

    def attr(self, column: str) -> Any:
        if column == "landing_page":
            views = [e for e in self.events if e["event_type"] == "page_view"]
            return views[0]["page_path"] if views else None
        if column == "exit_page":
            views = [e for e in self.events if e["event_type"] == "page_view"]
            return views[-1]["page_path"] if views else None
        return self.events[0][column]

    @property
    def duration(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()

    @property
    def is_bounce(self) -> bool:
        engaged = any(e["event_type"] in ENGAGEMENT_EVENT_TYPES for e in self.events)
        return self.page_views <= 1 and not engaged and self.duration < 10


def sessionize(events: list[dict[str, Any]]) -> list[RefSession]:
    by_visitor: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_visitor[e["visitor_id"]].append(e)
    out: list[RefSession] = []
    for visitor, evs in by_visitor.items():
        evs.sort(key=lambda e: (e["ts"], e["event_id"]))
        current: RefSession | None = None
        for e in evs:
            if current is None or e["ts"] - current.ended_at > GAP:
                current = RefSession(visitor)
                out.append(current)
            current.events.append(e)
    return out


def _matches(value: Any, flt: Filter) -> bool:
    if flt.op is Op.IS:
        return value in flt.values
    if flt.op is Op.IS_NOT:
        return value is None or value not in flt.values
    return value is not None and any(v.lower() in str(value).lower() for v in flt.values)


def _event_value(e: dict[str, Any], name: str) -> Any:
    if name.startswith("prop:"):
        props = e["properties_obj"] or {}
        v = props.get(name[5:])
        return (
            None
            if v is None
            else (v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v))
        )
    return e[EVENT_COLS.get(name) or BOTH_COLS[name]]


class Reference:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.sessions = sessionize(list(events))
        self.session_of: dict[str, RefSession] = {
            e["event_id"]: s for s in self.sessions for e in s.events
        }

    def _event_ok(self, e: dict[str, Any], filters: tuple[Filter, ...]) -> bool:
        for f in filters:
            if f.dimension in SESSION_COLS:
                if not _matches(self.session_of[e["event_id"]].attr(SESSION_COLS[f.dimension]), f):
                    return False
            elif not _matches(_event_value(e, f.dimension), f):
                return False
        return True

    def _session_ok(self, s: RefSession, filters: tuple[Filter, ...]) -> bool:
        for f in filters:
            if f.dimension in SESSION_COLS or f.dimension in BOTH_COLS:
                col = SESSION_COLS.get(f.dimension) or BOTH_COLS[f.dimension]
                if not _matches(s.attr(col), f):
                    return False
            elif f.op is Op.IS_NOT:  # none of the session's events has the value
                positive = Filter(f.dimension, Op.IS, f.values)
                if any(_matches(_event_value(e, f.dimension), positive) for e in s.events):
                    return False
            elif not any(_matches(_event_value(e, f.dimension), f) for e in s.events):
                return False
        return True

    def events_in(self, period: Period, filters: tuple[Filter, ...]) -> list[dict[str, Any]]:
        lo, hi = period.bounds()
        return [e for e in self.events if lo <= e["ts"] < hi and self._event_ok(e, filters)]

    def sessions_in(self, period: Period, filters: tuple[Filter, ...]) -> list[RefSession]:
        lo, hi = period.bounds()
        return [
            s for s in self.sessions if lo <= s.started_at < hi and self._session_ok(s, filters)
        ]

    def summary(self, period: Period, filters: tuple[Filter, ...]) -> dict[str, Any]:
        evs = self.events_in(period, filters)
        ss = self.sessions_in(period, filters)
        pv = sum(e["event_type"] == "page_view" for e in evs)
        n = len(ss)
        return {
            "visitors": len({e["visitor_id"] for e in evs}),
            "pageViews": pv,
            "sessions": n,
            "viewsPerSession": round(pv / n, 4) if n else None,
            "bounceRate": round(sum(s.is_bounce for s in ss) / n, 4) if n else None,
            "avgSessionDuration": round(sum(s.duration for s in ss) / n, 1) if n else None,
        }

    def breakdown(self, period: Period, filters: tuple[Filter, ...], name: str) -> dict[Any, int]:
        """value → visitors, for every value (the SQL returns the top N of these)."""
        groups: dict[Any, set[int]] = defaultdict(set)
        if name in EVENT_COLS or name.startswith("prop:"):
            for e in self.events_in(period, filters):
                if name in ("page", "page_title") and e["event_type"] != "page_view":
                    continue
                groups[_event_value(e, name)].add(e["visitor_id"])
        else:
            col = SESSION_COLS.get(name) or BOTH_COLS[name]
            for s in self.sessions_in(period, filters):
                groups[s.attr(col)].add(s.visitor_id)
        return {k: len(v) for k, v in groups.items()}
