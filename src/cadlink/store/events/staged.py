"""What staging a batch of buffer records needs and finds, without DuckDB: the lookups the
staging SQL asks Python, and the batch's findings besides its rows (staging.py stages them).

Kept apart so that a process that only reads the store (the web process of `cadlink serve`)
imports neither DuckDB nor the parsers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

UserAgentRow = tuple[str, str | None, str, str | None, str, str | None]
"""browser, browser version, OS, OS version, device type, bot reason (None: not a bot)."""
PlaceRow = tuple[str | None, str | None, str | None]
"""country, region, city."""
AttributionRow = tuple[
    str | None, str | None, str | None, str | None, str | None, str | None, str, str, str | None
]
"""utm source … content (sent, else from the page URL), referrer domain, source, channel,
and the page path of the page URL."""
AttributionKey = tuple[
    str | None, str | None, str | None, str | None, str | None, str | None, str | None
]
"""referrer, page URL, utm source … content, as the event sent them."""


# How many answers the parsers behind `Lookups` keep in Python. The staging's lookup tables
# (staging.py, up to 200,000 rows each, in DuckDB) remember every answer for as long as their
# connection lives, which for the stores is the process's life: Python's caches only bridge a
# table that was emptied. Full at their former sizes, on varied traffic, they held about 65 MB
# of the store process (measured: 65,536 page/referrer combinations 40 MB, 65,536 networks
# 14 MB, 20,000 user agents about 10 MB).
PARSER_CACHE_ENTRIES = 4096


class Lookups(Protocol):
    """What the staging SQL asks Python, one call per batch, for values it has not seen."""

    def user_agents(self, agents: Sequence[str]) -> list[UserAgentRow]: ...

    def places(self, prefixes: Sequence[str]) -> list[PlaceRow]: ...

    def attributions(self, keys: Sequence[AttributionKey]) -> list[AttributionRow]: ...

    def visitors(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """The stored visitor id of each (site, consented client visitorId)."""


@dataclass(frozen=True, eq=False)
class Staging:
    """How a store stages buffer records: the lookups and the age of the oldest client
    timestamp believed. Stores keep one `Stager` per `Staging` (its lookup tables)."""

    lookups: Lookups
    late_event_hours: int = 72


@dataclass
class Identity:
    """A visitor linked to a known user by `identify()`."""

    site_id: str
    user_id: str
    traits: dict[str, Any]
    seen_at: datetime


@dataclass
class Staged:
    """What staging a batch found besides the rows (which stay in `staged_rows`)."""

    records: int = 0
    events: int = 0  # bots included
    rows: int = 0  # events kept: the rows of `staged_rows`
    drops: dict[tuple[str, date, str], int] = field(default_factory=dict)
    identities: list[Identity] = field(default_factory=list)
    newest_received_ms: int = 0
