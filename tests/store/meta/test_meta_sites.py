"""Sites and identified site users, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cadlink.store.meta import InvalidInput, MetaStore, NotFound, SiteRecord


def test_create_site_with_defaults(meta_store: MetaStore) -> None:
    site = meta_store.create_site("Shop.Example")
    assert isinstance(site, SiteRecord)
    assert uuid.UUID(site.public_id).version == 4
    assert site.domain == "shop.example"
    assert site.name == "shop.example"
    assert site.allowed_origins == ("https://shop.example", "https://www.shop.example")
    assert site.timezone == "UTC"
    assert site.respect_dnt is True
    assert site.created_at.tzinfo is UTC
    assert meta_store.get_site(site.public_id) == site


def test_create_site_with_everything(meta_store: MetaStore) -> None:
    site = meta_store.create_site(
        "blog.example",
        name="  My Blog ",
        allowed_origins=["https://Blog.Example/", "http://localhost:3000", "https://blog.example"],
        timezone="Europe/Berlin",
        respect_dnt=False,
    )
    assert site.name == "My Blog"
    assert site.allowed_origins == ("https://blog.example", "http://localhost:3000")
    assert site.timezone == "Europe/Berlin"
    assert site.respect_dnt is False
    assert meta_store.get_site(site.public_id) == site


def test_localhost_site_allows_http(meta_store: MetaStore) -> None:
    site = meta_store.create_site("localhost")
    assert site.allowed_origins == ("http://localhost", "https://localhost")


def test_www_domain_allows_bare_domain_too(meta_store: MetaStore) -> None:
    site = meta_store.create_site("www.shop.example")
    assert site.allowed_origins == ("https://shop.example", "https://www.shop.example")


def test_empty_origin_list_is_kept_empty(meta_store: MetaStore) -> None:
    assert meta_store.create_site("shop.example", allowed_origins=[]).allowed_origins == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"domain": "https://shop.example"}, "bare hostname"),
        ({"domain": "shop.example/path"}, "bare hostname"),
        ({"domain": "shop.example:8080"}, "bare hostname"),
        ({"domain": ""}, "must not be empty"),
        ({"domain": "-bad-.example"}, "not a valid hostname"),
        ({"domain": "shop.example", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"domain": "shop.example", "timezone": "../etc/passwd"}, "unknown time zone"),
        ({"domain": "shop.example", "timezone": "localtime"}, "no time zone"),
        ({"domain": "shop.example", "timezone": "Factory"}, "no time zone"),
        ({"domain": "shop.example", "name": "   "}, "name must be"),
        ({"domain": "shop.example", "allowed_origins": ["ftp://x.example"]}, "origin"),
        ({"domain": "shop.example", "allowed_origins": ["https://x.example/p"]}, "path"),
        ({"domain": "shop.example", "allowed_origins": "https://x.example"}, "list"),
    ],
)
def test_create_site_rejects_bad_input(
    meta_store: MetaStore, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        meta_store.create_site(**kwargs)  # type: ignore[arg-type]
    assert meta_store.list_sites() == []


def test_invalid_input_is_a_value_error() -> None:
    assert issubclass(InvalidInput, ValueError)


def test_same_domain_twice_gives_two_sites(meta_store: MetaStore) -> None:
    first = meta_store.create_site("shop.example")
    second = meta_store.create_site("shop.example", name="Staging")
    assert first.public_id != second.public_id
    assert meta_store.list_sites() == [first, second]


def test_get_site_with_unknown_or_malformed_id(meta_store: MetaStore) -> None:
    meta_store.create_site("shop.example")
    assert meta_store.get_site(str(uuid.uuid4())) is None
    assert meta_store.get_site("not-a-uuid") is None
    assert meta_store.get_site("") is None


def test_get_site_accepts_upper_case_id(meta_store: MetaStore) -> None:
    site = meta_store.create_site("shop.example")
    assert meta_store.get_site(site.public_id.upper()) == site


def test_update_site(meta_store: MetaStore) -> None:
    site = meta_store.create_site("shop.example")
    other = meta_store.create_site("other.example")
    updated = meta_store.update_site(
        site.public_id,
        domain="New.Example",
        name="New",
        allowed_origins=["https://new.example"],
        timezone="America/New_York",
        respect_dnt=False,
    )
    assert updated.public_id == site.public_id
    assert updated.id == site.id
    assert updated.created_at == site.created_at
    assert (updated.domain, updated.name, updated.timezone) == (
        "new.example",
        "New",
        "America/New_York",
    )
    assert updated.allowed_origins == ("https://new.example",)
    assert updated.respect_dnt is False
    assert meta_store.get_site(site.public_id) == updated
    assert meta_store.get_site(other.public_id) == other
    assert meta_store.update_site(site.public_id) == updated


def test_update_site_errors(meta_store: MetaStore) -> None:
    site = meta_store.create_site("shop.example")
    with pytest.raises(NotFound):
        meta_store.update_site(str(uuid.uuid4()), name="x")
    with pytest.raises(NotFound):
        meta_store.update_site("garbage", name="x")
    with pytest.raises(InvalidInput):
        meta_store.update_site(site.public_id, timezone="Nowhere/Land")
    with pytest.raises(InvalidInput):
        meta_store.update_site(site.public_id, domain="http://x")
    assert meta_store.get_site(site.public_id) == site


def test_upsert_site_user_inserts_then_merges(meta_store: MetaStore) -> None:
    site = meta_store.create_site("shop.example")
    t0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = meta_store.upsert_site_user(site.id, "u-1", {"plan": "free", "name": "Ana"}, t0)
    assert (first.first_seen, first.last_seen) == (t0, t0)
    assert first.traits == {"plan": "free", "name": "Ana"}
    later = meta_store.upsert_site_user(
        site.id, "u-1", {"plan": "pro", "age": None}, t0 + timedelta(hours=1)
    )
    assert later.traits == {"plan": "pro", "name": "Ana", "age": None}
    assert (later.first_seen, later.last_seen) == (t0, t0 + timedelta(hours=1))
    earlier = meta_store.upsert_site_user(site.id, "u-1", None, t0 - timedelta(days=1))
    assert (earlier.first_seen, earlier.last_seen) == (
        t0 - timedelta(days=1),
        t0 + timedelta(hours=1),
    )
    assert earlier.traits == later.traits
    assert meta_store.get_site_user(site.id, "u-1") == earlier


def test_site_users_are_per_site(meta_store: MetaStore) -> None:
    a = meta_store.create_site("a.example")
    b = meta_store.create_site("b.example")
    now = datetime.now(UTC)
    meta_store.upsert_site_user(a.id, "u", {"site": "a"}, now)
    meta_store.upsert_site_user(b.id, "u", {"site": "b"}, now)
    found_a = meta_store.get_site_user(a.id, "u")
    found_b = meta_store.get_site_user(b.id, "u")
    assert found_a is not None and found_a.traits == {"site": "a"}
    assert found_b is not None and found_b.traits == {"site": "b"}
    assert meta_store.get_site_user(a.id, "nobody") is None


def test_deleting_a_site_user_forgets_it_on_that_site_only(meta_store: MetaStore) -> None:
    a = meta_store.create_site("a.example")
    b = meta_store.create_site("b.example")
    now = datetime.now(UTC)
    meta_store.upsert_site_user(a.id, "u", {"email": "u@example.com"}, now)
    meta_store.upsert_site_user(b.id, "u", {"site": "b"}, now)
    assert meta_store.delete_site_user(a.id, "u") is True
    assert meta_store.get_site_user(a.id, "u") is None
    assert meta_store.get_site_user(b.id, "u") is not None
    assert meta_store.delete_site_user(a.id, "u") is False


def test_upsert_site_user_errors(meta_store: MetaStore) -> None:
    site = meta_store.create_site("shop.example")
    now = datetime.now(UTC)
    with pytest.raises(InvalidInput):
        meta_store.upsert_site_user(site.id, "", {}, now)
    with pytest.raises(InvalidInput):
        meta_store.upsert_site_user(site.id, "x" * 256, {}, now)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        meta_store.upsert_site_user(site.id, "u", {}, datetime(2030, 1, 1))
    with pytest.raises(NotFound):
        meta_store.upsert_site_user(site.id + 99, "u", {}, now)
