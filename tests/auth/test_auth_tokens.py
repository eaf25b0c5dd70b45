"""Access tokens (JWT) and refresh token helpers."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from cadlink.auth import (
    InvalidToken,
    Role,
    decode_access_token,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)

SECRET = "test-secret-key-with-at-least-32-bytes!"


def test_issue_and_decode_round_trip() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    token = issue_access_token(42, Role.ANALYST, SECRET, minutes=15, now=now)
    claims = decode_access_token(token, SECRET)
    assert claims.user_id == 42
    assert claims.role is Role.ANALYST
    assert claims.issued_at == now
    assert claims.expires_at == now + timedelta(minutes=15)
    assert len(claims.jti) == 32


def test_claims_on_the_wire() -> None:
    token = issue_access_token(7, "VIEWER", SECRET, minutes=5)
    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert payload["sub"] == "7"
    assert payload["role"] == "VIEWER"
    assert payload["type"] == "access"
    assert payload["exp"] - payload["iat"] == 300
    assert {"jti"} <= payload.keys()


def test_each_token_has_a_unique_jti() -> None:
    a = decode_access_token(issue_access_token(1, Role.ADMIN, SECRET, 5), SECRET)
    b = decode_access_token(issue_access_token(1, Role.ADMIN, SECRET, 5), SECRET)
    assert a.jti != b.jti


def test_expired_token_is_rejected() -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    token = issue_access_token(1, Role.ADMIN, SECRET, minutes=15, now=past)
    with pytest.raises(InvalidToken, match="expired"):
        decode_access_token(token, SECRET)


def test_wrong_secret_is_rejected() -> None:
    token = issue_access_token(1, Role.ADMIN, SECRET, minutes=15)
    with pytest.raises(InvalidToken):
        decode_access_token(token, SECRET + "x")


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_payload_is_rejected() -> None:
    token = issue_access_token(1, Role.VIEWER, SECRET, minutes=15)
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = ".".join([header, _b64({**claims, "role": "ADMIN"}), signature])
    with pytest.raises(InvalidToken):
        decode_access_token(forged, SECRET)


def test_alg_none_is_rejected() -> None:
    claims = jwt.decode(
        issue_access_token(1, Role.VIEWER, SECRET, 15), options={"verify_signature": False}
    )
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({**claims, 'role': 'ADMIN'})}."
    with pytest.raises(InvalidToken):
        decode_access_token(unsigned, SECRET)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 500])
def test_garbage_is_rejected(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        decode_access_token(garbage, SECRET)


def _sign(claims: dict[str, object]) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _valid_claims() -> dict[str, object]:
    now = int(datetime.now(UTC).timestamp())
    return {"sub": "1", "role": "ADMIN", "iat": now, "exp": now + 60, "jti": "j", "type": "access"}


@pytest.mark.parametrize(
    "change",
    [
        {"type": "refresh"},
        {"role": "ROOT"},
        {"sub": "not-a-number"},
        {"sub": None},
        {"role": None},
        {"jti": None},
        {"exp": None},
    ],
)
def test_wrong_or_missing_claims_are_rejected(change: dict[str, object]) -> None:
    claims = {**_valid_claims(), **change}
    claims = {k: v for k, v in claims.items() if v is not None}
    with pytest.raises(InvalidToken):
        decode_access_token(_sign(claims), SECRET)


def test_refresh_tokens_are_random_and_hashed() -> None:
    tokens = {new_refresh_token() for _ in range(50)}
    assert len(tokens) == 50
    token = tokens.pop()
    assert len(token) >= 43
    assert hash_refresh_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert len(hash_refresh_token(token)) == 64
