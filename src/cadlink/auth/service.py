"""Logins, token refresh and account creation on top of `MetaStore`."""

from __future__ import annotations

import re
import secrets
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
from cadlink.store.meta import AlreadyExists, InvalidInput, MetaStore, UserRecord
from cadlink.store.meta.validation import normalize_email

# A refresh token presented again this soon after it was used is one browser racing itself
# (two tabs refreshing at once, each with the token it read), not a thief: it is refused, and
# the tab takes the pair the other one stored (frontend/src/api.js). Later, a used token
# presented again revokes every refresh token of the user. Within the leeway a thief with a
# copied token gets nothing either; only the alarm waits.
ROTATION_LEEWAY = timedelta(seconds=30)
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuthService:
    """Checks passwords, issues and rotates tokens, creates accounts.

    Failed logins are recorded in the metadata store, so the throttle (by default 10 failures
    per email within 15 minutes) holds across every `cadlink serve` process.
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

    def login(self, email: str, password: str, otp: str | None = None) -> TokenPair:
        """Returns a new token pair for a correct email and password.

        Raises `InvalidCredentials` (same message for an unknown email, a wrong password or a
        disabled account) or `TooManyAttempts`. An unknown email still costs one hash
        verification, so timing does not tell which emails exist. `otp` is reserved for
        two-factor logins and ignored until they exist.
        """
        del otp
        now = self._clock()
        email = normalize_email(email)
        since = now - self._failure_window
        if self._store.count_login_failures(email, since) >= self._max_failures:
            raise TooManyAttempts(int(self._failure_window.total_seconds()))
        creds = self._store.get_user_credentials(email)
        if creds is None:
            self._hasher.verify(self._get_dummy_hash(), password)
            ok = False
        else:
            ok = self._hasher.verify(creds.password_hash, password) and creds.user.is_active
        if creds is None or not ok:
            self._store.record_login_failure(email, now)
            raise InvalidCredentials()
        self._store.clear_login_failures(email)
        if self._hasher.needs_rehash(creds.password_hash):
            self._store.set_password(creds.user.id, self._hasher.hash(password))
        self._store.record_login(creds.user.id, now)
        return self._issue_pair(creds.user, now)

    def refresh(self, refresh_token: str) -> TokenPair:
        """Exchanges a live refresh token for a new pair; the old refresh token is revoked.

        Presenting a revoked refresh token again means it was copied: every refresh token of
        that user is revoked and `InvalidToken` raised, so the thief and the user both have to
        log in again. Within `ROTATION_LEEWAY` of its revocation (or when another request is
        rotating it at this moment) it is only refused: two tabs of one browser refresh at once.
        """
        now = self._clock()
        token_hash = hash_refresh_token(refresh_token)
        record = self._store.get_refresh_token(token_hash)
        if record is None:
            raise InvalidToken("unknown refresh token")
        revoked_at = record.revoked_at
        if revoked_at is None and not self._store.revoke_refresh_token(token_hash, now):
            revoked_at = now  # a concurrent request rotated it just now
        if revoked_at is not None:
            if now - revoked_at < ROTATION_LEEWAY:
                raise InvalidToken("refresh token was just used")
            self._store.revoke_user_refresh_tokens(record.user_id)
            raise InvalidToken("refresh token was already used or revoked")
        if record.expires_at <= now:
            raise InvalidToken("refresh token expired")
        user = self._store.get_user(record.user_id)
        if user is None or not user.is_active:
            raise InvalidToken("account disabled")
        return self._issue_pair(user, now)

    def logout(self, refresh_token: str) -> None:
        """Revokes the refresh token (unknown or already revoked tokens are ignored)."""
        self._store.revoke_refresh_token(hash_refresh_token(refresh_token))

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
