"""Daily visitor salts held in memory for the request path."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import date

log = logging.getLogger(__name__)


class SaltRing:
    """UTC day → 32-byte salt; refreshed from the metadata store in the background.

    The store creates tomorrow's salt ahead of time, so a refresh before midnight makes the
    switch seamless for every process. Should a salt be missing anyway, an ephemeral one is
    used for that day in this process (visitors are still counted, never identified).
    """

    def __init__(self) -> None:
        self._salts: dict[date, bytes] = {}
        self.version = 0  # bumped on every change, so callers may cache a day's salt

    def replace(self, salts: Mapping[date, bytes]) -> None:
        if salts != self._salts:
            self._salts = dict(salts)
            self.version += 1

    def for_day(self, day: date) -> bytes:
        salt = self._salts.get(day)
        if salt is None:
            log.warning("no stored salt for %s; using an ephemeral one", day.isoformat())
            salt = secrets.token_bytes(32)
            self._salts[day] = salt
            self.version += 1
        return salt

    def days(self) -> list[date]:
        return sorted(self._salts)
