"""The stored time ranges the duplicate check reads: every event's window, few ranges."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from cadlink.store.events.scan_ranges import BUCKET, cover, where

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def minute(n: int) -> datetime:
    return T0 + n * BUCKET


def test_a_minute_is_widened_by_the_window_on_both_sides() -> None:
    assert cover([minute(0)], HOUR) == [(T0 - HOUR, T0 + BUCKET + HOUR)]


def test_overlapping_windows_merge_and_distant_ones_stay_apart() -> None:
    # A late event a day before the batch's current minutes: two ranges, not the day between.
    got = cover([minute(0), minute(1), minute(3), minute(-24 * 60)], HOUR)
    assert got == [
        (minute(-24 * 60) - HOUR, minute(-24 * 60) + BUCKET + HOUR),
        (minute(0) - HOUR, minute(3) + BUCKET + HOUR),
    ]


def test_no_window_reads_only_the_batchs_minutes() -> None:
    assert cover([minute(5), minute(0)], timedelta(0)) == [
        (minute(0), minute(1)),
        (minute(5), minute(6)),
    ]


def test_too_many_ranges_are_joined_over_their_smallest_gaps() -> None:
    # Gaps between the windows of minutes 0, 10, 11+... : minute 10 and 12 are closest.
    got = cover([minute(0), minute(10), minute(12)], timedelta(0), most=2)
    assert got == [(minute(0), minute(1)), (minute(10), minute(13))]
    assert cover([minute(0), minute(10), minute(12)], timedelta(0), most=1) == [
        (minute(0), minute(13))
    ]
    with pytest.raises(ValueError, match="most"):
        cover([minute(0)], HOUR, most=0)


@pytest.mark.parametrize("seed", range(20))
def test_every_minutes_window_is_covered_by_few_disjoint_ranges(seed: int) -> None:
    rng = random.Random(seed)
    minutes = [minute(rng.randrange(-5000, 5000)) for _ in range(rng.randrange(1, 200))]
    window = timedelta(minutes=rng.choice([0, 5, 60]))
    most = rng.choice([1, 4, 32])
    got = cover(minutes, window, most)
    assert 1 <= len(got) <= most
    assert all(lo < hi for lo, hi in got)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(got))  # sorted, disjoint
    for m in minutes:
        lo, hi = m - window, m + BUCKET + window
        assert any(a <= lo and hi <= b for a, b in got), m


def test_the_filter_names_each_range_by_parameters() -> None:
    sql, params = where("e.ts", [(minute(0), minute(1)), (minute(5), minute(6))])
    assert sql == "((e.ts >= $lo0 AND e.ts <= $hi0) OR (e.ts >= $lo1 AND e.ts <= $hi1))"
    assert params == {"lo0": minute(0), "hi0": minute(1), "lo1": minute(5), "hi1": minute(6)}
    assert where("e.ts", []) == ("false", {})
