"""Realtime: who is on the site now.

With `now` the time of the request (injectable for tests):

- `activeUsers`: distinct visitors with any event in [now - 5 min, now + 1 min);
- `pageViewsLastMinute`: `page_view` events in [now - 60 s, now + 1 min);
- `clicksLastMinute`: `click`, `product_click`, `affiliate_click` and `outbound_click` events
  in [now - 60 s, now + 1 min);
- `conversionRate`: converted sessions / sessions, over the sessions that started today in the
  site's time zone (a session is converted by an affiliate click, purchase, form submit or
  copied coupon; 0 when there is none yet);
- `visitors`: the active visitors, most recently seen first, at most 50: `visitorId` (a
  string: 64-bit ids overflow JavaScript numbers), `currentPage` (page of their latest
  event), `lastSeen` (ms), `country`, `deviceType`, `browser` of that event, and `source` of
  the session it belongs to.

The minute of slack after `now` keeps visitors whose clocks run a little ahead (the loader
accepts client timestamps up to 60 s in the future) from vanishing while they are active.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cadlink.query.dialects import dialect_for
from cadlink.query.plan import EVENTS, SESSIONS, Executor, Plan
from cadlink.query.spec import Period, ReportSpec
from cadlink.query.sql import Sql, in_list, param

ACTIVE = timedelta(minutes=5)
RECENT = timedelta(minutes=1)
SLACK = timedelta(minutes=1)
MAX_VISITORS = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CLICK_EVENT_TYPES = ("affiliate_click", "click", "outbound_click", "product_click")


def _plan(db: Executor, site_id: str, timezone: str, now: datetime) -> Plan:
    today = now.astimezone(ZoneInfo(timezone)).date()
    # Scoping covers yesterday to tomorrow, so the 5-minute window may cross local midnight;
    # the window itself is the extra condition on `ts`.
    period = Period(today - timedelta(days=1), today + timedelta(days=1), timezone)
    return Plan(ReportSpec(site_id, period), dialect_for(db.engine))


def _window(lo: datetime, hi: datetime) -> Sql:
    return Sql("e.ts >= ? AND e.ts < ?", (lo, hi))


def counts(plan: Plan, db: Executor, now: datetime) -> dict[str, int]:
    hi = now + SLACK
    recent = Sql("e.ts >= ?", (now - RECENT,))
    sql = (
        Sql("SELECT ")
        + plan.dialect.distinct("e.visitor_id", approx=False)
        + " AS active, count(*) FILTER (WHERE e.event_type = 'page_view' AND "
        + recent
        + ") AS page_views, count(*) FILTER (WHERE "
        + in_list(Sql("e.event_type"), CLICK_EVENT_TYPES)
        + " AND "
        + recent
        + f") AS clicks FROM {EVENTS} e WHERE "
        + plan.event_where()
        + " AND "
        + _window(now - ACTIVE, hi)
    )
    row = plan.run(db, sql)[0]
    return {
        "activeUsers": int(row["active"] or 0),
        "pageViewsLastMinute": int(row["page_views"] or 0),
        "clicksLastMinute": int(row["clicks"] or 0),
    }


def conversion_rate(plan: Plan, db: Executor, now: datetime) -> float:
    today = now.astimezone(ZoneInfo(plan.spec.period.timezone)).date()
    period = Period(today, today, plan.spec.period.timezone)
    sql = (
        Sql("SELECT count(*) AS sessions, count(*) FILTER (WHERE s.converted) AS converted ")
        + f"FROM {SESSIONS} s WHERE "
        + plan.session_where(period)
    )
    row = plan.run(db, sql)[0]
    sessions = int(row["sessions"] or 0)
    return round(int(row["converted"] or 0) / sessions, 4) if sessions else 0.0


def visitors(plan: Plan, db: Executor, now: datetime) -> list[dict[str, Any]]:
    sql = (
        Sql(
            "WITH latest AS (SELECT e.site_id, e.visitor_id, e.ts, e.page_path, e.country, "
            "e.device_type, e.browser, row_number() OVER (PARTITION BY e.visitor_id "
            f"ORDER BY e.ts DESC, e.event_id DESC) AS rn FROM {EVENTS} e WHERE "
        )
        + plan.event_where()
        + " AND "
        + _window(now - ACTIVE, now + SLACK)
        + ") SELECT l.visitor_id, l.ts, l.page_path, l.country, l.device_type, l.browser, "
        # The session holding the latest event; `l` is already scoped to the site.
        + f"s.source FROM latest l LEFT JOIN {SESSIONS} s ON s.site_id = l.site_id "
        + "AND s.visitor_id = l.visitor_id AND s.started_at <= l.ts AND s.ended_at >= l.ts "
        + "AND s.ended_at >= "
        + param(now - ACTIVE)
        + " WHERE l.rn = 1 ORDER BY l.ts DESC, l.visitor_id LIMIT "
        + param(MAX_VISITORS)
    )
    return [
        {
            "visitorId": str(r["visitor_id"]),
            "currentPage": r["page_path"],
            "lastSeen": (r["ts"] - _EPOCH) // timedelta(milliseconds=1),
            "country": r["country"],
            "deviceType": r["device_type"],
            "browser": r["browser"],
            "source": r["source"],
        }
        for r in plan.run(db, sql)
    ]


def realtime(
    db: Executor, site_id: str, timezone: str = "UTC", now: datetime | None = None
) -> dict[str, Any]:
    """Active visitors, last-minute counts, today's conversion rate and who is online."""
    at = now or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    plan = _plan(db, site_id, timezone, at)
    return {
        **counts(plan, db, at),
        "conversionRate": conversion_rate(plan, db, at),
        "visitors": visitors(plan, db, at),
    }
