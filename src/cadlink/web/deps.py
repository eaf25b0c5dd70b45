"""Request dependencies: the services container and bearer-token authorisation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from cadlink.auth.errors import InvalidToken
from cadlink.auth.roles import Role
from cadlink.auth.tokens import decode_access_token
from cadlink.services import Services
from cadlink.web.responses import ApiError


@dataclass(frozen=True)
class Principal:
    user_id: int
    role: Role


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def require(*roles: Role) -> Callable[[Request], Principal]:
    """A dependency admitting a valid bearer access token whose role is one of `roles`."""
    allowed = frozenset(roles)

    def check(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "a bearer access token is required")
        try:
            claims = decode_access_token(token.strip(), services(request).settings.secret_key)
        except InvalidToken as e:
            raise ApiError(401, "invalid_token", str(e)) from None
        principal = Principal(user_id=int(claims.user_id), role=Role(claims.role))
        if principal.role not in allowed:
            raise ApiError(
                403, "forbidden", f"this needs one of the roles {', '.join(sorted(allowed))}"
            )
        return principal

    return check


ANY_ROLE = (Role.ADMIN, Role.ANALYST, Role.VIEWER)
ANALYSTS = (Role.ADMIN, Role.ANALYST)
ADMINS = (Role.ADMIN,)

# Module-level dependencies, so each route says who may call it in one word.
allow_any = require(*ANY_ROLE)
allow_analysts = require(*ANALYSTS)
allow_admins = require(*ADMINS)
