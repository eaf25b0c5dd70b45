"""Realtime fan-out: one computation per site, pushed to every subscriber.

The loader (or the collect path) calls `LiveHub.notify(site_id)` from any thread when events for
a site were accepted or stored. For a site somebody is watching, the hub recomputes the realtime
report on notification at most once per `min_interval`: the first notification after a quiet
spell computes at once, later ones coalesce into the next run, and one computation runs at a
time. The result goes to every subscriber's one-slot mailbox (a slow reader skips stale
snapshots instead of queueing them). Sites nobody watches cost one dictionary lookup per
notification. While a site has subscribers it is also recomputed every `refresh_interval`
seconds, because "active in the last 5 minutes" changes as time passes even when no event
arrives.

In-process only: with several server processes each holds its own hub, and a notification reaches
the subscribers of the process that stored the events (server mode needs Redis pub/sub here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Compute = Callable[[str], Awaitable[dict[str, Any]]]


@dataclass(eq=False)
class _Channel:
    site_id: str
    mailboxes: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    latest: dict[str, Any] | None = None
    last_run: float = 0.0
    dirty: bool = False
    runner: asyncio.Task[None] | None = None
    ticker: asyncio.Task[None] | None = None


class LiveHub:
    """Per-site realtime snapshots, recomputed on notification and fanned out."""

    def __init__(
        self,
        compute: Compute,
        *,
        min_interval: float = 0.5,
        refresh_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self.min_interval = min_interval
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._channels: dict[str, _Channel] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.computations = 0  # how many times a report was computed (for tests and metrics)

    @property
    def watched_sites(self) -> frozenset[str]:
        return frozenset(self._channels)

    def subscribers(self, site_id: str) -> int:
        channel = self._channels.get(site_id)
        return len(channel.mailboxes) if channel else 0

    def notify(self, site_id: str) -> None:
        """Events for `site_id` were accepted or stored. Safe from any thread; never blocks."""
        loop = self._loop
        # Unlocked read from a foreign thread: a stale answer costs one skipped or one extra
        # recomputation, never a wrong one.
        if loop is None or site_id not in self._channels or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and here
            loop.call_soon_threadsafe(self._schedule, site_id)

    def notify_many(self, site_ids: set[str] | frozenset[str] | list[str]) -> None:
        for site_id in set(site_ids):
            self.notify(site_id)

    def notify_all(self) -> None:
        """Something was stored, for sites unknown: recompute every watched site."""
        self.notify_many(list(self._channels))

    @contextlib.asynccontextmanager
    async def subscribe(self, site_id: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """A mailbox holding the newest snapshot for `site_id`, for as long as the block runs."""
        self._loop = asyncio.get_running_loop()
        mailbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1)
        channel = self._channels.get(site_id)
        if channel is None:
            channel = self._channels[site_id] = _Channel(site_id)
            channel.ticker = asyncio.create_task(self._tick(channel))
        channel.mailboxes.add(mailbox)
        if channel.latest is not None:
            mailbox.put_nowait(channel.latest)
        if channel.runner is None and channel.latest is None:
            self._schedule(site_id, notified=False)
        try:
            yield mailbox
        finally:
            channel.mailboxes.discard(mailbox)
            if not channel.mailboxes and self._channels.get(site_id) is channel:
                del self._channels[site_id]
                for task in (channel.ticker, channel.runner):
                    if task is not None:
                        task.cancel()

    async def close(self) -> None:
        tasks = [t for c in self._channels.values() for t in (c.ticker, c.runner) if t]
        self._channels.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _schedule(self, site_id: str, notified: bool = True) -> None:
        channel = self._channels.get(site_id)
        if channel is None:
            return
        if channel.runner is not None:
            channel.dirty = True  # the running loop picks it up after its current computation
            return
        channel.runner = asyncio.create_task(self._run(channel, notified))

    async def _run(self, channel: _Channel, notified: bool) -> None:
        # Only notification-driven runs are rate limited (and start the interval): a first
        # snapshot or a timer refresh must not delay the next event's push by `min_interval`.
        try:
            while True:
                if notified:
                    wait = channel.last_run + self.min_interval - self._clock()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    channel.last_run = self._clock()
                channel.dirty = False
                self._publish(channel, await self._snapshot(channel.site_id))
                if not channel.dirty:
                    return
                notified = True
        finally:
            channel.runner = None

    async def _snapshot(self, site_id: str) -> dict[str, Any]:
        self.computations += 1
        try:
            return await self._compute(site_id)
        except Exception:
            log.exception("realtime report for site %s failed", site_id)
            return {"error": "the realtime report failed; retrying on the next event"}

    def _publish(self, channel: _Channel, snapshot: dict[str, Any]) -> None:
        if "error" not in snapshot:
            channel.latest = snapshot
        for mailbox in channel.mailboxes:
            if mailbox.full():
                mailbox.get_nowait()  # latest wins: a slow reader skips what it missed
            mailbox.put_nowait(snapshot)

    async def _tick(self, channel: _Channel) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            self._schedule(channel.site_id, notified=False)
