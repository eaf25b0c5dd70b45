"""Logins, token refresh and account creation on top of `MetaStore`."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cadlink.auth.errors import InvalidCredentials, InvalidToken, TooManyAttempts
from cadlink.auth.passwords import PasswordHasher
from cadlink.auth.roles import Role
from cadlink.auth.tokens import (
    AccessClaims,
    TokenPair,
    decode_access_token,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)
from cadlink.ingest.ratelimit import RateLimiter
from cadlink.store.meta import AlreadyExists, InvalidInput, MetaStore, UserRecord
from cadlink.store.meta.records import RefreshTokenRecord
from cadlink.store.meta.validation import normalize_email

# A refresh token presented again this soon after its rotation is honoured while the session
# it was rotated into still lives: its answer may never have reached the browser (the tab
# navigated or closed while the refresh was in flight, the connection dropped), or two tabs
# refreshed at once with the token they both read. Refusing it signed such a user out on
# their next page. Later, a used token presented again is taken for a copy and revokes every
# refresh token of the user. As with Auth0's reuse interval or Okta's grace period, a copy
# used within the leeway is not told apart from its owner.
ROTATION_LEEWAY = timedelta(seconds=30)
_MAX_CHAIN = 20  # rotations followed from a token used again (30 s hold a handful at most)
_MAX_HONOURED = 3  # attempts when concurrent requests keep rotating the chain's live token
PRUNE_EVERY = timedelta(minutes=1)
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_MIN_DISTINCT = 4  # "aaaaaaaa", "12121212" and eight spaces are no passwords
# The most common passwords of eight characters or more in the public breach lists (the
# shorter ones are refused by length): what a guesser tries first.
_COMMON = frozenset(
    {
        "password", "12345678", "123456789", "1234567890", "12345678910", "password1",
        "password123", "passw0rd", "qwertyuiop", "qwerty123", "qwerty12", "1q2w3e4r", "1q2w3e4r5t",
        "zaq12wsx", "iloveyou", "sunshine", "princess", "football", "baseball", "welcome1",
        "welcome123", "admin123", "administrator", "letmein1", "trustno1", "superman", "starwars",
        "whatever", "dragon123", "monkey123", "abcdefgh", "abcd1234", "abc12345", "changeme",
        "password!", "p@ssw0rd", "p@ssword", "87654321", "11223344", "qazwsxedc", "1qaz2wsx",
        "asdfghjkl", "asdfasdf", "computer", "internet", "michelle", "jennifer", "123123123",
        "987654321", "cadlink123", "analytics",
    }
)  # fmt: skip
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def client_network(address: str) -> str:
    """The network a login is throttled by: an IPv4 address itself, an IPv6 address's /64
    (one host usually holds a whole /64, so its addresses are one client). Anything that is
    not an address (a test client's name) is taken as it is."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip()
    if ip.version == 6:
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


class AuthService:
    """Checks passwords, issues and rotates tokens, creates accounts.

    Two login throttles. Per account and client network: by default 10 failures within 15
    minutes lock that email out for that network only, so guesses from elsewhere cannot lock
    the owner out. They are recorded in the metadata store under a keyed hash of email and
    network (never the email or address themselves), so the limit holds across every
    `cadlink serve` process. Per client network across all emails: `client_per_minute`
    attempts on average, `client_burst` at once, so one client cannot flood the server with
    password hashing (the burst leaves room for an account's 10 failures and the right
    password); counted in memory by each process (behind a load balancer spreading a client
    over N servers, it may try N times as many).
    """

    def __init__(
        self,
        store: MetaStore,
        hasher: PasswordHasher,
        secret_key: str,
        access_minutes: int = 15,
        refresh_days: int = 30,
        *,
        max_failures: int = 10,
        failure_window: timedelta = timedelta(minutes=15),
        client_per_minute: int = 15,
        client_burst: int = 15,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._secret_key = secret_key
        self._access_minutes = access_minutes
        self._refresh_days = refresh_days
        self._max_failures = max_failures
        self._failure_window = failure_window
        self._clock = clock
        self._dummy_hash: str | None = None
        self._pruned_at: datetime | None = None
        self._clients = RateLimiter(client_per_minute, client_burst)
        self._clients_lock = threading.Lock()  # logins run in worker threads
        self._key_secret = hmac.new(
            secret_key.encode(), b"cadlink login throttle", hashlib.sha256
        ).digest()

    def login(
        self, email: str, password: str, otp: str | None = None, *, client: str | None = None
    ) -> TokenPair:
        """Returns a new token pair for a correct email and password.

        Raises `InvalidCredentials` (same message for an unknown email, a wrong password or a
        disabled account) or `TooManyAttempts`. An unknown email still costs one hash
        verification, so timing does not tell which emails exist. `client` is the client's
        address (None: a caller in this process, throttled per account only, as one
        network). `otp` is reserved for two-factor logins and ignored until they exist.
        """
        del otp
        now = self._clock()
        email = normalize_email(email)
        network = "" if client is None else client_network(client)
        if client is not None:
            self._admit_client(network, now)
        key = self._failure_key(email, network)
        self._reserve_attempt(key, now)
        creds = self._store.get_user_credentials(email)
        if creds is None:
            self._hasher.verify(self._get_dummy_hash(), password)
            ok = False
        else:
            ok = self._hasher.verify(creds.password_hash, password) and creds.user.is_active
        if creds is None or not ok:
            raise InvalidCredentials()  # the reserved attempt stays, as the failure
        self._store.clear_login_failures(key)
        if self._hasher.needs_rehash(creds.password_hash):
            self._store.set_password(creds.user.id, self._hasher.hash(password))
        self._store.record_login(creds.user.id, now)
        return self._issue_pair(creds.user, now)

    def _admit_client(self, network: str, now: datetime) -> None:
        """Counts one login attempt of `network`; raises `TooManyAttempts` over its limit."""
        with self._clients_lock:
            wait = self._clients.allow(network, now.timestamp())
        if wait:
            raise TooManyAttempts(max(1, math.ceil(wait)))

    def _failure_key(self, email: str, network: str) -> str:
        """What failures of `email` from `network` are stored under: a keyed hash of both."""
        message = f"{network}\n{email}".encode()
        return hmac.new(self._key_secret, message, hashlib.sha256).hexdigest()

    def _reserve_attempt(self, key: str, now: datetime) -> None:
        """Records the attempt as a failure *before* the password check, then counts: of
        concurrent attempts, only those that find at most `max_failures` recorded (their own
        included) go on to the check, so the limit holds however many arrive at once. A
        refused attempt's record is removed again; `TooManyAttempts` says when the oldest
        failure that keeps the count at the limit leaves the window."""
        attempt = self._store.record_login_failure(key, now)
        # A failure counts until exactly `failure_window` after it: then `retry_after` is 0.
        failures = self._store.login_failures_after(key, now - self._failure_window)
        others = [at for id_, at in failures if id_ != attempt]
        if len(others) < self._max_failures:
            return
        self._store.delete_login_failure(attempt)
        freed_at = others[len(others) - self._max_failures] + self._failure_window
        raise TooManyAttempts(max(1, math.ceil((freed_at - now).total_seconds())))

    def prune(self, now: datetime) -> tuple[int, int]:
        """Deletes failed logins older than the throttle's window and refresh tokens past
        their expiry; returns how many of each. Runs at most once per `PRUNE_EVERY` (it is
        called with every salt check, every few seconds); (0, 0) in between. The in-memory
        client counts prune themselves."""
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return 0, 0
        self._pruned_at = now
        failures = self._store.delete_login_failures_before(now - self._failure_window)
        tokens = self._store.delete_expired_refresh_tokens(now)
        return failures, tokens

    def refresh(self, refresh_token: str) -> TokenPair:
        """Exchanges a live refresh token for a new pair; the old refresh token is revoked.

        Presenting a revoked refresh token again means it was copied: every refresh token of
        that user is revoked and `InvalidToken` raised, so the thief and the user both have to
        log in again. Within `ROTATION_LEEWAY` of its rotation it is honoured instead, if the
        token it was rotated into (or what that was rotated into since) still lives: that token
        is rotated into the new pair. A token revoked by a logout or the alarm is refused.
        """
        now = self._clock()
        token_hash = hash_refresh_token(refresh_token)
        record = self._store.get_refresh_token(token_hash)
        if record is None:
            raise InvalidToken("unknown refresh token")
        if record.revoked_at is None:
            if record.expires_at <= now:
                raise InvalidToken("refresh token expired")
            pair = self._rotate(record, now)
            if pair is not None:
                return pair
            record = self._store.get_refresh_token(token_hash)  # rotated by a concurrent request
            assert record is not None and record.revoked_at is not None
        revoked_at = record.revoked_at
        assert revoked_at is not None
        if now - revoked_at >= ROTATION_LEEWAY:
            self._store.revoke_user_refresh_tokens(record.user_id)
            raise InvalidToken("refresh token was already used or revoked")
        for _ in range(_MAX_HONOURED):
            live = self._live_successor(record, now)
            if live is None:
                raise InvalidToken("refresh token was revoked")
            pair = self._rotate(live, now)
            if pair is not None:
                return pair
        raise InvalidToken("refresh token was just used")

    def _rotate(self, record: RefreshTokenRecord, now: datetime) -> TokenPair | None:
        """Rotate the live token `record` into a new pair; None if another request did first."""
        user = self._store.get_user(record.user_id)
        if user is None or not user.is_active:
            raise InvalidToken("account disabled")
        refresh = new_refresh_token()
        expires = now + timedelta(days=self._refresh_days)
        rotated = self._store.rotate_refresh_token(
            record.token_hash, hash_refresh_token(refresh), expires, now
        )
        if rotated is None:
            return None
        access = issue_access_token(
            user.id, user.role, self._secret_key, self._access_minutes, now=now
        )
        return TokenPair(access, refresh, expires_in=self._access_minutes * 60)

    def _live_successor(
        self, record: RefreshTokenRecord, now: datetime
    ) -> RefreshTokenRecord | None:
        """The live, unexpired token `record` was rotated into, following later rotations;
        None if the chain ends in a token revoked otherwise (logout, the alarm) or expired."""
        for _ in range(_MAX_CHAIN):
            if record.replaced_by is None:
                return None
            successor = self._store.get_refresh_token(record.replaced_by)
            if successor is None or successor.expires_at <= now:
                return None
            if successor.revoked_at is None:
                return successor
            record = successor
        return None

    def logout(self, refresh_token: str) -> None:
        """Ends the session of the refresh token: revokes it, or, if it was rotated moments
        ago (the browser's copy may be one rotation behind), the live token it was rotated
        into. Unknown tokens and sessions already over are ignored."""
        now = self._clock()
        record = self._store.get_refresh_token(hash_refresh_token(refresh_token))
        for _ in range(_MAX_HONOURED):
            if record is None:
                return
            if record.revoked_at is None:
                if self._store.revoke_refresh_token(record.token_hash, now):
                    return
                record = self._store.get_refresh_token(record.token_hash)  # rotated meanwhile
                continue
            record = self._live_successor(record, now)

    def authenticate(self, access_token: str) -> AccessClaims:
        """The claims of a valid access token; raises `InvalidToken`."""
        return decode_access_token(access_token, self._secret_key)

    def create_user(self, email: str, password: str, role: Role | str) -> UserRecord:
        """Creates an account; raises `InvalidInput` for a bad email, password or role and
        `AlreadyExists` for a taken email."""
        email = normalize_email(email)
        if len(email) > 320 or not _EMAIL.match(email):
            raise InvalidInput(f"not a valid email address: {email!r}")
        self._check_password(password)
        try:
            role = Role(role)
        except ValueError as exc:
            raise InvalidInput(f"role must be one of {', '.join(Role)}, not {role!r}") from exc
        return self._store.create_user(email, self._hasher.hash(password), role.value)

    def set_password(self, user_id: int, password: str) -> None:
        """Replaces the password and logs the user out everywhere (revokes refresh tokens)."""
        self._check_password(password)
        self._store.set_password(user_id, self._hasher.hash(password))
        self._store.revoke_user_refresh_tokens(user_id)

    def ensure_admin(self, email: str, password: str) -> bool:
        """Creates an ADMIN with this email unless the email exists; True if it was created.

        An existing account is left untouched (its password and role are not changed).
        """
        if self._store.get_user_by_email(email) is not None:
            return False
        try:
            self.create_user(email, password, Role.ADMIN)
        except AlreadyExists:  # another process created it in between
            return False
        return True

    def _check_password(self, password: str) -> None:
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise InvalidInput(
                f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
            )
        # NIST SP 800-63B: refuse what guessing tries first, not demand character classes.
        if len(set(password.strip())) < _MIN_DISTINCT or password.lower() in _COMMON:
            raise InvalidInput(
                "password is too easy to guess (a common password, or too few different "
                "characters): choose a longer phrase"
            )

    def _issue_pair(self, user: UserRecord, now: datetime) -> TokenPair:
        access = issue_access_token(
            user.id, user.role, self._secret_key, self._access_minutes, now=now
        )
        refresh = new_refresh_token()
        expires = now + timedelta(days=self._refresh_days)
        self._store.store_refresh_token(user.id, hash_refresh_token(refresh), expires)
        return TokenPair(access, refresh, expires_in=self._access_minutes * 60)

    def _get_dummy_hash(self) -> str:
        # Made with this hasher, so verifying it costs what a real verification costs.
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash
