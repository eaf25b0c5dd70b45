"""Log in, refresh tokens and log out (public routes: a refresh token is their credential)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from cadlink.auth.errors import InvalidCredentials, InvalidToken, TooManyAttempts
from cadlink.auth.tokens import TokenPair
from cadlink.ingest.client_ip import client_ip
from cadlink.services import Services
from cadlink.web.deps import services
from cadlink.web.responses import ApiError, error_body, ok

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginBody(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    otp: str | None = Field(default=None, max_length=16)


class RefreshBody(BaseModel):
    refreshToken: str = Field(min_length=10, max_length=512)  # noqa: N815 - wire name


def _tokens(pair: TokenPair) -> dict[str, Any]:
    return {
        "accessToken": pair.access_token,
        "refreshToken": pair.refresh_token,
        "expiresIn": pair.expires_in,
        "tokenType": pair.token_type,
    }


@router.post("/login", response_model=None)
async def login(
    body: LoginBody, request: Request, svc: Services = Depends(services)
) -> dict[str, Any] | JSONResponse:
    # The client as the collect endpoint sees it: `X-Forwarded-For` only from a trusted proxy.
    peer = request.client.host if request.client else None
    client = client_ip(peer, request.headers.get("x-forwarded-for"), svc.settings.trusted_proxy_set)
    try:
        # argon2 verification costs ~0.2 s of CPU: keep it off the event loop.
        pair = await asyncio.to_thread(
            svc.auth.login, body.email, body.password, body.otp, client=client
        )
    except TooManyAttempts as e:
        return JSONResponse(
            error_body("too_many_attempts", str(e)),
            429,
            headers={"Retry-After": str(e.retry_after)},
        )
    except InvalidCredentials as e:
        raise ApiError(401, "invalid_credentials", str(e)) from None
    return ok(_tokens(pair))


@router.post("/refresh")
async def refresh(body: RefreshBody, svc: Services = Depends(services)) -> dict[str, Any]:
    try:
        pair = await asyncio.to_thread(svc.auth.refresh, body.refreshToken)
    except InvalidToken as e:
        raise ApiError(401, "invalid_token", str(e)) from None
    return ok(_tokens(pair))


@router.post("/logout")
async def logout(body: RefreshBody, svc: Services = Depends(services)) -> dict[str, Any]:
    """End the session of this refresh token (the dashboard's "Log out"): it, and whatever it
    was rotated into, no longer refresh. Access tokens already issued expire on their own
    (15 minutes). Answers success for unknown or ended sessions too."""
    await asyncio.to_thread(svc.auth.logout, body.refreshToken)
    return ok({"loggedOut": True})
