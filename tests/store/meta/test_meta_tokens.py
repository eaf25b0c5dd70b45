"""Refresh tokens in the metadata store, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

import pytest

from cadlink.store.meta import AlreadyExists, InvalidInput, MetaStore, NotFound, RefreshTokenRecord


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def user_id(meta_store: MetaStore) -> int:
    return meta_store.create_user("a@b.example", "h", "ANALYST").id


def test_store_and_get_refresh_token(meta_store: MetaStore, user_id: int) -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    stored = meta_store.store_refresh_token(user_id, _hash("t1"), expires)
    assert isinstance(stored, RefreshTokenRecord)
    assert (stored.user_id, stored.token_hash, stored.expires_at) == (user_id, _hash("t1"), expires)
    assert stored.revoked_at is None
    assert stored.created_at.tzinfo is UTC
    assert meta_store.get_refresh_token(_hash("t1")) == stored
    assert meta_store.get_refresh_token(_hash("other")) is None


def test_raw_tokens_are_refused(meta_store: MetaStore, user_id: int) -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="SHA-256"):
        meta_store.store_refresh_token(user_id, "raw-token-value", expires)
    with pytest.raises(InvalidInput, match="SHA-256"):
        meta_store.store_refresh_token(user_id, _hash("t").upper(), expires)


def test_store_refresh_token_errors(meta_store: MetaStore, user_id: int) -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    meta_store.store_refresh_token(user_id, _hash("t"), expires)
    with pytest.raises(AlreadyExists):
        meta_store.store_refresh_token(user_id, _hash("t"), expires)
    with pytest.raises(NotFound):
        meta_store.store_refresh_token(user_id + 1, _hash("u"), expires)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        meta_store.store_refresh_token(user_id, _hash("v"), datetime(2030, 1, 1))


def test_revoke_refresh_token_once(meta_store: MetaStore, user_id: int) -> None:
    meta_store.store_refresh_token(user_id, _hash("t"), datetime(2030, 1, 1, tzinfo=UTC))
    at = datetime(2029, 6, 1, 12, tzinfo=UTC)
    assert meta_store.revoke_refresh_token(_hash("t"), at) is True
    assert meta_store.revoke_refresh_token(_hash("t")) is False
    record = meta_store.get_refresh_token(_hash("t"))
    assert record is not None and record.revoked_at == at
    assert meta_store.revoke_refresh_token(_hash("unknown")) is False


def test_concurrent_revocation_has_one_winner(meta_store: MetaStore, user_id: int) -> None:
    meta_store.store_refresh_token(user_id, _hash("t"), datetime(2030, 1, 1, tzinfo=UTC))
    outcomes: list[bool] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        outcomes.append(meta_store.revoke_refresh_token(_hash("t")))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False, False, False, True]


def test_rotation_names_the_successor_and_has_one_winner(
    meta_store: MetaStore, user_id: int
) -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    meta_store.store_refresh_token(user_id, _hash("t"), expires)
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def run(n: int) -> None:
        barrier.wait()
        outcomes.append(meta_store.rotate_refresh_token(_hash("t"), _hash(f"n{n}"), expires))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [o for o in outcomes if o is not None]
    assert len(won) == 1 and outcomes.count(None) == 3
    new = won[0]
    assert isinstance(new, RefreshTokenRecord)
    assert new.user_id == user_id and new.revoked_at is None and new.replaced_by is None
    old = meta_store.get_refresh_token(_hash("t"))
    assert old is not None and old.revoked_at is not None and old.replaced_by == new.token_hash
    # The losers stored nothing.
    assert sum(meta_store.get_refresh_token(_hash(f"n{n}")) is not None for n in range(4)) == 1
    assert meta_store.rotate_refresh_token(_hash("t"), _hash("again"), expires) is None
    assert meta_store.rotate_refresh_token(_hash("unknown"), _hash("x"), expires) is None


def test_revoke_user_refresh_tokens(meta_store: MetaStore, user_id: int) -> None:
    other = meta_store.create_user("c@d.example", "h", "VIEWER").id
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    for token in ("a", "b", "c"):
        meta_store.store_refresh_token(user_id, _hash(token), expires)
    meta_store.store_refresh_token(other, _hash("o"), expires)
    meta_store.revoke_refresh_token(_hash("a"))
    assert meta_store.revoke_user_refresh_tokens(user_id) == 2
    assert all(meta_store.get_refresh_token(_hash(t)).revoked_at for t in "abc")  # type: ignore[union-attr]
    other_token = meta_store.get_refresh_token(_hash("o"))
    assert other_token is not None and other_token.revoked_at is None


def test_delete_expired_refresh_tokens(meta_store: MetaStore, user_id: int) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    meta_store.store_refresh_token(user_id, _hash("old"), now - timedelta(days=1))
    meta_store.store_refresh_token(user_id, _hash("new"), now + timedelta(days=1))
    assert meta_store.delete_expired_refresh_tokens(now) == 1
    assert meta_store.get_refresh_token(_hash("old")) is None
    assert meta_store.get_refresh_token(_hash("new")) is not None
