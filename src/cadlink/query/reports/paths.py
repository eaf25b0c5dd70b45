"""Paths: where visitors go after a page and come from before it, and the commonest journeys.

Definitions: the sessions are those that started in the range and match the filters (as the
dashboard's session metrics: a filter on an event dimension keeps the sessions that have a
matching event). Their page views are every `page_view` of the session's visitor within the
session's [started_at, ended_at] (a session is a visitor's events with gaps of at most the
session timeout, 30 minutes by default), in time order (ties by event id) — all of them, also
those of other pages, so filters never cut a path short.
- for a page P: `views` = page views of P in those sessions; `next` = for each page view of P,
  the page view right after it in the same session, counted by its page; `previous` likewise
  the one right before; `exits` / `entrances` = page views of P with no page view after /
  before it in the session. `share` = count / `views`.
- journeys: the pages of the first N page views of each session with at least one (fewer when
  the session had fewer), counted by sessions, most common first.
"""

from __future__ import annotations

from typing import Any

from cadlink.query.plan import EVENTS, SESSIONS, Executor, Plan
from cadlink.query.spec import QueryError
from cadlink.query.sql import Sql

MAX_STEPS = 10


def _page_views(plan: Plan) -> Sql:
    """Page views of the selected sessions, numbered within each session."""
    return (
        Sql(
            "SELECT s.session_key AS sk, e.page_path AS page, row_number() OVER "
            "(PARTITION BY s.session_key ORDER BY e.ts, e.event_id) AS n "
            f"FROM {SESSIONS} s JOIN {EVENTS} e ON e.site_id = s.site_id "
            "AND e.visitor_id = s.visitor_id AND e.ts >= s.started_at AND e.ts <= s.ended_at "
            "WHERE "
        )
        + plan.session_where()
        + " AND e.event_type = 'page_view'"
    )


def _neighbours(plan: Plan, page: str) -> Sql:
    return (
        Sql("WITH pv AS (")
        + _page_views(plan)
        + "), seq AS (SELECT page, lag(page) OVER w AS prev_page, lead(page) OVER w AS next_page, "
        "lag(n) OVER w AS prev_n, lead(n) OVER w AS next_n "
        "FROM pv WINDOW w AS (PARTITION BY sk ORDER BY n)), "
        "hits AS (SELECT * FROM seq WHERE page = ?)" + Sql("", (page,))
    )


def neighbours(plan: Plan, db: Executor, page: str, limit: int) -> dict[str, Any]:
    """Next and previous pages of `page` (an exact path), and its views, exits and entrances,
    in one statement: the page views are joined and numbered once, not once for each part
    (10 M events: 3.6 -> 1.9 s for `paths` with a page)."""
    if not page or len(page) > 2048:
        raise QueryError("page must be a path of 1-2048 characters", "page")
    rows = plan.run(
        db,
        _neighbours(plan, page) + ", sides AS ("
        "SELECT 0 AS side, NULL AS page, count(*) AS cnt, "
        "count(*) FILTER (WHERE next_n IS NULL) AS exits, "
        "count(*) FILTER (WHERE prev_n IS NULL) AS entrances FROM hits "
        "UNION ALL SELECT 1, next_page, count(*), NULL, NULL FROM hits "
        "WHERE next_n IS NOT NULL GROUP BY next_page "
        "UNION ALL SELECT 2, prev_page, count(*), NULL, NULL FROM hits "
        "WHERE prev_n IS NOT NULL GROUP BY prev_page) "
        "SELECT * FROM (SELECT sides.*, row_number() OVER "
        "(PARTITION BY side ORDER BY cnt DESC, page NULLS LAST) AS rn FROM sides) r "
        "WHERE side = 0 OR rn <= ? ORDER BY side, rn" + Sql("", (limit,)),
    )
    total = next(r for r in rows if r["side"] == 0)  # an aggregate without groups: one row
    views = int(total["cnt"] or 0)

    def side(k: int) -> list[dict[str, Any]]:
        return [
            {"page": r["page"], "count": int(r["cnt"]),
             "share": round(int(r["cnt"]) / views, 4) if views else 0.0}
            for r in rows if r["side"] == k
        ]  # fmt: skip

    return {
        "page": page,
        "views": views,
        "exits": int(total["exits"] or 0),
        "entrances": int(total["entrances"] or 0),
        "next": side(1),
        "previous": side(2),
    }


def journeys(plan: Plan, db: Executor, steps: int, limit: int) -> list[dict[str, Any]]:
    """The commonest sequences of the first `steps` page views of sessions."""
    if not 1 <= steps <= MAX_STEPS:
        raise QueryError(f"steps must be between 1 and {MAX_STEPS}", "steps")
    cols = [f"p{i}" for i in range(1, steps + 1)]
    pivot = ", ".join(f"max(CASE WHEN n = {i} THEN page END) AS p{i}" for i in range(1, steps + 1))
    keys = ", ".join(cols)
    order = ", ".join(f"{c} NULLS LAST" for c in cols)
    rows = plan.run(
        db,
        Sql("WITH pv AS (")
        + _page_views(plan)
        + f"), j AS (SELECT sk, count(*) AS len, {pivot} FROM pv WHERE n <= ? GROUP BY sk) "
        + Sql("", (steps,))
        + f"SELECT len, {keys}, count(*) AS sessions FROM j GROUP BY len, {keys} "
        f"ORDER BY sessions DESC, len DESC, {order} LIMIT ?" + Sql("", (limit,)),
    )
    return [
        {"pages": [r[c] for c in cols[: int(r["len"])]], "sessions": int(r["sessions"])}
        for r in rows
    ]


def paths(plan: Plan, db: Executor, page: str | None, steps: int = 3) -> dict[str, Any]:
    limit = plan.spec.limit
    return {
        "page": None if page is None else neighbours(plan, db, page, limit),
        "journeys": journeys(plan, db, steps, limit),
    }


__all__ = ["journeys", "neighbours", "paths"]
