"""Access tokens (short-lived HS256 JWTs) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from cadlink.auth.errors import InvalidToken
from cadlink.auth.roles import Role

ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["sub", "role", "exp", "iat", "jti", "type"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid access token says about its bearer."""

    user_id: int
    role: Role
    jti: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or refresh returns; `expires_in` is the access token's lifetime in seconds."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth 2 token type, not a secret


def issue_access_token(
    user_id: int,
    role: Role | str,
    secret_key: str,
    minutes: int,
    now: datetime | None = None,
) -> str:
    """Returns a signed JWT with sub, role, iat, exp, a random jti and type="access"."""
    issued = (now or datetime.now(UTC)).astimezone(UTC)
    claims = {
        "sub": str(user_id),
        "role": Role(role).value,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(minutes=minutes)).timestamp()),
        "jti": uuid.uuid4().hex,
        "type": "access",
    }
    return jwt.encode(claims, secret_key, algorithm=ALGORITHM)


def decode_access_token(token: str, secret_key: str) -> AccessClaims:
    """Verifies signature, expiry and shape; raises `InvalidToken` for anything else."""
    try:
        claims = jwt.decode(
            token,
            secret_key,
            algorithms=[ALGORITHM],
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("access token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("invalid access token") from exc
    if claims.get("type") != "access":
        raise InvalidToken("not an access token")
    try:
        return AccessClaims(
            user_id=int(claims["sub"]),
            role=Role(claims["role"]),
            jti=str(claims["jti"]),
            issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidToken("invalid access token claims") from exc


def new_refresh_token() -> str:
    """A fresh opaque refresh token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """The SHA-256 hex digest under which a refresh token is stored (never the token)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
