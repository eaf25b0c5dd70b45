"""The in-memory site map the collect endpoint checks instead of a database."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What ingest needs to know about a site."""

    public_id: str
    domain: str
    allowed_origins: frozenset[str] = frozenset()
    respect_dnt: bool = True
    # `origin_allowed` answers by origin, memoised per site (a refresh builds new SiteInfos,
    # so a changed site starts empty): the collect path asks on every request.
    origin_answers: dict[str | None, bool] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def origin_allowed(self, origin: str | None) -> bool:
        """Browsers send `Origin`; a page on the site's domain or a listed origin may post.

        Requests without an `Origin` (server-side senders, beacons from old browsers) are allowed:
        the header is a browser mechanism, not authentication.
        """
        if not origin or origin == "null":
            return origin is None or not self.allowed_origins
        if origin in self.allowed_origins:
            return True
        host = urlsplit(origin).hostname or ""
        return host == self.domain or host.endswith("." + self.domain)


class SiteDirectory:
    """Public site id → `SiteInfo`, replaced wholesale by a background refresh.

    A lookup miss may trigger one refresh, at most once per `miss_interval` seconds, so a
    site created a moment ago is accepted without a database round-trip per request.
    """

    def __init__(
        self,
        refresh: Callable[[], Awaitable[Iterable[SiteInfo]]] | None = None,
        miss_interval: float = 1.0,
    ) -> None:
        self._sites: dict[str, SiteInfo] = {}
        self._refresh = refresh
        self._miss_interval = miss_interval
        self._last_refresh = 0.0

    def replace(self, sites: Iterable[SiteInfo]) -> None:
        self._sites = {s.public_id: s for s in sites}
        self._last_refresh = time.monotonic()

    def get(self, public_id: str) -> SiteInfo | None:
        return self._sites.get(public_id)

    async def refresh(self) -> None:
        if self._refresh is not None:
            self.replace(await self._refresh())

    async def lookup(self, public_id: str) -> SiteInfo | None:
        site = self._sites.get(public_id)
        now = time.monotonic()
        if (
            site is None
            and self._refresh is not None
            and now - self._last_refresh >= self._miss_interval
        ):
            self._last_refresh = now
            await self.refresh()
            site = self._sites.get(public_id)
        return site

    def __len__(self) -> int:
        return len(self._sites)
