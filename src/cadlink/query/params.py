"""Report parameters from an HTTP query string → a `ReportSpec`, with errors naming the field."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from cadlink.query.dimensions import dimension
from cadlink.query.spec import Filter, Granularity, Op, Period, QueryError, ReportSpec

MAX_FILTERS = 20
MAX_DAYS = 3660
MIN_DAY, MAX_DAY = date(1970, 1, 1), date(9000, 12, 31)


def parse_day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        if len(value) != 10:  # a day, not a time: nothing sent is silently cut off
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise QueryError(f"{field} must be a date like 2026-01-31", field) from None
    if not MIN_DAY <= day <= MAX_DAY:  # beyond them the period's arithmetic overflows
        raise QueryError(f"{field} must be between {MIN_DAY} and {MAX_DAY}", field)
    return day


def period(
    start: str | None,
    end: str | None,
    timezone: str,
    default_days: int = 30,
    max_days: int | None = MAX_DAYS,
) -> Period:
    """Whole days in the site's zone; `max_days` caps report ranges (None: no cap, for
    listings that page through raw rows)."""
    today = datetime.now(ZoneInfo(timezone)).date()
    end_day = parse_day(end, "endDate") or today
    start_day = parse_day(start, "startDate") or end_day - timedelta(days=default_days - 1)
    if start_day > end_day:
        raise QueryError("startDate is after endDate", "startDate")
    if max_days is not None and (end_day - start_day).days >= max_days:
        raise QueryError(f"a range may span at most {max_days} days", "startDate")
    return Period(start_day, end_day, timezone)


def filters(raw: str | None) -> tuple[Filter, ...]:
    """`[["source","is","Google"], ["prop:variant","is_not",["A","B"]]]` → filters."""
    if not raw:
        return ()
    try:
        items = json.loads(raw)
    except ValueError:
        raise QueryError(
            "filters must be a JSON array of [dimension, op, value]", "filters"
        ) from None
    if not isinstance(items, list) or len(items) > MAX_FILTERS:
        raise QueryError(
            f"filters must be a JSON array of at most {MAX_FILTERS} filters", "filters"
        )
    out = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
            raise QueryError("each filter is [dimension, op, value or [values]]", "filters")
        name, op, value = item
        try:
            dimension(name)  # validates the name
        except QueryError as e:
            raise QueryError(str(e), "filters") from None
        try:
            operator = Op(op)
        except ValueError:
            raise QueryError(
                f"filter op must be one of {', '.join(o.value for o in Op)}", "filters"
            ) from None
        values = value if isinstance(value, list) else [value]
        if (
            not values
            or len(values) > 50
            or not all(isinstance(v, str) and len(v) <= 512 for v in values)
        ):
            raise QueryError("filter values are 1-50 strings of at most 512 characters", "filters")
        out.append(Filter(name, operator, tuple(values)))
    return tuple(out)


def granularity(value: str | None, period: Period) -> Granularity:
    if value:
        try:
            return Granularity(value)
        except ValueError:
            raise QueryError(
                "granularity must be hour, day, week or month", "granularity"
            ) from None
    if period.days <= 2:
        return Granularity.HOUR
    return Granularity.DAY if period.days <= 92 else Granularity.MONTH


def spec(
    site_id: str,
    timezone: str,
    start: str | None,
    end: str | None,
    raw_filters: str | None = None,
    raw_granularity: str | None = None,
    limit: int = 10,
) -> ReportSpec:
    p = period(start, end, timezone)
    return ReportSpec(site_id, p, filters(raw_filters), granularity(raw_granularity, p), limit)
