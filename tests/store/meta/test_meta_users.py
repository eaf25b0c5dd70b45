"""Users and the failed-login log, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete

from cadlink.store.meta import AlreadyExists, InvalidInput, MetaStore, NotFound, UserRecord
from cadlink.store.meta.models import User


def test_create_and_get_user(meta_store: MetaStore) -> None:
    before = datetime.now(UTC)
    user = meta_store.create_user("  Ana@Shop.Example ", "hash-1", "ADMIN")
    assert isinstance(user, UserRecord)
    assert user.email == "ana@shop.example"
    assert user.role == "ADMIN"
    assert user.is_active is True
    assert user.last_login_at is None
    assert user.created_at.tzinfo is UTC
    assert before - timedelta(seconds=1) <= user.created_at <= datetime.now(UTC)
    assert meta_store.get_user(user.id) == user
    assert meta_store.get_user_by_email("ANA@shop.example") == user


def test_records_are_frozen(meta_store: MetaStore) -> None:
    user = meta_store.create_user("a@b.example", "h", "VIEWER")
    with pytest.raises(AttributeError):
        user.email = "x@y.example"  # type: ignore[misc]


def test_duplicate_email_raises_already_exists(meta_store: MetaStore) -> None:
    meta_store.create_user("ana@shop.example", "h", "ADMIN")
    with pytest.raises(AlreadyExists, match=r"ana@shop\.example"):
        meta_store.create_user("ANA@shop.example", "h2", "VIEWER")
    assert len(meta_store.list_users()) == 1


@pytest.mark.parametrize(
    ("email", "password_hash", "role", "message"),
    [
        ("a@b.example", "h", "ROOT", "role must be one of"),
        ("a@b.example", "h", "admin", "role must be one of"),
        ("   ", "h", "ADMIN", "email must not be empty"),
        ("a@b.example", "", "ADMIN", "password_hash"),
    ],
)
def test_create_user_rejects_bad_input(
    meta_store: MetaStore, email: str, password_hash: str, role: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        meta_store.create_user(email, password_hash, role)


def test_unknown_users_are_none(meta_store: MetaStore) -> None:
    assert meta_store.get_user(12345) is None
    assert meta_store.get_user_by_email("nobody@example.com") is None
    assert meta_store.get_user_credentials("nobody@example.com") is None


def test_list_users_in_creation_order(meta_store: MetaStore) -> None:
    emails = ["c@x.example", "a@x.example", "b@x.example"]
    for email in emails:
        meta_store.create_user(email, "h", "VIEWER")
    assert [u.email for u in meta_store.list_users()] == emails


def test_credentials_and_set_password(meta_store: MetaStore) -> None:
    user = meta_store.create_user("a@b.example", "old", "ANALYST")
    creds = meta_store.get_user_credentials("A@B.example")
    assert creds is not None
    assert creds.user == user
    assert creds.password_hash == "old"
    meta_store.set_password(user.id, "new")
    creds = meta_store.get_user_credentials("a@b.example")
    assert creds is not None and creds.password_hash == "new"


def test_set_password_errors(meta_store: MetaStore) -> None:
    user = meta_store.create_user("a@b.example", "old", "ANALYST")
    with pytest.raises(NotFound):
        meta_store.set_password(user.id + 100, "new")
    with pytest.raises(InvalidInput):
        meta_store.set_password(user.id, "")


def test_update_user_role_and_active(meta_store: MetaStore) -> None:
    user = meta_store.create_user("a@b.example", "h", "VIEWER")
    updated = meta_store.update_user(user.id, role="ANALYST", is_active=False)
    assert (updated.role, updated.is_active) == ("ANALYST", False)
    assert meta_store.get_user(user.id) == updated
    assert meta_store.update_user(user.id) == updated
    with pytest.raises(InvalidInput):
        meta_store.update_user(user.id, role="GOD")
    with pytest.raises(NotFound):
        meta_store.update_user(user.id + 1, is_active=True)
    with pytest.raises(NotFound):
        meta_store.update_user(user.id + 1)


def test_record_login(meta_store: MetaStore) -> None:
    user = meta_store.create_user("a@b.example", "h", "VIEWER")
    at = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    meta_store.record_login(user.id, at.astimezone(ZoneInfo("Asia/Tokyo")))
    stored = meta_store.get_user(user.id)
    assert stored is not None
    assert stored.last_login_at == at
    assert stored.last_login_at.tzinfo is UTC
    with pytest.raises(InvalidInput, match="timezone-aware"):
        meta_store.record_login(user.id, datetime(2030, 1, 1))
    with pytest.raises(NotFound):
        meta_store.record_login(user.id + 1, at)


def test_login_failures_count_within_window(meta_store: MetaStore) -> None:
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    for minutes_ago in (20, 10, 5, 0):
        meta_store.record_login_failure("Ana@Shop.Example", now - timedelta(minutes=minutes_ago))
    meta_store.record_login_failure("other@shop.example", now)
    since = now - timedelta(minutes=15)
    assert meta_store.count_login_failures("ana@shop.example", since) == 3
    assert meta_store.count_login_failures("other@shop.example", since) == 1
    assert meta_store.count_login_failures("nobody@shop.example", since) == 0
    assert meta_store.delete_login_failures_before(now - timedelta(minutes=7)) == 2
    assert meta_store.count_login_failures("ana@shop.example", now - timedelta(days=1)) == 2
    meta_store.clear_login_failures("ANA@shop.example")
    assert meta_store.count_login_failures("ana@shop.example", now - timedelta(days=1)) == 0
    assert meta_store.count_login_failures("other@shop.example", since) == 1


def test_deleting_a_user_row_cascades_to_refresh_tokens(meta_store: MetaStore) -> None:
    user = meta_store.create_user("a@b.example", "h", "VIEWER")
    meta_store.store_refresh_token(user.id, "a" * 64, datetime.now(UTC) + timedelta(days=1))
    with meta_store.engine.begin() as conn:
        conn.execute(delete(User).where(User.id == user.id))
    assert meta_store.get_refresh_token("a" * 64) is None


def test_login_failures_by_key_with_ids(meta_store: MetaStore) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    key = "f" * 64  # what the auth service passes: a keyed hash, never an email or address
    old = meta_store.record_login_failure(key, now - timedelta(minutes=15))
    first = meta_store.record_login_failure(key, now - timedelta(minutes=5))
    second = meta_store.record_login_failure(key, now)
    meta_store.record_login_failure("e" * 64, now)
    assert len({old, first, second}) == 3
    window = now - timedelta(minutes=15)
    # Strictly later than the window's start: a failure counts for exactly the window.
    assert meta_store.login_failures_after(key, window) == [
        (first, now - timedelta(minutes=5)),
        (second, now),
    ]
    meta_store.delete_login_failure(second)
    assert meta_store.login_failures_after(key, window) == [(first, now - timedelta(minutes=5))]
    assert meta_store.count_login_failures("e" * 64, window) == 1
