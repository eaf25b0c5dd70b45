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


def test_the_loaders_parsers_keep_small_caches(tmp_path: Path) -> None:
    """The staging's lookup tables, in DuckDB, remember the loader's answers for as long as
    the store is open (store/events/staging.py): the parsers' caches in Python only bridge a
    table that was emptied, and stay small (at their former sizes, full on varied traffic,
    they held about 65 MB of the store process)."""
    from cadlink.ingest.buffer import Backlog
    from cadlink.services import build_events, build_loader
    from cadlink.store.events.staged import PARSER_CACHE_ENTRIES

    settings = make_settings(tmp_path / "d")
    store = build_events(settings)
    try:
        lookups = build_loader(settings, store, Backlog()).enricher.lookups
        n = 2 * PARSER_CACHE_ENTRIES
        lookups.attributions(
            [(None, f"https://shop.example/p/{i}", None, None, None, None, None) for i in range(n)]
        )
        lookups.places([f"10.{i >> 8}.{i & 255}.0" for i in range(n)])
        lookups.user_agents(
            [
                f"Mozilla/5.0 (X11; Linux x86_64; rv:{i}.0) Gecko/20100101 Firefox/{i}.0"
                for i in range(n)
            ]
        )
        assert lookups._attribution.cache_info().currsize == PARSER_CACHE_ENTRIES
        assert lookups.geo._cached.cache_info().currsize == PARSER_CACHE_ENTRIES
        assert lookups.ua.cache_info().currsize == PARSER_CACHE_ENTRIES
    finally:
        store.close()
