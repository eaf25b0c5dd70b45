"""argon2id password hashing."""

from __future__ import annotations

import pytest

from cadlink.auth import PasswordHasher, Role
from cadlink.store.meta import ROLES


def test_hash_and_verify(cheap_hasher: PasswordHasher) -> None:
    encoded = cheap_hasher.hash("correct horse")
    assert encoded.startswith("$argon2id$")
    assert "correct horse" not in encoded
    assert cheap_hasher.verify(encoded, "correct horse") is True
    assert cheap_hasher.verify(encoded, "wrong horse") is False


def test_hashes_are_salted(cheap_hasher: PasswordHasher) -> None:
    assert cheap_hasher.hash("same") != cheap_hasher.hash("same")


@pytest.mark.parametrize("bad", ["", "not-a-hash", "$argon2id$v=19$m=8,t=1,p=1$broken"])
def test_verify_malformed_hash_is_false(cheap_hasher: PasswordHasher, bad: str) -> None:
    assert cheap_hasher.verify(bad, "pw") is False


def test_needs_rehash_when_parameters_change(cheap_hasher: PasswordHasher) -> None:
    encoded = cheap_hasher.hash("pw")
    assert cheap_hasher.needs_rehash(encoded) is False
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    assert stronger.needs_rehash(encoded) is True
    assert stronger.verify(encoded, "pw") is True  # old hashes still verify
    assert cheap_hasher.needs_rehash("garbage") is True


def test_default_parameters_are_argon2_defaults() -> None:
    encoded = PasswordHasher().hash("pw")
    assert "m=65536,t=3,p=4" in encoded


def test_roles_match_the_store() -> None:
    assert tuple(Role) == ROLES
    assert Role("ADMIN") is Role.ADMIN
    assert f"{Role.VIEWER}" == "VIEWER"
