"""Normalising and checking values before they reach the database (pure functions)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cadlink.store.meta.errors import InvalidInput

ROLES = ("ADMIN", "ANALYST", "VIEWER")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def normalize_email(email: str) -> str:
    """Returns the email stripped and lower-cased (the form stored and looked up)."""
    return email.strip().lower()


def check_role(role: str) -> str:
    """Returns `role` if it is one of ADMIN, ANALYST, VIEWER; raises `InvalidInput` otherwise."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def normalize_domain(domain: str) -> str:
    """Returns a bare lower-case hostname (IDNA-encoded); rejects schemes, paths and ports."""
    value = domain.strip().lower().rstrip(".")
    if not value:
        raise InvalidInput("domain must not be empty")
    if any(ch in value for ch in ":/?#@ \\\t"):
        raise InvalidInput(
            "domain must be a bare hostname like shop.example "
            f"(no scheme, port or path): {domain!r}"
        )
    try:
        value = value.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidInput(f"domain is not a valid hostname: {domain!r}") from exc
    if len(value) > 253 or not all(_LABEL.match(label) for label in value.split(".")):
        raise InvalidInput(f"domain is not a valid hostname: {domain!r}")
    return value


def default_origins(domain: str) -> tuple[str, ...]:
    """The origins allowed to send events for `domain` when none are given."""
    if domain in _LOCAL_HOSTS or domain.endswith(".localhost"):
        return (f"http://{domain}", f"https://{domain}")
    bare = domain.removeprefix("www.")
    return (f"https://{bare}", f"https://www.{bare}")


def normalize_origin(origin: str) -> str:
    """Returns `scheme://host[:port]` lower-cased; rejects paths, queries and other schemes."""
    value = origin.strip().lower().rstrip("/")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"invalid origin {origin!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"origin must look like https://shop.example, not {origin!r}")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput(f"origin must not have a path, query or credentials: {origin!r}")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def normalize_origins(origins: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Normalises each origin and drops duplicates, keeping the first occurrence's order."""
    if isinstance(origins, str):
        raise InvalidInput("allowed_origins must be a list of origins, not a string")
    return tuple(dict.fromkeys(normalize_origin(o) for o in origins))


def check_timezone(name: str) -> str:
    """Returns `name` if it is an IANA time zone known to `zoneinfo`; raises `InvalidInput`.
    Files of the zone database that are no zones ("localtime", "posixrules", "Factory") are
    refused too: the event stores' SQL does not know them (reports answered 500)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from exc
    if name in _NOT_ZONES:
        raise InvalidInput(f"{name!r} is no time zone (use an IANA name like Europe/Berlin)")
    return name


_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory", "posix", "right"})


def check_public_id(public_id: str) -> str | None:
    """Returns the canonical UUID string, or None when `public_id` is not a UUID."""
    try:
        return str(uuid.UUID(public_id))
    except (ValueError, TypeError, AttributeError):
        return None


def check_token_hash(token_hash: str) -> str:
    """Requires a SHA-256 hex digest, so a raw token can never be stored by mistake."""
    if not _SHA256_HEX.match(token_hash):
        raise InvalidInput("token_hash must be the lower-case SHA-256 hex digest of the token")
    return token_hash


def to_utc(value: datetime, field: str = "timestamp") -> datetime:
    """Returns `value` in UTC; naive datetimes are rejected because their zone is a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{field} must be timezone-aware")
    return value.astimezone(UTC)
