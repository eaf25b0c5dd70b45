"""Time buckets in a site's zone by integer arithmetic instead of per-row zone conversion.

Converting every row's timestamp with the zone database costs several times the aggregation
itself. Within a period a zone's UTC offset changes only at a few known instants (DST), so the
plan computes them once and SQL adds a piecewise-constant offset to the epoch milliseconds;
buckets are then integer divisions. The result is exact, DST included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from cadlink.query.spec import Granularity, Period
from cadlink.query.sql import Sql, join, raw

_HOUR = 3_600_000
_DAY = 86_400_000
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Offsets:
    """UTC offset (ms) in force from each instant (epoch ms) on; the first applies before too."""

    changes: tuple[tuple[int, int], ...]

    def at(self, epoch_ms: int) -> int:
        current = self.changes[0][1]
        for start, offset in self.changes:
            if epoch_ms >= start:
                current = offset
        return current


def _offset_ms(tz: ZoneInfo, at: datetime) -> int:
    off = at.astimezone(tz).utcoffset()
    return int(off.total_seconds() * 1000) if off else 0


def offsets(period: Period) -> Offsets:
    """The offsets in force over the period (a day of margin either side)."""
    tz = ZoneInfo(period.timezone)
    lo, hi = period.bounds()
    t = lo - timedelta(days=1)
    end = hi + timedelta(days=1)
    changes = [(int(t.timestamp() * 1000), _offset_ms(tz, t))]
    while t < end:
        nxt = t + timedelta(days=1)
        if _offset_ms(tz, nxt) != changes[-1][1]:
            a, b = t, nxt  # binary search the change to the minute
            while b - a > timedelta(minutes=1):
                mid = a + (b - a) / 2
                if _offset_ms(tz, mid) == changes[-1][1]:
                    a = mid
                else:
                    b = mid
            b = b.replace(second=0, microsecond=0)
            changes.append((int(b.timestamp() * 1000), _offset_ms(tz, b)))
        t = nxt
    return Offsets(tuple(changes))


def local_ms(epoch: Sql, offs: Offsets) -> Sql:
    """`epoch` (an expression in epoch ms) shifted to local wall-clock ms."""
    if len(offs.changes) == 1:
        return Sql("(") + epoch + f" + {offs.changes[0][1]})"
    cases = [
        Sql("WHEN ") + epoch + f" < {start} THEN {prev}"
        for (start, _), (_, prev) in zip(offs.changes[1:], offs.changes[:-1], strict=True)
    ]
    return Sql("(") + epoch + " + CASE " + join(cases, " ") + f" ELSE {offs.changes[-1][1]} END)"


def bucket(
    epoch: Sql, granularity: Granularity, period: Period, int_div: Callable[[Sql, int], Sql]
) -> tuple[Sql, Callable[[int], datetime]]:
    """An integer bucket key for each row, and how to turn a key back into local time."""
    local = local_ms(epoch, offsets(period))
    if granularity is Granularity.HOUR:
        return int_div(local, _HOUR), lambda k: datetime(1970, 1, 1) + timedelta(hours=k)
    if granularity is Granularity.DAY:
        return int_div(local, _DAY), lambda k: datetime(1970, 1, 1) + timedelta(days=k)
    if granularity is Granularity.WEEK:
        # Day 0 (1970-01-01) was a Thursday: (day + 3) // 7 starts weeks on Mondays.
        key = int_div(int_div(local, _DAY) + " + 3", 7)
        return key, lambda k: datetime(1970, 1, 1) + timedelta(days=k * 7 - 3)
    months = _month_starts(period)
    day = int_div(local, _DAY)
    whens = [Sql("WHEN ") + day + f" < {d} THEN {i}" for i, d in enumerate(months[1:])]
    key = Sql("CASE ") + join(whens, " ") + f" ELSE {len(months) - 1} END" if whens else raw("0")
    starts = [_EPOCH + timedelta(days=d) for d in months]
    return key, lambda k: datetime.combine(starts[k], datetime.min.time())


def _month_starts(period: Period) -> list[int]:
    """Day numbers of the first of each month the period touches."""
    out = []
    d = period.start.replace(day=1)
    while d <= period.end:
        out.append((d - _EPOCH).days)
        d = (d + timedelta(days=32)).replace(day=1)
    return out


__all__ = ["UTC", "Offsets", "bucket", "local_ms", "offsets"]
