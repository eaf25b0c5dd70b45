"""Per-client token buckets for the collect endpoint, in memory."""

from __future__ import annotations

import time


class RateLimiter:
    """Allows `per_minute` requests per key on average and `burst` at once.

    Keys are client addresses held only in memory; idle buckets are pruned so the map
    stays bounded.
    """

    def __init__(self, per_minute: int, burst: int, max_keys: int = 100_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(burst, 1))
        self.enabled = per_minute > 0
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, now: float | None = None) -> float:
        """0.0 if allowed, else the seconds to wait before the next request."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_keys:
            self._prune(now)
        return 0.0

    def refund(self, key: str) -> None:
        """Give back the request `allow` last counted for `key`: it was handed on unanswered
        (the ASGI route admits it again)."""
        if self.enabled and key in self._buckets:
            tokens, last = self._buckets[key]
            self._buckets[key] = (min(self.burst, tokens + 1.0), last)

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
