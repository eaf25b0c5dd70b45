"""Truncated addresses and visitor hashes: exact examples and properties."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadlink.ingest.enrich.identity import (
    anonymous_visitor_id,
    consented_visitor_id,
    ip_prefix,
    new_salt,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0"
SITE = "5f0c2a1e-1111-2222-3333-444455556666"


@pytest.mark.parametrize(
    ("ip", "prefix"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("203.0.113.0", "203.0.113.0"),
        (" 198.51.100.255 ", "198.51.100.0"),
        ("2001:db8:1:2::5", "2001:db8:1::"),
        ("2001:0db8:0001:ffff:ffff:ffff:ffff:ffff", "2001:db8:1::"),
        ("[2001:db8:1:2::5]", "2001:db8:1::"),
        ("::ffff:203.0.113.77", "203.0.113.0"),
        ("::1", "::"),
        ("", ""),
        ("localhost", ""),
        ("10.1", ""),  # shorthand that inet_aton would accept
        ("256.1.1.1", ""),
        ("1.2.3.4.5", ""),
        ("2001:db8::g", ""),
        ("fe80::1%eth0", ""),
        ("1.2.3.4\x00", ""),
        ("1" * 100, ""),
    ],
)
def test_ip_prefix(ip: str, prefix: str) -> None:
    assert ip_prefix(ip) == prefix


@given(st.ip_addresses(v=4))
def test_ipv4_prefix_drops_the_last_octet(address: ipaddress.IPv4Address) -> None:
    prefix = ip_prefix(str(address))
    assert prefix.endswith(".0")
    assert ipaddress.IPv4Address(prefix) == ipaddress.IPv4Network(f"{address}/24", strict=False)[0]
    assert prefix != str(address) or str(address).endswith(".0")


@given(st.ip_addresses(v=6))
def test_ipv6_prefix_keeps_48_bits(address: ipaddress.IPv6Address) -> None:
    prefix = ip_prefix(str(address))
    if address.ipv4_mapped is not None:
        assert prefix == ip_prefix(str(address.ipv4_mapped))
        return
    net = ipaddress.IPv6Network(f"{address}/48", strict=False)
    assert ipaddress.IPv6Address(prefix) == net.network_address


@given(st.text(max_size=80))
def test_ip_prefix_never_raises(text: str) -> None:
    prefix = ip_prefix(text)
    assert prefix == "" or ipaddress.ip_address(prefix)


def test_visitor_ids_are_deterministic_and_known() -> None:
    salt = bytes(range(32))
    first = anonymous_visitor_id(salt, SITE, "203.0.113.77", UA)
    assert first == anonymous_visitor_id(salt, SITE, "203.0.113.77", UA)
    assert first != anonymous_visitor_id(salt, SITE, "203.0.113.78", UA)
    assert first != anonymous_visitor_id(salt, "other-site", "203.0.113.77", UA)
    assert first != anonymous_visitor_id(salt, SITE, "203.0.113.77", UA + " ")
    # Pinned so that a change of encoding (which would split every visitor) is noticed.
    assert consented_visitor_id("site-1", "visitor-1") == consented_visitor_id(
        "site-1", "visitor-1"
    )
    assert consented_visitor_id("site-1", "visitor-1") == _pinned_consented()


def _pinned_consented() -> int:
    from hashlib import blake2b

    digest = blake2b(b"site-1|visitor-1", digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def test_salt_must_fit_blake2b_key() -> None:
    with pytest.raises(ValueError, match="salt"):
        anonymous_visitor_id(b"", SITE, "203.0.113.77", UA)
    with pytest.raises(ValueError, match="salt"):
        anonymous_visitor_id(b"x" * 65, SITE, "203.0.113.77", UA)


def test_new_salt_is_random_32_bytes() -> None:
    salts = {new_salt() for _ in range(50)}
    assert len(salts) == 50
    assert all(len(s) == 32 for s in salts)


@given(salt=st.binary(min_size=1, max_size=64), site=st.text(), ip=st.text(), ua=st.text())
def test_anonymous_id_fits_int64_and_is_deterministic(
    salt: bytes, site: str, ip: str, ua: str
) -> None:
    value = anonymous_visitor_id(salt, site, ip, ua)
    assert INT64_MIN <= value <= INT64_MAX
    assert value == anonymous_visitor_id(salt, site, ip, ua)


@given(
    salts=st.lists(st.binary(min_size=16, max_size=64), min_size=2, max_size=2, unique=True),
    ip=st.ip_addresses().map(str),
    ua=st.text(max_size=200),
)
def test_different_salts_give_different_ids(salts: list[bytes], ip: str, ua: str) -> None:
    # 64-bit outputs: a collision here would be a 1 in 2**64 event, i.e. a bug.
    assert anonymous_visitor_id(salts[0], SITE, ip, ua) != anonymous_visitor_id(
        salts[1], SITE, ip, ua
    )


@given(site=st.text(), visitor=st.text())
def test_consented_id_fits_int64(site: str, visitor: str) -> None:
    value = consented_visitor_id(site, visitor)
    assert INT64_MIN <= value <= INT64_MAX
    assert value == consented_visitor_id(site, visitor)


def test_consented_and_anonymous_ids_differ_in_kind() -> None:
    salt = new_salt()
    assert consented_visitor_id(SITE, "203.0.113.77") != anonymous_visitor_id(
        salt, SITE, "203.0.113.77", ""
    )
