"""Plain, frozen values the metadata store returns (never ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

JSONValue: TypeAlias = Any
"""Anything `json.dumps` accepts: dict, list, str, int, float, bool or None."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A dashboard account. The password hash is deliberately absent."""

    id: int
    email: str
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UserCredentials:
    """A user together with the password hash, for the login path only."""

    user: UserRecord
    password_hash: str


@dataclass(frozen=True, slots=True)
class SiteRecord:
    """A tracked site; `public_id` (a UUID4 string) is the id users and the tracker see."""

    id: int
    public_id: str
    domain: str
    name: str
    allowed_origins: tuple[str, ...]
    timezone: str
    respect_dnt: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SiteUserRecord:
    """An identified visitor of a site (after `identify()`)."""

    site_id: int
    user_id: str
    traits: dict[str, JSONValue]
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    """A stored refresh token; only the SHA-256 hex of the token is kept."""

    id: int
    user_id: int
    token_hash: str
    expires_at: datetime
    revoked_at: datetime | None
    created_at: datetime
    replaced_by: str | None = None  # the hash of the token it was rotated into
