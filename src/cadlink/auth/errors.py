"""Named errors of the auth package."""

from __future__ import annotations


class AuthError(Exception):
    """Base class of every error the auth package raises on purpose."""


class InvalidCredentials(AuthError):
    """Wrong email or password (deliberately not saying which)."""

    def __init__(self) -> None:
        super().__init__("invalid email or password")


class TooManyAttempts(AuthError):
    """Too many failed logins for this email from this network, or too many attempts from
    this network; `retry_after` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} seconds")
        self.retry_after = retry_after


class InvalidToken(AuthError):
    """An access or refresh token that is malformed, tampered with, expired or revoked."""
