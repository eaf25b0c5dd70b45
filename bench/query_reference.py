"""The reference for the query layer's overhead: the 30-day UTC dashboard written by hand.

The same answers as `GET /api/v1/analytics/dashboard` for an unfiltered 30-day UTC period
(summary and previous summary, daily series, page breakdown, every session breakdown), as the
fastest literal SQL we know over the same tables, run with the same number of threads and
the store's own `fetch`, without plans, composed SQL or answer
shaping. The bench checks that both give the same numbers before it times them, so the ratio
compares equal work. On PostgreSQL, like the query layer, visitor counts are always exact.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from cadlink.store.events.base import EventStore

SESSION_COLUMNS = (
    "landing_page", "exit_page", "source", "channel", "referrer_domain", "utm_source",
    "utm_medium", "utm_campaign", "utm_term", "utm_content", "country", "region", "city",
    "device_type", "browser", "os", "screen_resolution",
)  # fmt: skip


def dashboard(
    store: EventStore, site: str, lo: datetime, days: int, limit: int, exact: bool
) -> dict[str, Any]:
    """Raw rows of every panel; `lo` is the UTC midnight the period starts at. `exact`: the
    breakdowns count distinct visitors exactly, as the layer does for small ranges."""
    duck = store.engine == "duckdb"
    estimate = duck and not exact  # PostgreSQL has no estimate: always exact
    distinct = "approx_count_distinct" if estimate else "count(DISTINCT"
    close = "" if estimate else ")"  # count(DISTINCT x) needs one more parenthesis
    day_of = "epoch_ms(started_at) // 86400000" if duck else (
        "floor(EXTRACT(EPOCH FROM started_at) / 86400)::bigint")  # fmt: skip
    hi = lo + timedelta(days=days)
    plo = lo - timedelta(days=days)
    h_lo, h_hi, h_plo = (int(t.timestamp()) // 3600 for t in (lo, hi, plo))
    visitors = (
        "SELECT sum(page_views), count(DISTINCT visitor_id) FROM rollup_visitor_hours "
        "WHERE site_id = ? AND hour_no >= ? AND hour_no < ?"
    )
    sessions = (
        "SELECT started_at >= ? AS cur, count(*), avg(is_bounce::INT), avg(duration_s) "
        "FROM sessions WHERE site_id = ? AND started_at >= ? AND started_at < ? GROUP BY 1"
    )
    div = "//" if duck else "/"  # integer division of BIGINTs
    series = (
        f"SELECT hour_no {div} 24, sum(page_views), count(DISTINCT visitor_id) "
        "FROM rollup_visitor_hours WHERE site_id = ? AND hour_no >= ? AND hour_no < ? "
        "GROUP BY 1"
    )
    session_series = (
        f"SELECT {day_of}, count(*) FROM sessions "
        "WHERE site_id = ? AND started_at >= ? AND started_at < ? GROUP BY 1"
    )
    pages = (
        f"SELECT page_path, {distinct}(visitor_id{close}) AS v, sum(views) AS n "
        "FROM rollup_page_hours WHERE site_id = ? AND hour_no >= ? AND hour_no < ? "
        "GROUP BY 1 ORDER BY v DESC, n DESC, page_path LIMIT ?"
    )
    cols = ", ".join(SESSION_COLUMNS)
    # Exact on DuckDB: count(DISTINCT) over GROUPING SETS runs out of the default 256MB at 220 k
    # sessions (overview._unpivoted); unpivoted, visitors with one session need no dedup.
    values = ", ".join(f"CAST({c} AS VARCHAR)" for c in SESSION_COLUMNS)
    unpivoted = (
        "WITH u AS (SELECT visitor_id, k, page_views, is_bounce, "
        f"unnest(range({len(SESSION_COLUMNS)})) AS g, unnest([{values}]) AS x FROM ("
        "SELECT *, count(*) OVER (PARTITION BY visitor_id) AS k FROM sessions "
        "WHERE site_id = ? AND started_at >= ? AND started_at < ?)) "
        "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY g ORDER BY v DESC, n DESC, x) "
        "AS r FROM (SELECT g, x, sum(v) AS v, sum(n) AS n, sum(pv) AS pv, sum(b) AS b FROM ("
        "SELECT g, x, count(*) AS v, count(*) AS n, sum(page_views) AS pv, "
        "count(*) FILTER (WHERE is_bounce) AS b FROM u WHERE k = 1 GROUP BY g, x UNION ALL "
        "SELECT g, x, count(*), sum(n), sum(pv), sum(b) FROM (SELECT g, x, visitor_id, "
        "count(*) AS n, sum(page_views) AS pv, count(*) FILTER (WHERE is_bounce) AS b "
        "FROM u WHERE k > 1 GROUP BY ALL) GROUP BY g, x) GROUP BY g, x)) WHERE r <= ?"
    )
    grouping_sets = (
        f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY g ORDER BY v DESC, n DESC, "
        f"coalesce({cols})) AS r FROM (SELECT GROUPING({cols}) AS g, {cols}, "
        f"{distinct}(visitor_id{close}) AS v, count(*) AS n, sum(page_views) AS pv, "
        "avg(is_bounce::INT) AS b FROM sessions "
        "WHERE site_id = ? AND started_at >= ? AND started_at < ? "
        f"GROUP BY GROUPING SETS ({', '.join(f'({c})' for c in SESSION_COLUMNS)})) x) y "
        "WHERE r <= ?"
    )
    breakdowns = unpivoted if duck and exact else grouping_sets
    statements = {
        "visitors": (visitors, [site, h_lo, h_hi]),
        "previous_visitors": (visitors, [site, h_plo, h_lo]),
        "sessions": (sessions, [lo, site, plo, hi]),
        "series": (series, [site, h_lo, h_hi]),
        "session_series": (session_series, [site, lo, hi]),
        "pages": (pages, [site, h_lo, h_hi, limit]),
        "breakdowns": (breakdowns, [site, lo, hi, limit]),
    }

    def run(item: tuple[str, list[Any]]) -> list[tuple[Any, ...]]:
        sql, params = item
        if not duck:
            sql = sql.replace("?", "%s")
        return [tuple(r.values()) for r in store.fetch(sql, params)]

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(statements, pool.map(run, statements.values()), strict=True))


def same_numbers(layer: dict[str, Any], ref: dict[str, Any]) -> bool:
    """The layer's dashboard and the reference's rows carry the same summary and series."""
    pv, visitors = ref["visitors"][0]
    if (layer["summary"]["pageViews"], layer["summary"]["visitors"]) != (pv, visitors):
        return False
    sessions = {bool(r[0]): r[1] for r in ref["sessions"]}
    if layer["summary"]["sessions"] != sessions.get(True, 0):
        return False
    if layer["summary"]["previous"]["sessions"] != sessions.get(False, 0):
        return False
    # Every session breakdown's visitor counts (the reference's rows carry them in column
    # 1 + len(SESSION_COLUMNS) from GROUPING SETS, in column 2 unpivoted: g, x, v, n, pv, b,
    # r), then the series.
    got = sorted(
        r["visitors"] for name, rows in layer["breakdowns"].items() if name != "page" for r in rows
    )
    at = 2 if ref["breakdowns"] and len(ref["breakdowns"][0]) == 7 else 1 + len(SESSION_COLUMNS)
    if got != sorted(int(r[at]) for r in ref["breakdowns"]):
        return False
    days = {int(r[0]): int(r[2]) for r in ref["series"]}
    return sorted(days.values()) == sorted(
        p["visitors"] for p in layer["timeseries"] if p["visitors"]
    )
