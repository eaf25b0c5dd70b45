"""Users (dashboard accounts) and the failed-login log used for throttling."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from cadlink.store.meta.base import StoreBase
from cadlink.store.meta.errors import AlreadyExists, InvalidInput, NotFound
from cadlink.store.meta.models import LoginFailure, User, utcnow
from cadlink.store.meta.records import UserCredentials, UserRecord
from cadlink.store.meta.validation import check_role, normalize_email, to_utc


def _user_record(user: User) -> UserRecord:
    return UserRecord(
        id=user.id,
        email=user.email,
        role=user.role,
        is_active=user.is_active,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


class UserQueries(StoreBase):
    """Create, find and change users; record failed logins."""

    def create_user(self, email: str, password_hash: str, role: str) -> UserRecord:
        """Creates an active user; raises `AlreadyExists` if the email is taken."""
        email = normalize_email(email)
        if not email:
            raise InvalidInput("email must not be empty")
        if not password_hash:
            raise InvalidInput("password_hash must not be empty")
        check_role(role)
        user = User(
            email=email, password_hash=password_hash, role=role, is_active=True, created_at=utcnow()
        )
        try:
            with self._write() as session:
                session.add(user)
                session.flush()
                return _user_record(user)
        except IntegrityError as exc:
            raise AlreadyExists(f"a user with email {email!r} already exists") from exc

    def get_user(self, user_id: int) -> UserRecord | None:
        """The user with id `user_id`, or None."""
        with self._read() as session:
            user = session.get(User, user_id)
            return _user_record(user) if user else None

    def get_user_by_email(self, email: str) -> UserRecord | None:
        """The user with this email (case-insensitive), or None."""
        creds = self.get_user_credentials(email)
        return creds.user if creds else None

    def get_user_credentials(self, email: str) -> UserCredentials | None:
        """The user and password hash for this email (case-insensitive), or None."""
        with self._read() as session:
            user = session.scalar(select(User).where(User.email == normalize_email(email)))
            return UserCredentials(_user_record(user), user.password_hash) if user else None

    def list_users(self) -> list[UserRecord]:
        """All users, oldest first."""
        with self._read() as session:
            return [_user_record(u) for u in session.scalars(select(User).order_by(User.id))]

    def set_password(self, user_id: int, password_hash: str) -> None:
        """Replaces the user's password hash; raises `NotFound` for an unknown user."""
        if not password_hash:
            raise InvalidInput("password_hash must not be empty")
        self._update_user(user_id, password_hash=password_hash)

    def update_user(
        self, user_id: int, *, role: str | None = None, is_active: bool | None = None
    ) -> UserRecord:
        """Changes the role and/or active flag; returns the updated user."""
        values: dict[str, object] = {}
        if role is not None:
            values["role"] = check_role(role)
        if is_active is not None:
            values["is_active"] = is_active
        if values:
            self._update_user(user_id, **values)
        user = self.get_user(user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        return user

    def record_login(self, user_id: int, at: datetime) -> None:
        """Stores `at` as the user's last successful login."""
        self._update_user(user_id, last_login_at=to_utc(at, "at"))

    def _update_user(self, user_id: int, **values: object) -> None:
        with self._write() as session:
            result = session.execute(update(User).where(User.id == user_id).values(**values))
            if getattr(result, "rowcount", 0) == 0:
                raise NotFound(f"no user with id {user_id}")

    # The failed-login log is keyed by a throttle key: the auth service passes a keyed hash
    # of the email and the client's network (never the email or address themselves); any
    # other string works too. Keys are compared after `normalize_email` (trim, lower case).

    def record_login_failure(self, key: str, at: datetime) -> int:
        """Logs one failed (or reserved, not yet checked) login under `key`; returns its id."""
        failure = LoginFailure(email=normalize_email(key), attempted_at=to_utc(at, "at"))
        with self._write() as session:
            session.add(failure)
            session.flush()
            return int(failure.id)

    def count_login_failures(self, key: str, since: datetime) -> int:
        """Failed logins under `key` at or after `since`."""
        stmt = (
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.email == normalize_email(key))
            .where(LoginFailure.attempted_at >= to_utc(since, "since"))
        )
        with self._read() as session:
            return int(session.scalar(stmt) or 0)

    def login_failures_after(self, key: str, after: datetime) -> list[tuple[int, datetime]]:
        """(id, time) of the failed logins under `key` later than `after`, oldest first."""
        stmt = (
            select(LoginFailure.id, LoginFailure.attempted_at)
            .where(LoginFailure.email == normalize_email(key))
            .where(LoginFailure.attempted_at > to_utc(after, "after"))
            .order_by(LoginFailure.attempted_at, LoginFailure.id)
        )
        with self._read() as session:
            return [(int(id_), at) for id_, at in session.execute(stmt)]

    def delete_login_failure(self, failure_id: int) -> None:
        """Forgets one failed login (an attempt refused before its check)."""
        with self._write() as session:
            session.execute(delete(LoginFailure).where(LoginFailure.id == failure_id))

    def clear_login_failures(self, key: str) -> None:
        """Forgets the failed logins under `key` (after a successful login)."""
        with self._write() as session:
            session.execute(delete(LoginFailure).where(LoginFailure.email == normalize_email(key)))

    def delete_login_failures_before(self, cutoff: datetime) -> int:
        """Deletes failed logins older than `cutoff`; returns how many."""
        stmt = delete(LoginFailure).where(LoginFailure.attempted_at < to_utc(cutoff, "cutoff"))
        with self._write() as session:
            return int(getattr(session.execute(stmt), "rowcount", 0))
