"""Wiring: salts rotate daily and are deleted after the retention period."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from cadlink.services import Services
from cadlink_fixtures import FAST_HASHER, make_settings


def test_salts_rotate_daily_and_are_deleted_after_48_hours(tmp_path: Path) -> None:
    services = Services.build(make_settings(tmp_path / "d"), hasher=FAST_HASHER)
    try:
        day0 = datetime.now(UTC).date() + timedelta(days=10)  # later than the salts made at start

        def at(days: int, hour: int, second: int = 0) -> datetime:
            return datetime.combine(day0 + timedelta(days=days), time(hour, 0, second), UTC)

        services.rotate_salts(at(0, 12))
        assert services.salts.days() == [day0, day0 + timedelta(days=1)]
        first = services.salts.for_day(day0)
        # next day: a new salt is in use and yesterday's (needed by nothing now) is still kept
        services.rotate_salts(at(1, 12))
        assert services.salts.for_day(day0 + timedelta(days=1)) != first
        assert day0 in services.salts.days()
        # 48 h after day0 began, its salt is deleted from the store and from memory
        services.rotate_salts(at(2, 0, 1))
        assert day0 not in services.salts.days()
        assert day0 not in services.meta.get_salts()
    finally:
        services.writer.close()
        services.events.close()
