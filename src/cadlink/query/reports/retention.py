"""Weekly retention cohorts.

Definitions (events in the range that match the filters): weeks start on Monday in the site's
time zone. A visitor's cohort is the week of their first event in the range; they are *active*
in week k of their cohort when they have an event in the week starting k weeks after the
cohort's week. `size` = visitors in the cohort (all active in week 0); `active[k]` = visitors
active in week k; `retention[k]` = `active[k]` / `size`. Weeks that start after the range's
last day are null (not yet observed); the range's first and last weeks may be partial.
`average[k]` = the sum of `active[k]` / the sum of `size` over the cohorts that observed week k.

Who is a visitor: anonymous visitor ids are a hash rotated daily, so without consent (the
tracker then keeps its own `visitorId`) an anonymous person is a new visitor every day and
anonymous retention beyond week 0 mostly reflects consented visitors. Retention is meaningful
for consented or identified visitors; every visitor id is included by default. With
`identified`, only events carrying a `user_id` count and people are keyed by `user_id` (their
cohort is the week of their first identified event).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from cadlink.query import buckets
from cadlink.query.plan import EVENTS, Executor, Plan
from cadlink.query.spec import Granularity, QueryError
from cadlink.query.sql import Sql

MAX_WEEKS = 52


def retention(plan: Plan, db: Executor, weeks: int = 8, identified: bool = False) -> dict[str, Any]:
    if not 0 <= weeks <= MAX_WEEKS:
        raise QueryError(f"weeks must be between 0 and {MAX_WEEKS}", "weeks")
    who = "e.user_id" if identified else "e.visitor_id"
    only = " AND e.user_id IS NOT NULL" if identified else ""
    period = plan.spec.period
    d = plan.dialect
    # Weeks from the zone's offsets as Python's zoneinfo has them, as every other report:
    # DuckDB's own zone data disagreed for 13 zones in 2026 (a cohort after the range).
    week, decode = buckets.bucket(d.epoch_ms("e.ts"), Granularity.WEEK, period, d.int_div)
    rows = plan.run(
        db,
        Sql(f"WITH act AS (SELECT {who} AS who, ")
        + week
        + f" AS wk FROM {EVENTS} e WHERE "
        + plan.event_where()
        + only
        + " GROUP BY 1, 2), firsts AS (SELECT who, min(wk) AS cohort FROM act GROUP BY who) "
        "SELECT f.cohort AS cohort, a.wk AS wk, count(*) AS active "
        "FROM act a JOIN firsts f ON f.who = a.who GROUP BY f.cohort, a.wk",
    )
    counts: dict[date, dict[int, int]] = {}
    for r in rows:
        cohort = decode(int(r["cohort"])).date()
        k = (decode(int(r["wk"])).date() - cohort).days // 7
        counts.setdefault(cohort, {})[k] = int(r["active"])
    cohorts: list[dict[str, Any]] = []
    for cohort in sorted(counts):
        size = counts[cohort].get(0, 0)
        active: list[int | None] = []
        share: list[float | None] = []
        for k in range(weeks + 1):
            if cohort + timedelta(weeks=k) > period.end:
                active.append(None)
                share.append(None)
            else:
                n = counts[cohort].get(k, 0)
                active.append(n)
                share.append(round(n / size, 4) if size else 0.0)
        cohorts.append(
            {"cohort": cohort.isoformat(), "size": size, "active": active, "retention": share}
        )
    average: list[float | None] = []
    for k in range(weeks + 1):
        seen = [c for c in cohorts if c["active"][k] is not None]
        total = sum(c["size"] for c in seen)
        average.append(round(sum(c["active"][k] for c in seen) / total, 4) if total else None)
    return {"weeks": weeks, "identified": identified, "cohorts": cohorts, "average": average}


__all__ = ["MAX_WEEKS", "retention"]
