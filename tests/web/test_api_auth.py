"""Authentication and authorisation of the HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from httpx import Response
from sqlalchemy import select
from starlette.testclient import TestClient

from cadlink.store.meta.models import LoginFailure
from cadlink.web.routes_dashboard import PAGES
from cadlink_fixtures import ADMIN_EMAIL, ADMIN_PASSWORD, Running, make_settings, start_app

PUBLIC = {
    "/api/health", "/api/health/db", "/api/health/queue", "/metrics", "/t.js", "/",
    "/openapi.json", "/docs", "/docs/oauth2-redirect", "/api/v1/auth/login", "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/collect", "/api/v1/collect/batch",
    # The dashboard's pages (one static shell, no data: it signs in through the API) and assets.
    *PAGES, "/assets/{name}",
}  # fmt: skip


def test_login_returns_tokens_and_refresh_rotates_them(running: Running) -> None:
    r = running.client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    data = r.json()["data"]
    assert r.json()["success"] is True
    assert data["tokenType"] == "bearer"
    assert data["expiresIn"] > 0
    r2 = running.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    assert r2.status_code == 200
    assert r2.json()["data"]["refreshToken"] != data["refreshToken"]
    # The old refresh token was rotated away. Used again at once (its answer was lost, or
    # another tab refreshed with it) it still gets a pair of its own: the session lives on.
    r3 = running.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    assert r3.status_code == 200
    tokens = {data["refreshToken"], r2.json()["data"]["refreshToken"]}
    assert r3.json()["data"]["refreshToken"] not in tokens
    unknown = data["refreshToken"][::-1]  # well formed, never issued
    r4 = running.client.post("/api/v1/auth/refresh", json={"refreshToken": unknown})
    assert r4.status_code == 401
    assert r4.json()["error"]["code"] == "invalid_token"


def test_logout_ends_the_session_of_the_refresh_token(running: Running) -> None:
    login = running.client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    ).json()["data"]
    rotated = running.client.post(
        "/api/v1/auth/refresh", json={"refreshToken": login["refreshToken"]}
    ).json()["data"]
    # The browser logs out with the token it holds, even one a rotation behind.
    out = running.client.post("/api/v1/auth/logout", json={"refreshToken": login["refreshToken"]})
    assert out.status_code == 200 and out.json()["data"] == {"loggedOut": True}
    for token in (login["refreshToken"], rotated["refreshToken"]):
        r = running.client.post("/api/v1/auth/refresh", json={"refreshToken": token})
        assert r.status_code == 401, token
    again = running.client.post("/api/v1/auth/logout", json={"refreshToken": "x" * 43})
    assert again.status_code == 200  # unknown or ended: nothing to do
    assert running.client.post("/api/v1/auth/logout", json={}).status_code == 400


def test_wrong_password_and_unknown_email_get_the_same_401(running: Running) -> None:
    a = running.client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "nope-nope"}
    )
    b = running.client.post(
        "/api/v1/auth/login", json={"email": "who@x.example", "password": "nope-nope"}
    )
    assert a.status_code == b.status_code == 401
    assert a.json()["error"] == b.json()["error"]


def test_login_body_is_validated(running: Running) -> None:
    r = running.client.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL})
    assert r.status_code == 400
    assert r.json()["error"]["details"]["field"] == "password"


def test_every_non_public_route_requires_a_bearer_token(running: Running) -> None:
    checked = 0
    paths = running.client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        if path in PUBLIC:
            continue
        for method in (m.upper() for m in operations):
            url = path.replace("{site_id}", running.site_id)
            r = running.client.request(method, url, params={"siteId": running.site_id})
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["error"]["code"] == "unauthorized"
            bad = running.client.request(
                method,
                url,
                params={"siteId": running.site_id},
                headers={"Authorization": "Bearer x.y.z"},
            )
            assert bad.status_code == 401, (method, path)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize(("role", "status"), [("ADMIN", 200), ("ANALYST", 200), ("VIEWER", 403)])
def test_analytics_needs_admin_or_analyst(running: Running, role: str, status: int) -> None:
    email = f"role-{role.lower()}@shop.example"
    running.services.auth.create_user(email, "password-123", role)
    token = running.client.post(
        "/api/v1/auth/login", json={"email": email, "password": "password-123"}
    )
    headers = {"Authorization": "Bearer " + token.json()["data"]["accessToken"]}
    r = running.client.get(
        "/api/v1/analytics/events", params={"siteId": running.site_id}, headers=headers
    )
    assert r.status_code == status
    if status == 403:
        assert r.json()["error"]["code"] == "forbidden"


def test_only_admins_create_sites(running: Running) -> None:
    running.services.auth.create_user("an@shop.example", "password-123", "ANALYST")
    login = running.client.post(
        "/api/v1/auth/login", json={"email": "an@shop.example", "password": "password-123"}
    )
    analyst = {"Authorization": "Bearer " + login.json()["data"]["accessToken"]}
    assert (
        running.client.post(
            "/api/v1/sites", json={"domain": "b.example"}, headers=analyst
        ).status_code
        == 403
    )
    r = running.client.post("/api/v1/sites", json={"domain": "b.example"}, headers=running.auth)
    assert r.status_code == 201
    assert r.json()["data"]["domain"] == "b.example"
    bad = running.client.post("/api/v1/sites", json={"domain": "https://x/y"}, headers=running.auth)
    assert bad.status_code == 400


def test_admins_update_sites_and_collect_sees_it_at_once(running: Running) -> None:
    url = f"/api/v1/sites/{running.site_id}"
    r = running.client.patch(
        url,
        json={"timezone": "Europe/Paris", "allowedOrigins": ["https://partner.example"]},
        headers=running.auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["timezone"] == "Europe/Paris"
    assert r.json()["data"]["domain"] == "shop.example"  # unchanged
    ev = {"siteId": running.site_id, "eventType": "page_view"}
    ok = running.client.post(
        "/api/v1/collect", json=ev, headers={"Origin": "https://partner.example"}
    )
    assert ok.status_code == 204
    bad = running.client.patch(url, json={"timezone": "Mars/Olympus"}, headers=running.auth)
    assert bad.status_code == 400
    assert (
        "time zone" in bad.json()["error"]["message"].lower()
        or "timezone" in bad.json()["error"]["message"].lower()
    )
    running.services.auth.create_user("v@shop.example", "password-123", "VIEWER")
    login = running.client.post(
        "/api/v1/auth/login", json={"email": "v@shop.example", "password": "password-123"}
    )
    viewer = {"Authorization": "Bearer " + login.json()["data"]["accessToken"]}
    assert running.client.patch(url, json={"name": "x"}, headers=viewer).status_code == 403


def _login(running: Running, password: str, via: str, email: str = ADMIN_EMAIL) -> Response:
    return running.client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": via},
    )


@pytest.fixture
def behind_proxy(tmp_path: Path) -> Iterator[Running]:
    """The app behind a proxy it trusts: the test client's address, 203.0.113.77."""
    yield from start_app(make_settings(tmp_path / "data", trusted_proxies="203.0.113.77"))


def test_guesses_lock_out_their_own_network_only_and_429_says_when(
    behind_proxy: Running,
) -> None:
    attacker, owner = "198.51.100.7", "192.0.2.10"
    for _ in range(10):
        assert _login(behind_proxy, "wrong password", attacker).status_code == 401
    locked = _login(behind_proxy, ADMIN_PASSWORD, attacker)
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "too_many_attempts"
    retry = int(locked.headers["Retry-After"])
    assert 890 <= retry <= 900  # the real time left, not always the whole window
    assert f"try again in {retry} seconds" in locked.json()["error"]["message"]
    # The owner, elsewhere, logs in (the address is the proxy's client, not the proxy).
    assert _login(behind_proxy, ADMIN_PASSWORD, owner).status_code == 200
    # Not from a trusted proxy the header is not believed: the socket peer is the client.
    # (No `with`: the app's lifespan is the fixture's client's.)
    direct = TestClient(behind_proxy.client.app, client=("198.51.100.99", 1))
    r = direct.post(
        "/api/v1/auth/login",
        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        headers={"X-Forwarded-For": attacker},
    )
    assert r.status_code == 200


def test_one_client_cannot_flood_logins_across_emails(behind_proxy: Running) -> None:
    flood = [_login(behind_proxy, "guess", "198.51.100.8", f"u{i}@x.example") for i in range(20)]
    assert [r.status_code for r in flood[:15]] == [401] * 15  # the burst: 15 at once
    refused = [r for r in flood if r.status_code == 429]
    assert refused, [r.status_code for r in flood]
    assert 1 <= int(refused[0].headers["Retry-After"]) <= 4  # 15 a minute: one per 4 s
    assert _login(behind_proxy, ADMIN_PASSWORD, "192.0.2.10").status_code == 200


def test_salt_rotation_prunes_failed_logins_and_expired_tokens(running: Running) -> None:
    for email in (ADMIN_EMAIL, "mistyped@shop.exampel"):
        r = running.client.post("/api/v1/auth/login", json={"email": email, "password": "nope"})
        assert r.status_code == 401
    meta = running.services.meta
    user = meta.get_user_by_email(ADMIN_EMAIL)
    assert user is not None
    later = datetime.now(UTC) + timedelta(minutes=16)  # past the 15-minute lockout window
    meta.store_refresh_token(user.id, "a" * 64, later - timedelta(seconds=1))  # expired by then
    meta.store_refresh_token(user.id, "b" * 64, later + timedelta(days=1))
    running.services.rotate_salts(later)  # what the background loop runs every few seconds
    with meta.engine.connect() as conn:
        assert conn.execute(select(LoginFailure.id)).all() == []
    assert meta.get_refresh_token("a" * 64) is None
    assert meta.get_refresh_token("b" * 64) is not None
