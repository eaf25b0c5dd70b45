"""Accounts: password hashing, roles, access and refresh tokens, the login service."""

from cadlink.auth.errors import AuthError, InvalidCredentials, InvalidToken, TooManyAttempts
from cadlink.auth.passwords import PasswordHasher
from cadlink.auth.roles import Role
from cadlink.auth.service import AuthService
from cadlink.auth.tokens import (
    AccessClaims,
    TokenPair,
    decode_access_token,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)

__all__ = [
    "AccessClaims",
    "AuthError",
    "AuthService",
    "InvalidCredentials",
    "InvalidToken",
    "PasswordHasher",
    "Role",
    "TokenPair",
    "TooManyAttempts",
    "decode_access_token",
    "hash_refresh_token",
    "issue_access_token",
    "new_refresh_token",
]
