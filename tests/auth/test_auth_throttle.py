"""Login throttling: per account and client network, per client, under concurrency; the
clean-up of failed logins and expired refresh tokens (on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from auth_clock import PASSWORD, SECRET, Clock
from sqlalchemy import select

from cadlink.auth import (
    AuthService,
    InvalidCredentials,
    PasswordHasher,
    TooManyAttempts,
    hash_refresh_token,
)
from cadlink.auth.service import PRUNE_EVERY, client_network
from cadlink.store.meta import MetaStore
from cadlink.store.meta.models import LoginFailure

EMAIL = "ana@shop.example"
OWNER = "203.0.113.5"
ATTACKER = "198.51.100.7"


class CountingHasher(PasswordHasher):
    """Cheap argon2 that counts verifications; `delay` widens the window between the
    throttle's check and its record, as a real (~0.2 s) verification does."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.delay = delay
        self.verifications = 0
        self._lock = threading.Lock()

    def verify(self, password_hash: str, password: str) -> bool:
        with self._lock:
            self.verifications += 1
        time.sleep(self.delay)
        return super().verify(password_hash, password)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


def _service(
    store: MetaStore, hasher: PasswordHasher, clock: Clock, per_minute: int = 15, burst: int = 15
) -> AuthService:
    return AuthService(
        store, hasher, SECRET, 15, 30, client_per_minute=per_minute, client_burst=burst, clock=clock
    )


@pytest.fixture
def auth(meta_store: MetaStore, hasher: CountingHasher, clock: Clock) -> AuthService:
    service = _service(meta_store, hasher, clock)
    service.create_user(EMAIL, PASSWORD, "ANALYST")
    return service


def _fail(auth: AuthService, times: int, client: str | None, email: str = EMAIL) -> None:
    for _ in range(times):
        with pytest.raises(InvalidCredentials):
            auth.login(email, "wrong password", client=client)


def test_guesses_from_elsewhere_do_not_lock_the_owner_out(auth: AuthService) -> None:
    _fail(auth, 10, ATTACKER)
    with pytest.raises(TooManyAttempts):
        auth.login(EMAIL, PASSWORD, client=ATTACKER)  # the guesser's own network is locked
    assert auth.login(EMAIL, PASSWORD, client=OWNER).access_token
    assert auth.login(EMAIL, PASSWORD).access_token  # an in-process caller, too
    with pytest.raises(TooManyAttempts):
        auth.login(EMAIL, PASSWORD, client=ATTACKER)  # the owner's login did not unlock it


def test_an_ipv6_client_is_its_slash_64(auth: AuthService) -> None:
    for host in range(10):  # rotating addresses within one /64 does not help
        _fail(auth, 1, f"2001:db8:1:2::{host + 1:x}")
    with pytest.raises(TooManyAttempts):
        auth.login(EMAIL, PASSWORD, client="2001:db8:1:2:ffff::1")
    assert auth.login(EMAIL, PASSWORD, client="2001:db8:1:3::1").access_token
    assert client_network("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert client_network(" 192.0.2.9 ") == "192.0.2.9"
    assert client_network("testclient") == "testclient"


def test_failures_are_stored_without_the_email_or_the_address(
    auth: AuthService, meta_store: MetaStore
) -> None:
    _fail(auth, 2, ATTACKER, "mistyped@shop.example")
    with meta_store.engine.connect() as conn:
        keys = conn.execute(select(LoginFailure.email)).scalars().all()
    assert len(keys) == 2 and len(set(keys)) == 1
    assert all("mistyped" not in k and ATTACKER not in k and len(k) == 64 for k in keys)


def test_one_client_is_limited_across_all_emails(
    meta_store: MetaStore, hasher: CountingHasher, clock: Clock
) -> None:
    auth = _service(meta_store, hasher, clock, per_minute=12, burst=15)
    for i in range(15):
        _fail(auth, 1, ATTACKER, f"user{i}@shop.example")
    checked = hasher.verifications
    with pytest.raises(TooManyAttempts) as excinfo:
        auth.login("user99@shop.example", "wrong password", client=ATTACKER)
    assert excinfo.value.retry_after == 5  # 12 a minute: the next in 5 s
    assert hasher.verifications == checked  # refused before any password hashing
    _fail(auth, 1, OWNER, "user99@shop.example")  # another client is not held up
    clock.advance(seconds=6)
    _fail(auth, 1, ATTACKER, "user99@shop.example")


def test_concurrent_guesses_do_not_exceed_the_limit(meta_store: MetaStore, clock: Clock) -> None:
    slow = CountingHasher(delay=0.05)
    auth = _service(meta_store, slow, clock, burst=100)
    auth.create_user(EMAIL, PASSWORD, "ANALYST")
    start = threading.Barrier(30)
    outcomes: list[str] = []

    def guess() -> None:
        start.wait()
        try:
            auth.login(EMAIL, "wrong password", client=ATTACKER)
        except (InvalidCredentials, TooManyAttempts) as e:
            outcomes.append(type(e).__name__)

    threads = [threading.Thread(target=guess) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 30
    # Creating the user cost no verification: each one here is a checked guess. (Racing
    # attempts may all be refused: each counts the others' reservations.)
    assert slow.verifications <= 10
    assert outcomes.count("InvalidCredentials") == slow.verifications
    # Exactly the checked guesses stay recorded as failures; refused ones left no trace.
    assert _failures(meta_store) == slow.verifications


def _failures(store: MetaStore) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(select(LoginFailure.id)).all())


def test_prune_deletes_old_failures_and_expired_tokens(
    auth: AuthService, meta_store: MetaStore, clock: Clock
) -> None:
    _fail(auth, 3, ATTACKER, "mistyped@shop.example")
    clock.advance(minutes=10)
    _fail(auth, 1, ATTACKER, "mistyped@shop.example")
    expired = auth.login(EMAIL, PASSWORD, client=OWNER)
    clock.advance(days=30, seconds=1)  # the first login's refresh token has expired
    live = auth.login(EMAIL, PASSWORD, client=OWNER)
    _fail(auth, 1, ATTACKER, "mistyped@shop.example")  # inside the window: kept
    assert auth.prune(clock.now) == (4, 1)
    assert _failures(meta_store) == 1
    assert meta_store.get_refresh_token(hash_refresh_token(expired.refresh_token)) is None
    assert meta_store.get_refresh_token(hash_refresh_token(live.refresh_token)) is not None
    # At most once per PRUNE_EVERY: it runs with every salt check, every few seconds.
    meta_store.record_login_failure("old", clock.now - timedelta(hours=1))
    clock.advance(seconds=PRUNE_EVERY.total_seconds() / 2)
    assert auth.prune(clock.now) == (0, 0)
    clock.advance(seconds=PRUNE_EVERY.total_seconds() / 2)
    assert auth.prune(clock.now) == (1, 0)
    assert _failures(meta_store) == 1
