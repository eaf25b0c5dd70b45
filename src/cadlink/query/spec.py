"""What a report asks for, independent of any engine."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class QueryError(ValueError):
    """A report request that cannot be answered as asked; `field` names the culprit."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Op(StrEnum):
    IS = "is"
    IS_NOT = "is_not"
    CONTAINS = "contains"


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class Filter:
    """`dimension op value[,value…]`; several values mean any of them (is) / none (is_not)."""

    dimension: str
    op: Op
    values: tuple[str, ...]


@dataclass(frozen=True)
class Period:
    """Whole days [start, end] in a time zone; `until` (UTC) cuts it short: a previous period
    compared with one still in progress (`previous`)."""

    start: date
    end: date
    timezone: str = "UTC"
    until: datetime | None = None

    def bounds(self) -> tuple[datetime, datetime]:
        """[start 00:00, day after end 00:00) in the zone, as UTC datetimes (the end at
        `until` when that comes first)."""
        tz = ZoneInfo(self.timezone)
        lo = datetime.combine(self.start, time.min, tz).astimezone(UTC)
        hi = datetime.combine(self.end + timedelta(days=1), time.min, tz).astimezone(UTC)
        if self.until is not None and self.until < hi:
            hi = max(lo, self.until)
        return lo, hi

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self, now: datetime | None = None) -> Period:
        """The period of equal length just before this one. While this one is in progress at
        `now`, the previous one ends as far into it, rounded up to a whole UTC hour (the
        hourly rollups' step): "today so far" against yesterday up to the same hour, not
        against all of yesterday, which read as a fall every morning."""
        before = replace(
            self,
            start=self.start - timedelta(days=self.days),
            end=self.start - timedelta(days=1),
            until=None,
        )
        lo, hi = self.bounds()
        if now is None or not lo <= now < hi:
            return before
        elapsed = (before.bounds()[0] + (now - lo)).timestamp()
        until = datetime.fromtimestamp(-(-elapsed // 3600) * 3600, UTC)
        return replace(before, until=until)


@dataclass(frozen=True)
class ReportSpec:
    site_id: str
    period: Period
    filters: tuple[Filter, ...] = ()
    granularity: Granularity = Granularity.DAY
    limit: int = 10
    options: dict[str, str] = field(default_factory=dict)
