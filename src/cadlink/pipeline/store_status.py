"""What the store process and the web process that keeps it share: the status it reports,
the identified users it hands over, and whether the event store needs it
(pipeline/store_process.py, pipeline/store_child.py)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

from cadlink.pipeline.loader import LoaderStats
from cadlink.store.events.staged import Identity

if TYPE_CHECKING:
    from cadlink.store_settings import StoreSettings

log = logging.getLogger(__name__)

READY = "ready"  # the child's first line on stdout once it serves


@dataclass(frozen=True)
class StoreStatus:
    """What the store process reports to the web process on every poll."""

    stats: LoaderStats
    backlog_bytes: int
    pid: int
    rss_bytes: int = 0
    # Identified users the loader found that the web process has not acknowledged yet
    # (`IdentityOutbox`), and the number of the last of them.
    identities: tuple[Identity, ...] = ()
    identities_upto: int = 0


class IdentityOutbox:
    """Identified users the store process's loader found, kept until the web process (which
    holds the metadata store: the store process does not open it) has recorded them.

    Numbered as they come; each poll sends the number of the last one recorded, so each is
    recorded at least once (recording is an upsert), and a web process that fails to record
    them gets them again on the next poll. Bounded: past `limit` waiting, the oldest go
    (counted and logged), so a web process that never asks cannot grow this one."""

    def __init__(self, limit: int = 100_000, per_poll: int = 1_000) -> None:
        self.limit = limit
        self.per_poll = per_poll
        self.dropped = 0
        self._items: deque[tuple[int, Identity]] = deque()
        self._last = 0  # the number of the newest one
        self._acked = 0
        self._changed = threading.Condition()

    def add(self, identities: list[Identity]) -> None:
        with self._changed:
            for ident in identities:
                self._last += 1
                self._items.append((self._last, ident))
            over = len(self._items) - self.limit
            for _ in range(max(0, over)):
                self._items.popleft()
            if over > 0:
                self.dropped += over
                log.warning("%d identified users were not handed to the web process", over)

    def take(self, acked: int) -> tuple[tuple[Identity, ...], int]:
        """Forget those up to `acked` (recorded); the next ones waiting, and the number of
        the last of them (`acked` if none wait)."""
        with self._changed:
            self._acked = max(self._acked, acked)
            while self._items and self._items[0][0] <= acked:
                self._items.popleft()
            batch = list(islice(self._items, self.per_poll))
            self._changed.notify_all()
        return tuple(ident for _, ident in batch), (batch[-1][0] if batch else acked)

    def wait_recorded(self, timeout: float) -> bool:
        """Wait until every identity added so far has been acknowledged."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._acked >= self._last or not self._items, timeout
            )


def embedded(settings: StoreSettings) -> bool:
    """Whether the event store is a file only one process may open (DuckDB)."""
    return settings.events_url.startswith("duckdb://")
