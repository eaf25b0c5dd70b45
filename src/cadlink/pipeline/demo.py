"""Realistic synthetic traffic for `cadlink demo` and the benchmarks.

`generate(DemoConfig(site_id=...))` yields chunks of `Envelope`s (one per tracker request) in
chronological order of `received_ms`, spread over `[end - days, end]` (or over the `days`
calendar days up to `end` in a `timezone`, as the dashboard counts them): traffic follows each
country's daily and weekly rhythm and grows over time; sessions are multi-page visits with the
product funnel, searches, forms, errors and web vitals; ~2% of sessions are bots. The same seed
gives the same events. Pure Python, ~O(1) work per event, streams with little memory.

The pieces: `demo_devices` (countries, browsers, bots, IP prefixes), `demo_catalog` (pages,
products, traffic sources), `demo_pages` (events of one page view), `demo_session` (visits).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import accumulate
from operator import attrgetter
from random import Random
from zoneinfo import ZoneInfo

from cadlink.events import Envelope
from cadlink.pipeline.demo_devices import COUNTRIES, DIURNAL, WEEKDAY
from cadlink.pipeline.demo_session import DAY_MS, SessionSimulator

__all__ = ["DemoConfig", "generate"]

HOUR_MS = 3_600_000
CHUNK_ENVELOPES = 1_000  # requests per chunk: ~2,300 events
MONTHLY_GROWTH = 0.12  # traffic grows by this much every 30 days ...
MAX_GROWTH = 3.0  # ... but by no more than this factor over the whole history
_PRIOR_EVENTS, _PRIOR_SESSIONS = 20.0, 50.0  # initial guess of events per session
_received = attrgetter("received_ms")


@dataclass(frozen=True)
class DemoConfig:
    site_id: str  # public site id
    days: int = 30
    events: int = 50_000  # approximate total events to generate
    end: datetime | None = None  # default now (UTC); history spans [end - days, end] ...
    # ... or, with a timezone, starts at its midnight `days - 1` days before `end`'s day, so
    # the dashboard's "last N days" holds all of it and the period before it none.
    timezone: str | None = None
    seed: int = 42
    domain: str = "demo-shop.example"


def _hour_of_week_countries() -> list[list[float]]:
    """Per UTC hour of the week (Monday 00:00 = 0): cumulative traffic weight by country."""
    out = []
    for how in range(168):
        weights = []
        for _, share, offset, _ in COUNTRIES:
            local = (how + offset) % 168
            weights.append(share * DIURNAL[local % 24] * WEEKDAY[local // 24])
        out.append(list(accumulate(weights)))
    return out


def _hour_of_week(ms: int) -> int:
    hour = ms // HOUR_MS
    return ((hour // 24 + 3) % 7) * 24 + hour % 24  # 1970-01-01 was a Thursday


def _start_ms(end: datetime, days: int, timezone: str | None) -> int:
    """Where the history starts (ms): `days` before `end`, or the midnight in `timezone` that
    begins the first of the `days` calendar days ending with `end`'s."""
    if timezone is None:
        return int(end.timestamp() * 1000) - days * DAY_MS
    zone = ZoneInfo(timezone)
    last_day = (end - timedelta(milliseconds=1)).astimezone(zone).date()
    first = datetime.combine(last_day - timedelta(days=days - 1), time(), zone)
    return int(first.timestamp() * 1000)


def generate(config: DemoConfig) -> Iterator[list[Envelope]]:
    """Yields chunks (~2,300 events each) of Envelopes in chronological order."""
    if config.days <= 0 or config.events <= 0:
        return
    end = config.end or datetime.now(UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    end_ms = int(end.timestamp() * 1000)
    start_ms = _start_ms(end, config.days, config.timezone)
    rng = Random(config.seed)
    sim = SessionSimulator(config.site_id, config.domain, rng)
    countries = _hour_of_week_countries()

    # Expected traffic per hour: rhythm x growth x day-to-day noise (and the odd viral day).
    noise = []
    for _ in range(config.days + 1):
        spike = 1.5 + 0.7 * rng.random() if rng.random() < 0.04 else 1.0
        noise.append(math.exp(0.1 * rng.gauss(0.0, 1.0)) * spike)
    span = end_ms - start_ms
    growth = min(math.log1p(MONTHLY_GROWTH) / (30 * DAY_MS), math.log(MAX_GROWTH) / span)
    n_hours = -(-span // HOUR_MS)  # the last may be cut short by `end`
    weights = []
    for h in range(n_hours):
        t = start_ms + h * HOUR_MS
        weights.append(
            countries[_hour_of_week(t)][-1]
            * math.exp(growth * (t - start_ms))
            * noise[h // 24]
            * min(HOUR_MS, end_ms - t)
            / HOUR_MS
        )
    remaining = list(accumulate(reversed(weights)))[::-1]

    target, produced, sessions = config.events, 0, 0
    pending: list[Envelope] = []
    chunk: list[Envelope] = []
    for h in range(n_hours):
        h_start = start_ms + h * HOUR_MS
        want = (target - produced) * weights[h] / remaining[h]
        if want > 0:
            per_session = (produced + _PRIOR_EVENTS * _PRIOR_SESSIONS) / (
                sessions + _PRIOR_SESSIONS
            )
            n = int(want / per_session + rng.random())
            cum = countries[_hour_of_week(h_start)]
            length = min(HOUR_MS, end_ms - h_start)
            for start in sorted(h_start + int(rng.random() * length) for _ in range(n)):
                produced += sim.session(start, cum, end_ms, pending)
            sessions += n
        # Sessions that start later cannot send anything before the next hour: release up to it.
        pending.sort(key=_received)
        cut = bisect_left(pending, h_start + HOUR_MS, key=_received)
        if h == n_hours - 1:
            cut = bisect_left(pending, end_ms + 1, key=_received)  # after `end`: not yet happened
        chunk += pending[:cut]
        del pending[:cut]
        while len(chunk) >= CHUNK_ENVELOPES:
            yield chunk[:CHUNK_ENVELOPES]
            del chunk[:CHUNK_ENVELOPES]
    if chunk:
        yield chunk
