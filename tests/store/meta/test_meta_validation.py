"""Pure validation helpers, including adversarial input (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadlink.store.meta import InvalidInput
from cadlink.store.meta.validation import (
    check_public_id,
    check_timezone,
    default_origins,
    normalize_domain,
    normalize_origin,
    to_utc,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Shop.Example", "shop.example"),
        ("  shop.example.  ", "shop.example"),
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("a-b.c-d.example", "a-b.c-d.example"),
    ],
)
def test_normalize_domain_accepts(raw: str, expected: str) -> None:
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        " ",
        "http://x.example",
        "x.example/a",
        "x.example:80",
        "a..b",
        "-a.example",
        "a_b.example",
        "user@x.example",
        "a" * 64 + ".example",
        "x.example?q",
        "x y.example",
    ],
)
def test_normalize_domain_rejects(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_domain(raw)


@given(st.text(max_size=300))
def test_normalize_domain_never_crashes_and_is_idempotent(raw: str) -> None:
    try:
        domain = normalize_domain(raw)
    except InvalidInput:
        return
    assert normalize_domain(domain) == domain
    assert domain == domain.lower() and domain.isascii()
    assert len(domain) <= 253


@given(st.text(max_size=200))
def test_normalize_origin_never_crashes_and_is_idempotent(raw: str) -> None:
    try:
        origin = normalize_origin(raw)
    except InvalidInput:
        return
    assert origin.startswith(("http://", "https://"))
    assert normalize_origin(origin) == origin


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://Shop.Example/", "https://shop.example"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_normalize_origin(raw: str, expected: str) -> None:
    assert normalize_origin(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "shop.example",
        "ftp://x",
        "https://",
        "https://x.example/a",
        "https://u:p@x.example",
        "https://x.example:99999",
        "https://x.example?a=1",
    ],
)
def test_normalize_origin_rejects(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_origin(raw)


def test_default_origins() -> None:
    assert default_origins("shop.example") == ("https://shop.example", "https://www.shop.example")
    assert default_origins("app.localhost") == ("http://app.localhost", "https://app.localhost")
    assert default_origins("127.0.0.1") == ("http://127.0.0.1", "https://127.0.0.1")


def test_check_timezone() -> None:
    assert check_timezone("Europe/Berlin") == "Europe/Berlin"
    for bad in ("", "Not/AZone", "/etc/passwd", "Europe/../UTC"):
        with pytest.raises(InvalidInput):
            check_timezone(bad)


def test_check_public_id() -> None:
    assert check_public_id("2D8A5F0E-3B9C-4C1E-9F00-0A1B2C3D4E5F") == (
        "2d8a5f0e-3b9c-4c1e-9f00-0a1b2c3d4e5f"
    )
    assert check_public_id("nope") is None


def test_to_utc() -> None:
    aware = datetime(2030, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert to_utc(aware) == datetime(2030, 1, 1, tzinfo=UTC)
    assert to_utc(aware).tzinfo is UTC
    with pytest.raises(InvalidInput, match="when must be timezone-aware"):
        to_utc(datetime(2030, 1, 1), "when")
