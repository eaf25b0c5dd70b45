"""What the account tests share: a settable clock and the test secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SECRET = "test-secret-key-with-at-least-32-bytes!"
PASSWORD = "correct horse battery"


class Clock:
    """A settable clock, starting at the real current time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)
