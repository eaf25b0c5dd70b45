"""Arithmetic time buckets agree with the zone database, across DST changes."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest

from cadlink.query.buckets import bucket, offsets
from cadlink.query.dialects import DuckDBDialect
from cadlink.query.spec import Granularity, Period

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "UTC"]


def expected(ts: datetime, g: Granularity, tz: str) -> datetime:
    local = ts.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    if g is Granularity.HOUR:
        return local.replace(minute=0, second=0, microsecond=0)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if g is Granularity.DAY:
        return day
    if g is Granularity.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("g", list(Granularity))
def test_sql_buckets_match_zoneinfo(tz: str, g: Granularity) -> None:
    period = Period(date(2026, 2, 20), date(2026, 11, 10), tz)  # both DST changes, many months
    d = DuckDBDialect()
    key, decode = bucket(d.epoch_ms("ts"), g, period, d.int_div)
    lo, hi = period.bounds()
    rng = random.Random(5)
    stamps = [
        lo + timedelta(seconds=rng.randrange(int((hi - lo).total_seconds()))) for _ in range(400)
    ]
    # the instants just around each change, too
    for start, _ in offsets(period).changes[1:]:
        at = datetime.fromtimestamp(start / 1000, UTC)
        stamps += [at - timedelta(seconds=1), at, at + timedelta(seconds=1)]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (ts TIMESTAMPTZ)")
    con.executemany("INSERT INTO t VALUES (?)", [[s] for s in stamps])
    text, params = d.render(key)
    rows = con.execute(f"SELECT ts, {text} FROM t", list(params)).fetchall()
    for ts, k in rows:
        assert decode(int(k)) == expected(ts.astimezone(UTC), g, tz), (ts, g, tz)


def test_offsets_find_the_change_to_the_minute() -> None:
    offs = offsets(Period(date(2026, 10, 20), date(2026, 10, 30), "Europe/Berlin"))
    assert [o for _, o in offs.changes] == [7_200_000, 3_600_000]
    change = datetime.fromtimestamp(offs.changes[1][0] / 1000, UTC)
    assert change == datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
