"""AuthService: logins, throttling, refresh rotation, accounts (on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from auth_clock import PASSWORD, SECRET, Clock
from sqlalchemy import select

from cadlink.auth import (
    AuthService,
    InvalidCredentials,
    InvalidToken,
    PasswordHasher,
    Role,
    TokenPair,
    TooManyAttempts,
    decode_access_token,
    hash_refresh_token,
)
from cadlink.auth.service import ROTATION_LEEWAY
from cadlink.store.meta import AlreadyExists, InvalidInput, MetaStore
from cadlink.store.meta.models import RefreshToken


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verifications = 0

    def verify(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        return super().verify(password_hash, password)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
def auth(meta_store: MetaStore, hasher: CountingHasher, clock: Clock) -> AuthService:
    return AuthService(meta_store, hasher, SECRET, access_minutes=15, refresh_days=30, clock=clock)


@pytest.fixture
def analyst_id(auth: AuthService) -> int:
    return auth.create_user("Ana@Shop.Example", PASSWORD, Role.ANALYST).id


def test_login_returns_a_token_pair(
    auth: AuthService, meta_store: MetaStore, analyst_id: int, clock: Clock
) -> None:
    pair = auth.login("ana@shop.example", PASSWORD)
    assert isinstance(pair, TokenPair)
    assert pair.token_type == "bearer"
    assert pair.expires_in == 900
    claims = decode_access_token(pair.access_token, SECRET)
    assert (claims.user_id, claims.role) == (analyst_id, Role.ANALYST)
    assert auth.authenticate(pair.access_token) == claims
    stored = meta_store.get_refresh_token(hash_refresh_token(pair.refresh_token))
    assert stored is not None and stored.user_id == analyst_id
    assert stored.expires_at == clock.now + timedelta(days=30)
    user = meta_store.get_user(analyst_id)
    assert user is not None and user.last_login_at == clock.now


def test_raw_refresh_token_is_never_stored(
    auth: AuthService, meta_store: MetaStore, analyst_id: int
) -> None:
    pair = auth.login("ana@shop.example", PASSWORD)
    with meta_store.engine.connect() as conn:
        hashes = conn.execute(select(RefreshToken.token_hash)).scalars().all()
    assert pair.refresh_token not in hashes
    assert hashes == [hash_refresh_token(pair.refresh_token)]


def test_login_email_is_case_insensitive(auth: AuthService, analyst_id: int) -> None:
    assert auth.login("  ANA@shop.EXAMPLE ", PASSWORD).access_token


def test_wrong_password_and_unknown_email_look_the_same(
    auth: AuthService, analyst_id: int, hasher: CountingHasher
) -> None:
    with pytest.raises(InvalidCredentials) as wrong_password:
        auth.login("ana@shop.example", "wrong password")
    before = hasher.verifications
    with pytest.raises(InvalidCredentials) as unknown_email:
        auth.login("nobody@shop.example", PASSWORD)
    assert str(wrong_password.value) == str(unknown_email.value) == "invalid email or password"
    assert hasher.verifications == before + 1  # a dummy hash is verified for unknown emails


def test_disabled_account_cannot_log_in(
    auth: AuthService, meta_store: MetaStore, analyst_id: int
) -> None:
    meta_store.update_user(analyst_id, is_active=False)
    with pytest.raises(InvalidCredentials, match="invalid email or password"):
        auth.login("ana@shop.example", PASSWORD)


def test_throttle_after_ten_failures(auth: AuthService, analyst_id: int, clock: Clock) -> None:
    for _ in range(10):
        with pytest.raises(InvalidCredentials):
            auth.login("ana@shop.example", "wrong password")
        clock.advance(seconds=30)
    with pytest.raises(TooManyAttempts) as excinfo:
        auth.login("ana@shop.example", PASSWORD)  # even the right password
    # The real time left: the first failure (300 s ago) leaves the 15-minute window in 600 s.
    assert excinfo.value.retry_after == 600
    assert "600 seconds" in str(excinfo.value)
    clock.advance(seconds=599)
    with pytest.raises(TooManyAttempts) as excinfo:
        auth.login("ana@shop.example", PASSWORD)
    assert excinfo.value.retry_after == 1
    clock.advance(seconds=1)  # the oldest failure leaves the window
    assert auth.login("ana@shop.example", PASSWORD).access_token


def test_throttle_is_per_email(auth: AuthService, analyst_id: int) -> None:
    for _ in range(10):
        with pytest.raises(InvalidCredentials):
            auth.login("nobody@shop.example", "guess")
    with pytest.raises(TooManyAttempts):
        auth.login("NOBODY@shop.example", "guess")
    assert auth.login("ana@shop.example", PASSWORD).access_token


def test_throttle_is_shared_between_service_instances(
    meta_store: MetaStore, hasher: CountingHasher, analyst_id: int
) -> None:
    # Two services on one store stand in for two `cadlink serve` processes.
    first = AuthService(meta_store, hasher, SECRET, 15, 30)
    second = AuthService(meta_store, hasher, SECRET, 15, 30)
    for service in [first, second] * 5:
        with pytest.raises(InvalidCredentials):
            service.login("ana@shop.example", "wrong password")
    with pytest.raises(TooManyAttempts):
        first.login("ana@shop.example", PASSWORD)
    with pytest.raises(TooManyAttempts):
        second.login("ana@shop.example", PASSWORD)


def test_successful_login_resets_the_throttle(auth: AuthService, analyst_id: int) -> None:
    for _ in range(9):
        with pytest.raises(InvalidCredentials):
            auth.login("ana@shop.example", "wrong password")
    auth.login("ana@shop.example", PASSWORD)
    for _ in range(9):
        with pytest.raises(InvalidCredentials):
            auth.login("ana@shop.example", "wrong password")
    assert auth.login("ana@shop.example", PASSWORD).access_token


def test_login_rehashes_weaker_hashes(
    meta_store: MetaStore, auth: AuthService, analyst_id: int
) -> None:
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    upgraded = AuthService(meta_store, stronger, SECRET, 15, 30)
    upgraded.login("ana@shop.example", PASSWORD)
    creds = meta_store.get_user_credentials("ana@shop.example")
    assert creds is not None
    assert not stronger.needs_rehash(creds.password_hash)
    assert upgraded.login("ana@shop.example", PASSWORD).access_token


def test_refresh_rotates_the_pair(
    auth: AuthService, meta_store: MetaStore, analyst_id: int
) -> None:
    first = auth.login("ana@shop.example", PASSWORD)
    second = auth.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert decode_access_token(second.access_token, SECRET).user_id == analyst_id
    old = meta_store.get_refresh_token(hash_refresh_token(first.refresh_token))
    assert old is not None and old.revoked_at is not None
    third = auth.refresh(second.refresh_token)
    assert third.refresh_token not in (first.refresh_token, second.refresh_token)


def test_reusing_a_revoked_refresh_token_revokes_the_family(
    auth: AuthService, analyst_id: int, clock: Clock
) -> None:
    first = auth.login("ana@shop.example", PASSWORD)
    second = auth.refresh(first.refresh_token)
    clock.advance(seconds=ROTATION_LEEWAY.total_seconds() + 1)
    with pytest.raises(InvalidToken, match="already used"):
        auth.refresh(first.refresh_token)
    # The stolen-token alarm also logged out the legitimate holder of `second`.
    with pytest.raises(InvalidToken):
        auth.refresh(second.refresh_token)


def test_a_token_used_moments_ago_is_honoured_while_its_session_lives(
    auth: AuthService, analyst_id: int, clock: Clock
) -> None:
    """The answer to a refresh never reached the browser (the tab navigated while it was in
    flight), or two tabs refreshed at once with the token both read: the token used moments
    ago gets a new pair instead of a refusal, which signed the user out on the next page."""
    first = auth.login("ana@shop.example", PASSWORD)
    second = auth.refresh(first.refresh_token)  # its answer is lost
    clock.advance(seconds=ROTATION_LEEWAY.total_seconds() - 1)
    third = auth.refresh(first.refresh_token)
    assert third.refresh_token not in (first.refresh_token, second.refresh_token)
    # `second` was rotated into `third`: its holder (another tab) is honoured as well.
    fourth = auth.refresh(second.refresh_token)
    fifth = auth.refresh(fourth.refresh_token)  # and the session goes on
    clock.advance(seconds=2)  # past the leeway of `first`: now the alarm
    with pytest.raises(InvalidToken, match="already used"):
        auth.refresh(first.refresh_token)
    for pair in (third, fourth, fifth):
        with pytest.raises(InvalidToken):
            auth.refresh(pair.refresh_token)


def test_a_token_used_moments_ago_is_refused_after_a_logout(
    auth: AuthService, analyst_id: int, clock: Clock
) -> None:
    """Within the leeway too, a session ended by a logout stays ended."""
    first = auth.login("ana@shop.example", PASSWORD)
    second = auth.refresh(first.refresh_token)
    auth.logout(second.refresh_token)
    clock.advance(seconds=5)
    with pytest.raises(InvalidToken, match="revoked"):
        auth.refresh(first.refresh_token)
    with pytest.raises(InvalidToken):
        auth.refresh(second.refresh_token)


def test_concurrent_refreshes_with_one_token_all_get_a_pair(
    auth: AuthService, meta_store: MetaStore, analyst_id: int
) -> None:
    first = auth.login("ana@shop.example", PASSWORD)
    pairs: list[TokenPair] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        try:
            pairs.append(auth.refresh(first.refresh_token))
        except Exception as e:  # collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(pairs) == 4
    assert len({p.refresh_token for p in pairs}) == 4
    # One chain of rotations: exactly one of them is live, the others rotated into it.
    records = [meta_store.get_refresh_token(hash_refresh_token(p.refresh_token)) for p in pairs]
    assert sum(r is not None and r.revoked_at is None for r in records) == 1


@pytest.mark.parametrize("token", ["", "made-up", "x" * 200])
def test_unknown_refresh_token_is_rejected(auth: AuthService, token: str) -> None:
    with pytest.raises(InvalidToken, match="unknown"):
        auth.refresh(token)


def test_expired_refresh_token_is_rejected(
    auth: AuthService, analyst_id: int, clock: Clock
) -> None:
    pair = auth.login("ana@shop.example", PASSWORD)
    clock.advance(days=30, seconds=1)
    with pytest.raises(InvalidToken, match="expired"):
        auth.refresh(pair.refresh_token)


def test_refresh_for_a_disabled_account_is_rejected(
    auth: AuthService, meta_store: MetaStore, analyst_id: int
) -> None:
    pair = auth.login("ana@shop.example", PASSWORD)
    meta_store.update_user(analyst_id, is_active=False)
    with pytest.raises(InvalidToken, match="disabled"):
        auth.refresh(pair.refresh_token)


def test_logout_revokes_the_refresh_token(auth: AuthService, analyst_id: int) -> None:
    pair = auth.login("ana@shop.example", PASSWORD)
    auth.logout(pair.refresh_token)
    auth.logout(pair.refresh_token)  # twice is harmless
    with pytest.raises(InvalidToken):
        auth.refresh(pair.refresh_token)


def test_expired_access_token_is_rejected(auth: AuthService, analyst_id: int, clock: Clock) -> None:
    clock.advance(minutes=-16)
    pair = auth.login("ana@shop.example", PASSWORD)
    with pytest.raises(InvalidToken, match="expired"):
        auth.authenticate(pair.access_token)


def test_tampered_access_token_is_rejected(
    auth: AuthService, meta_store: MetaStore, hasher: CountingHasher, analyst_id: int
) -> None:
    token = auth.login("ana@shop.example", PASSWORD).access_token
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(InvalidToken):
        auth.authenticate(f"{header}.{payload}.{flipped}")
    other_instance = AuthService(meta_store, hasher, SECRET + "-other", 15, 30)
    with pytest.raises(InvalidToken):
        other_instance.authenticate(token)


@pytest.mark.parametrize("role", list(Role))
def test_role_claim_follows_the_user(auth: AuthService, role: Role) -> None:
    auth.create_user(f"{role.lower()}@shop.example", PASSWORD, role.value)
    pair = auth.login(f"{role.lower()}@shop.example", PASSWORD)
    assert auth.authenticate(pair.access_token).role is role


def test_role_change_shows_in_the_next_refresh(
    auth: AuthService, meta_store: MetaStore, analyst_id: int
) -> None:
    pair = auth.login("ana@shop.example", PASSWORD)
    meta_store.update_user(analyst_id, role="VIEWER")
    renewed = auth.refresh(pair.refresh_token)
    assert auth.authenticate(renewed.access_token).role is Role.VIEWER


@pytest.mark.parametrize(
    ("email", "password", "role", "message"),
    [
        ("not-an-email", PASSWORD, "ADMIN", "email"),
        ("a@b", PASSWORD, "ADMIN", "email"),
        ("a b@c.example", PASSWORD, "ADMIN", "email"),
        ("a@b.example", "short", "ADMIN", "password must be"),
        ("a@b.example", "x" * 1025, "ADMIN", "password must be"),
        ("a@b.example", " " * 8, "ADMIN", "too easy to guess"),
        ("a@b.example", "12121212", "ADMIN", "too easy to guess"),
        ("a@b.example", "Password", "ADMIN", "too easy to guess"),
        ("a@b.example", "12345678", "ADMIN", "too easy to guess"),
        ("a@b.example", PASSWORD, "SUPERUSER", "role must be one of"),
    ],
)
def test_create_user_validates(
    auth: AuthService, email: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        auth.create_user(email, password, role)


def test_create_user_stores_a_hash_and_rejects_duplicates(
    auth: AuthService, meta_store: MetaStore, analyst_id: int
) -> None:
    creds = meta_store.get_user_credentials("ana@shop.example")
    assert creds is not None
    assert creds.password_hash.startswith("$argon2id$")
    assert PASSWORD not in creds.password_hash
    with pytest.raises(AlreadyExists):
        auth.create_user("ANA@shop.example", PASSWORD, "VIEWER")


def test_ensure_admin_creates_once(auth: AuthService, meta_store: MetaStore) -> None:
    assert auth.ensure_admin("root@shop.example", PASSWORD) is True
    assert auth.ensure_admin("ROOT@shop.example", "another password") is False
    user = meta_store.get_user_by_email("root@shop.example")
    assert user is not None and user.role == "ADMIN"
    assert auth.login("root@shop.example", PASSWORD).access_token
    with pytest.raises(InvalidCredentials):
        auth.login("root@shop.example", "another password")


def test_set_password_logs_out_everywhere(auth: AuthService, analyst_id: int) -> None:
    pair = auth.login("ana@shop.example", PASSWORD)
    auth.set_password(analyst_id, "a brand new password")
    with pytest.raises(InvalidToken):
        auth.refresh(pair.refresh_token)
    with pytest.raises(InvalidCredentials):
        auth.login("ana@shop.example", PASSWORD)
    assert auth.login("ana@shop.example", "a brand new password").access_token
    with pytest.raises(InvalidInput):
        auth.set_password(analyst_id, "short")
