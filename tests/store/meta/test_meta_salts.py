"""Daily salts and settings, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine

from cadlink.store.meta import InvalidInput, MetaStore

TODAY = date(2030, 3, 10)


def test_ensure_salts_creates_today_and_tomorrow(meta_store: MetaStore) -> None:
    salts = meta_store.ensure_salts(TODAY)
    assert set(salts) == {TODAY, TODAY + timedelta(days=1)}
    assert all(isinstance(s, bytes) and len(s) == 32 for s in salts.values())
    assert salts[TODAY] != salts[TODAY + timedelta(days=1)]


def test_ensure_salts_twice_returns_the_same_salts(meta_store: MetaStore) -> None:
    first = meta_store.ensure_salts(TODAY)
    assert meta_store.ensure_salts(TODAY) == first
    assert meta_store.get_salts() == first


def test_ensure_salts_next_day_keeps_old_and_adds_one(meta_store: MetaStore) -> None:
    first = meta_store.ensure_salts(TODAY)
    second = meta_store.ensure_salts(TODAY + timedelta(days=1))
    assert set(second) == {TODAY, TODAY + timedelta(days=1), TODAY + timedelta(days=2)}
    assert {d: second[d] for d in first} == first


def test_ensure_salts_from_many_stores_at_once_agree(meta_engine: Engine) -> None:
    # Separate stores stand in for separate processes; all must end up with the same salts.
    stores = [MetaStore(meta_engine) for _ in range(4)]
    results: list[dict[date, bytes]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def run(store: MetaStore) -> None:
        try:
            barrier.wait()
            results.append(store.ensure_salts(TODAY))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == len(stores)
    assert all(r == results[0] for r in results)


def test_delete_salts_older_than(meta_store: MetaStore) -> None:
    for offset in range(5):
        meta_store.ensure_salts(TODAY + timedelta(days=offset))
    assert len(meta_store.get_salts()) == 6  # TODAY .. TODAY+5
    # The salt of TODAY ended at TODAY+1 00:00 UTC; a cutoff 1 µs earlier keeps it.
    day_end = datetime.combine(TODAY + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert meta_store.delete_salts_older_than(day_end - timedelta(microseconds=1)) == 0
    assert meta_store.delete_salts_older_than(day_end + timedelta(hours=30)) == 2
    assert min(meta_store.get_salts()) == TODAY + timedelta(days=2)
    assert meta_store.delete_salts_older_than(day_end + timedelta(hours=30)) == 0


def test_delete_salts_older_than_converts_to_utc(meta_store: MetaStore) -> None:
    meta_store.ensure_salts(TODAY)
    plus_two = timezone(timedelta(hours=2))
    # 01:00 on TODAY+1 at UTC+2 is 23:00 on TODAY in UTC: TODAY has not ended yet.
    assert meta_store.delete_salts_older_than(datetime(2030, 3, 11, 1, tzinfo=plus_two)) == 0
    assert meta_store.delete_salts_older_than(datetime(2030, 3, 11, 3, tzinfo=plus_two)) == 1
    with pytest.raises(InvalidInput):
        meta_store.delete_salts_older_than(datetime(2030, 1, 1))


@pytest.mark.parametrize(
    "value",
    [{"a": [1, 2, {"b": None}]}, [1, "two", 3.5], "text", 42, True, None],
)
def test_settings_round_trip(meta_store: MetaStore, value: object) -> None:
    meta_store.set_setting("some.key", value)
    assert meta_store.get_setting("some.key", default="missing") == value


def test_settings_default_and_overwrite(meta_store: MetaStore) -> None:
    assert meta_store.get_setting("absent") is None
    assert meta_store.get_setting("absent", default={"x": 1}) == {"x": 1}
    meta_store.set_setting("k", {"v": 1})
    meta_store.set_setting("k", {"v": 2})
    meta_store.set_setting("other", 7)
    assert meta_store.get_setting("k") == {"v": 2}
    assert meta_store.get_setting("other") == 7


def test_settings_reject_bad_keys(meta_store: MetaStore) -> None:
    with pytest.raises(InvalidInput):
        meta_store.set_setting("", 1)
    with pytest.raises(InvalidInput):
        meta_store.set_setting("k" * 256, 1)
