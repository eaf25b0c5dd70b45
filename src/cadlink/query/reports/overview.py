"""The dashboard: summary with the previous period, a time series, and breakdowns.

Page views and visitors count events in the range; sessions, bounce rate and duration count
sessions that started in the range (a session belongs to the day it began).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from cadlink.query import buckets
from cadlink.query.dimensions import BREAKDOWNS, Scope, dimension
from cadlink.query.plan import EVENTS, HOURS, PAGE_HOURS, SESSIONS, Executor, Plan
from cadlink.query.spec import Granularity, Period
from cadlink.query.sql import Sql, raw


def _ratio(num: float, den: float) -> float:
    return round(num / den, 4) if den else 0.0


def _visits(plan: Plan, db: Executor, period: Period) -> dict[str, Any]:
    """Page views and distinct visitors of the period: from the hourly rollup when it can
    answer exactly, else from the events."""
    d = plan.dialect
    if plan.uses_hour_rollup(period):
        return plan.run(
            db,
            Sql("SELECT sum(r.page_views) AS page_views, ")
            + d.distinct("r.visitor_id", approx=False)
            + f" AS visitors FROM {HOURS} r WHERE "
            + plan.rollup_where(period),
        )[0]
    return plan.run(
        db,
        Sql("SELECT count(*) FILTER (WHERE e.event_type = 'page_view') AS page_views, ")
        + d.distinct("e.visitor_id", approx=False)
        + f" AS visitors FROM {EVENTS} e WHERE "
        + plan.event_where(period),
    )[0]


def summary(plan: Plan, db: Executor, period: Period) -> dict[str, Any]:
    ev = _visits(plan, db, period)
    se = plan.run(
        db,
        Sql(
            "SELECT count(*) AS sessions, "
            "avg(CASE WHEN s.is_bounce THEN 1.0 ELSE 0.0 END) AS bounce_rate, "
            f"avg(s.duration_s) AS avg_duration FROM {SESSIONS} s WHERE "
        )
        + plan.session_where(period),
    )[0]
    sessions = int(se["sessions"] or 0)
    page_views = int(ev["page_views"] or 0)
    # Per-session figures of a period without sessions are null, not 0: "0% bounce" and
    # "0 s per visit" would read as results (the dashboard shows a dash).
    return {
        "visitors": int(ev["visitors"] or 0),
        "pageViews": page_views,
        "sessions": sessions,
        "viewsPerSession": _ratio(page_views, sessions) if sessions else None,
        "bounceRate": round(float(se["bounce_rate"] or 0.0), 4) if sessions else None,
        "avgSessionDuration": round(float(se["avg_duration"] or 0.0), 1) if sessions else None,
    }


def _buckets(period: Period, granularity: Granularity) -> list[datetime]:
    start = datetime.combine(period.start, datetime.min.time())
    end = datetime.combine(period.end + timedelta(days=1), datetime.min.time())
    if granularity is Granularity.HOUR:
        return [
            start + timedelta(hours=h) for h in range(int((end - start).total_seconds() // 3600))
        ]
    days = [start + timedelta(days=i) for i in range(period.days)]
    if granularity is Granularity.DAY:
        return days
    if granularity is Granularity.WEEK:
        return sorted({d - timedelta(days=d.weekday()) for d in days})
    return sorted({d.replace(day=1) for d in days})


def timeseries(
    plan: Plan, db: Executor, period: Period, granularity: Granularity
) -> list[dict[str, Any]]:
    d = plan.dialect
    se_key, decode = buckets.bucket(d.epoch_ms("s.started_at"), granularity, period, d.int_div)
    if plan.uses_hour_rollup(period):
        hour_key, _ = buckets.bucket(raw("(r.hour_no * 3600000)"), granularity, period, d.int_div)
        ev = plan.run(
            db,
            Sql("SELECT ")
            + hour_key
            + " AS bucket, sum(r.page_views) AS page_views, "
            + d.distinct("r.visitor_id", approx=False)
            + f" AS visitors FROM {HOURS} r WHERE "
            + plan.rollup_where(period)
            + " GROUP BY 1",
        )
    else:
        ev_key, _ = buckets.bucket(d.epoch_ms("e.ts"), granularity, period, d.int_div)
        ev = plan.run(
            db,
            Sql("SELECT ")
            + ev_key
            + " AS bucket, count(*) FILTER (WHERE e.event_type = 'page_view') AS page_views, "
            + d.distinct("e.visitor_id", approx=False)
            + f" AS visitors FROM {EVENTS} e WHERE "
            + plan.event_where(period)
            + " GROUP BY 1",
        )
    se = plan.run(
        db,
        Sql("SELECT ")
        + se_key
        + f" AS bucket, count(*) AS sessions FROM {SESSIONS} s WHERE "
        + plan.session_where(period)
        + " GROUP BY 1",
    )
    by_ev = {decode(int(r["bucket"])): r for r in ev}
    by_se = {decode(int(r["bucket"])): r for r in se}
    out = []
    for b in _buckets(period, granularity):
        e, s = by_ev.get(b, {}), by_se.get(b, {})
        out.append(
            {
                "date": b.isoformat() if granularity is Granularity.HOUR else b.date().isoformat(),
                "visitors": int(e.get("visitors") or 0),
                "pageViews": int(e.get("page_views") or 0),
                "sessions": int(s.get("sessions") or 0),
            }
        )
    return out


# Above this many sessions in the range, breakdown visitor counts use a HyperLogLog estimate
# (about 2% error; DuckDB's approx_count_distinct): exact distinct counts cost 5x more there.
# The summary and the time series stay exact; the answer says which numbers are estimates.
APPROX_SESSIONS = 250_000


def breakdown(
    plan: Plan, db: Executor, name: str, limit: int, approx: bool = False
) -> list[dict[str, Any]]:
    """Top values of one dimension by visitors (estimated when `approx`)."""
    dim = dimension(name)
    d = plan.dialect
    if name == "page" and plan.uses_hour_rollup():
        rows = plan.run(
            db,
            Sql("SELECT r.page_path AS value, ")
            + d.distinct("r.visitor_id", approx=approx)
            + " AS visitors, sum(r.views) AS page_views "
            + f"FROM {PAGE_HOURS} r WHERE "
            + plan.rollup_where()
            + " GROUP BY 1 ORDER BY visitors DESC, page_views DESC, value LIMIT ?"
            + Sql("", (limit,)),
        )
        return [
            {"value": r["value"], "visitors": int(r["visitors"]), "pageViews": int(r["page_views"]),
             "events": int(r["page_views"])}
            for r in rows
        ]  # fmt: skip
    if dim.scope is Scope.EVENT:
        expr = plan.event_expr(dim)
        only_views = name in ("page", "page_title")
        where = plan.event_where()
        if only_views:
            where = where + " AND e.event_type = 'page_view'"
        rows = plan.run(
            db,
            Sql("SELECT ")
            + expr
            + " AS value, "
            + d.distinct("e.visitor_id", approx=approx)
            + " AS visitors, count(*) FILTER (WHERE e.event_type = 'page_view') AS page_views, "
            + f"count(*) AS events FROM {EVENTS} e WHERE "
            + where
            + " GROUP BY 1 ORDER BY visitors DESC, page_views DESC, value LIMIT ?"
            + Sql("", (limit,)),
        )
        return [
            {"value": r["value"], "visitors": int(r["visitors"]), "pageViews": int(r["page_views"]),
             "events": int(r["events"])}
            for r in rows
        ]  # fmt: skip
    expr = plan.session_expr(dim)
    rows = plan.run(
        db,
        Sql("SELECT ")
        + expr
        + " AS value, "
        + d.distinct("s.visitor_id", approx=approx)
        + " AS visitors, count(*) AS sessions, sum(s.page_views) AS page_views, "
        + "count(*) FILTER (WHERE s.is_bounce) AS bounces "
        + f"FROM {SESSIONS} s WHERE "
        + plan.session_where()
        + " GROUP BY 1 ORDER BY visitors DESC, sessions DESC, value LIMIT ?"
        + Sql("", (limit,)),
    )
    return [_session_row(r) for r in rows]


def _session_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "value": r["value"],
        "visitors": int(r["visitors"]),
        "sessions": int(r["sessions"]),
        "pageViews": int(r["page_views"] or 0),
        # Bounces are counted, not averaged in SQL: avg over a CASE of decimals cost 15% of
        # the grouped breakdown statement on DuckDB.
        "bounceRate": _ratio(int(r["bounces"] or 0), int(r["sessions"])),
    }


def session_breakdowns(
    plan: Plan, db: Executor, names: Sequence[str], limit: int, approx: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """`breakdown` for several session dimensions in one statement, which reads the sessions
    of the range once for all of them; a window keeps each dimension's top `limit` rows in
    the same order `breakdown` uses."""
    if not names:
        return {}
    cols = [plan.session_expr(dimension(n)).text for n in names]
    grouped = _grouping_sets(plan, cols) if approx else _unpivoted(plan, cols)
    ranked = (
        Sql(
            "SELECT dim_no, value, visitors, sessions, page_views, bounces, "
            "row_number() OVER (PARTITION BY dim_no ORDER BY visitors DESC, sessions DESC, "
            "value) AS rank_no FROM ("
        )
        + grouped
        + ") g"
    )
    rows = plan.run(
        db,
        Sql("SELECT * FROM (")
        + ranked
        + ") r WHERE rank_no <= ?"
        + Sql(" ORDER BY dim_no, rank_no", (limit,)),
    )
    out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in rows:
        out[names[int(r["dim_no"])]].append(_session_row(r))
    return out


def _grouping_sets(plan: Plan, cols: list[str]) -> Sql:
    """Estimated visitors: GROUPING SETS, one hash aggregation for every dimension."""
    k = len(cols)
    # GROUPING(c1..ck) sets bit k-1-i when column i is *not* grouped: set i has all bits but it.
    masks = [((1 << k) - 1) ^ (1 << (k - 1 - i)) for i in range(k)]
    dim_no = "CASE grp " + " ".join(f"WHEN {m} THEN {i}" for i, m in enumerate(masks)) + " END"
    value = "CASE grp " + " ".join(f"WHEN {m} THEN {c.split('.')[-1]}" for m, c in
                                   zip(masks, cols, strict=True)) + " END"  # fmt: skip
    inner = (
        Sql(f"SELECT GROUPING({', '.join(cols)}) AS grp, {', '.join(cols)}, ")
        + plan.dialect.distinct("s.visitor_id", approx=True)
        + " AS visitors, count(*) AS sessions, sum(s.page_views) AS page_views, "
        + "count(*) FILTER (WHERE s.is_bounce) AS bounces "
        + f"FROM {SESSIONS} s WHERE "
        + plan.session_where()
        + f" GROUP BY GROUPING SETS ({', '.join(f'({c})' for c in cols)})"
    )
    return (
        Sql(f"SELECT {dim_no} AS dim_no, {value} AS value, visitors, sessions, page_views, ")
        + "bounces FROM ("
        + inner
        + ") i"
    )


def _unpivoted(plan: Plan, cols: list[str]) -> Sql:
    """Exact visitors: each session unpivoted into one row per dimension (`dim_no`, `value`)
    and counted per value. A visitor with one session in the range counts once with it; only
    the sessions of visitors with several are counted per visitor first, the rest need no
    deduplication (at 4 M events, 146 against 499 ms for counting all of them per visitor).

    Not `count(DISTINCT)` over GROUPING SETS: DuckDB 2.0 runs that as two hash aggregations
    per set side by side, and their fixed allocations alone (34 for 17 dimensions) outgrew
    a 64MB memory limit at 2.8 k sessions and the default 256MB at 220 k, whatever the
    groups held. Plain aggregations need memory for their groups only, and spill to disk
    when those do not fit (docs/benchmarks.md, ninth pass)."""
    picked = ", ".join(f"{c} AS d{i}" for i, c in enumerate(cols))
    values = ", ".join(f"CAST(d{i} AS VARCHAR)" for i in range(len(cols)))
    sums = "sum(page_views) AS page_views, count(*) FILTER (WHERE is_bounce) AS bounces"
    return (
        Sql(
            "WITH u AS (SELECT visitor_id, visits, page_views, is_bounce, "
            f"unnest(range({len(cols)})) AS dim_no, unnest([{values}]) AS value FROM ("
            f"SELECT s.visitor_id, s.page_views, s.is_bounce, {picked}, "
            f"count(*) OVER (PARTITION BY s.visitor_id) AS visits FROM {SESSIONS} s WHERE "
        )
        + plan.session_where()
        + Sql(
            ") s) "
            "SELECT dim_no, value, sum(visitors) AS visitors, sum(sessions) AS sessions, "
            "sum(page_views) AS page_views, sum(bounces) AS bounces FROM ("
            f"SELECT dim_no, value, count(*) AS visitors, count(*) AS sessions, {sums} "
            "FROM u WHERE visits = 1 GROUP BY dim_no, value "
            "UNION ALL "
            "SELECT dim_no, value, count(*) AS visitors, sum(sessions) AS sessions, "
            "sum(page_views) AS page_views, sum(bounces) AS bounces FROM ("
            f"SELECT dim_no, value, visitor_id, count(*) AS sessions, {sums} "
            "FROM u WHERE visits > 1 GROUP BY dim_no, value, visitor_id) m "
            "GROUP BY dim_no, value) p GROUP BY dim_no, value"
        )
    )


def dashboard(
    plan: Plan,
    db: Executor,
    breakdowns: tuple[str, ...] = BREAKDOWNS,
    workers: int = 3,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Every panel of the overview. The statements are independent, so they run side by side
    (the engines release the GIL); on DuckDB the session breakdowns share one statement.
    The summary's `previous` ends as far into its period as `now` is into the current one."""
    spec = plan.spec
    approx = spec.options.get("exact") != "true" and _sessions(plan, db) > APPROX_SESSIONS
    by_sessions = (
        [n for n in breakdowns if dimension(n).scope is not Scope.EVENT]
        if plan.groups_breakdowns()
        else []
    )
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="report") as pool:
        grouped = pool.submit(session_breakdowns, plan, db, by_sessions, spec.limit, approx)
        current = pool.submit(summary, plan, db, spec.period)
        before = spec.period.previous(now=now or datetime.now(UTC))
        previous = pool.submit(summary, plan, db, before)
        series = pool.submit(timeseries, plan, db, spec.period, spec.granularity)
        parts = {
            name: pool.submit(breakdown, plan, db, name, spec.limit, approx)
            for name in breakdowns
            if name not in by_sessions
        }
        tables = {**grouped.result(), **{name: part.result() for name, part in parts.items()}}
        return {
            "summary": {**current.result(), "previous": previous.result() | _span(before)},
            "timeseries": series.result(),
            "breakdowns": {name: tables[name] for name in breakdowns},
            "estimated": {"breakdownVisitors": approx},
        }


def _span(period: Period) -> dict[str, Any]:
    """The previous period's days, and where it was cut short (epoch ms), if it was."""
    cut = {"until": int(period.until.timestamp() * 1000)} if period.until else {}
    return {"startDate": period.start.isoformat(), "endDate": period.end.isoformat(), **cut}


def _sessions(plan: Plan, db: Executor) -> int:
    row = plan.run(db, Sql(f"SELECT count(*) AS n FROM {SESSIONS} s WHERE ") + plan.session_where())
    return int(row[0]["n"] or 0)


__all__ = ["breakdown", "dashboard", "raw", "session_breakdowns", "summary", "timeseries"]
