"""GeoLocator: Tor/IPFire range files written per test, a tiny .mmdb, and the real file."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadlink.ingest.enrich.geo import DEFAULT_COUNTRY_PATH, GeoInfo, GeoLocator

V4 = """\
# This file has been converted from the IPFire Location database
#
16777216,16777471,AU
{doc1_start},{doc1_end},US
{doc3_start},{doc3_end},UK
{private},{private},??
{doc1b_start},{doc1b_end},NL
"""
V6 = """\
# IPv6 ranges
2001:db8::,2001:db8:0:ffff:ffff:ffff:ffff:ffff,DE
2001:db8:1::,2001:db8:1:ffff:ffff:ffff:ffff:ffff,FR
2a00:1450::,2a00:1450:ffff:ffff:ffff:ffff:ffff:ffff,IE
"""


def _int(address: str) -> int:
    return int(ipaddress.ip_address(address))


def _write_country_files(directory: Path) -> str:
    path = directory / "geoip"
    path.write_text(
        V4.format(
            doc1_start=_int("192.0.2.0"),
            doc1_end=_int("192.0.2.255"),
            doc3_start=_int("203.0.113.0"),
            doc3_end=_int("203.0.113.255"),
            private=_int("10.0.0.0"),
            doc1b_start=_int("192.0.3.0"),
            doc1b_end=_int("192.0.3.255"),
        )
    )
    (directory / "geoip6").write_text(V6)
    return str(path)


@pytest.fixture
def country_path(tmp_path: Path) -> str:
    return _write_country_files(tmp_path)


@pytest.mark.parametrize(
    ("prefix", "country"),
    [
        ("1.0.0.0", "AU"),
        ("1.0.0.255", "AU"),  # last address of the range
        ("1.0.1.0", None),  # first address after it
        ("0.255.255.0", None),  # before the first range
        ("192.0.2.0", "US"),
        ("203.0.113.0", "GB"),  # IPFire writes UK; ISO 3166 says GB
        ("10.0.0.0", None),  # "??" is not a country
        ("192.0.3.0", "NL"),  # the file is out of order here: it gets sorted
        ("255.255.255.0", None),  # after the last range
        ("::ffff:192.0.2.0", "US"),  # IPv4-mapped IPv6
        ("2001:db8::", "DE"),
        ("2001:db8:1::", "FR"),
        ("2001:db8:2::", None),
        ("2a00:1450:4001::", "IE"),
        ("", None),
        ("not an address", None),
        ("192.0.2", None),
        ("2001:db8::zz", None),
    ],
)
def test_country_lookup(country_path: str, prefix: str, country: str | None) -> None:
    assert GeoLocator(country_path).locate(prefix) == GeoInfo(country, None, None)


def test_unsorted_files_and_damaged_lines_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "geoip"
    path.write_text(
        f"{_int('192.0.2.0')},{_int('192.0.2.255')},US\nbroken line\n16777216,16777471,AU\n"
    )
    (tmp_path / "geoip6").write_text("2001:db8::,2001:db8:0:ffff::,DE\nnot-an-address,x,FR\n")
    locator = GeoLocator(str(path))
    assert locator.locate("1.0.0.0").country == "AU"
    assert locator.locate("192.0.2.0").country == "US"
    assert locator.locate("2001:db8::").country == "DE"


@settings(max_examples=200, deadline=None)
@given(
    ranges=st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 12), st.sampled_from(["US", "DE", "EU"])),
        max_size=12,
    )
)
def test_a_range_table_answers_like_its_ranges(ranges: list[tuple[int, int, str]]) -> None:
    """The table keeps only starts (gaps become ranges without a country): every key gets the
    country of the last range starting at or before it, if the key is within that range, in
    any order, with gaps and overlaps (IPv6 ranges cut to 64 bits overlap)."""
    from cadlink.ingest.enrich.geo import _RangeTable

    table = _RangeTable("B")  # keys 0-255: the type's last key is covered too
    for start, length, code in ranges:
        table.add(start, start + length, code)
    table.finish()
    in_order = sorted(ranges, key=lambda r: r[0])  # stable: a later equal start wins
    for key in range(256):
        last = [r for r in in_order if r[0] <= key][-1:]
        want = last[0][2] if last and key <= last[0][0] + last[0][1] else None
        assert table.find(key) == (None if want == "EU" else want), key


def test_missing_database_warns_once_and_answers_unknown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cadlink.ingest.enrich.geo"):
        locator = GeoLocator(str(tmp_path / "absent"))
        for _ in range(3):
            assert locator.locate("192.0.2.0") == GeoInfo(None, None, None)
    assert not locator.available
    assert len(caplog.records) == 1
    assert "tor-geoipdb" in caplog.records[0].getMessage()


def test_available_with_only_ipv4(tmp_path: Path) -> None:
    path = tmp_path / "geoip"
    path.write_text("16777216,16777471,AU\n")
    locator = GeoLocator(str(path))
    assert locator.available
    assert locator.locate("2001:db8::").country is None


# --- a minimal MMDB writer (format: https://maxmind.github.io/MaxMind-DB/) -----------------


def _control(type_: int, size: int) -> bytes:
    extra = b""
    if size >= 285:
        size, extra = 30, (size - 285).to_bytes(2, "big")
    elif size >= 29:
        size, extra = 29, bytes([size - 29])
    if type_ <= 7:
        return bytes([(type_ << 5) | size]) + extra
    return bytes([size, type_ - 7]) + extra


def _uint(type_: int, value: int) -> bytes:
    payload = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return _control(type_, len(payload)) + payload


def _encode(value: object) -> bytes:
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, int):
        return _uint(6, value)
    if isinstance(value, dict):
        body = b"".join(_encode(k) + _encode(v) for k, v in value.items())
        return _control(7, len(value)) + body
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(_encode(v) for v in value)
    raise TypeError(value)


def _write_mmdb(path: Path, networks: dict[str, dict[str, object]]) -> None:
    """An IPv6 City-style database (IPv4 lives under ::/96, as MaxMind's readers expect)."""
    nodes: list[list[object]] = [[None, None]]
    data = b""
    for cidr, record in networks.items():
        net = ipaddress.ip_network(cidr)
        # As 128-bit numbers, IPv4 a.b.c.d/n is simply ::a.b.c.d/(96+n).
        bits, length = int(net.network_address), net.prefixlen + (96 if net.version == 4 else 0)
        offset, data = len(data), data + _encode(record)
        node = 0
        for depth in range(length):
            bit = (bits >> (127 - depth)) & 1
            if depth == length - 1:
                nodes[node][bit] = ("data", offset)
            else:
                child = nodes[node][bit]
                if child is None:
                    nodes.append([None, None])
                    child = nodes[node][bit] = ("node", len(nodes) - 1)
                assert isinstance(child, tuple)
                node = child[1]
    count = len(nodes)

    def record_value(rec: object) -> int:
        if rec is None:
            return count
        assert isinstance(rec, tuple)
        kind, number = rec
        assert isinstance(number, int)
        return number if kind == "node" else count + 16 + number

    tree = b"".join(
        record_value(left).to_bytes(3, "big") + record_value(right).to_bytes(3, "big")
        for left, right in nodes
    )
    metadata = (
        _control(7, 9)
        + _encode("node_count") + _uint(6, count)
        + _encode("record_size") + _uint(5, 24)
        + _encode("ip_version") + _uint(5, 6)
        + _encode("database_type") + _encode("Test-City")
        + _encode("languages") + _encode(["en"])
        + _encode("binary_format_major_version") + _uint(5, 2)
        + _encode("binary_format_minor_version") + _uint(5, 0)
        + _encode("build_epoch") + _uint(9, int(time.time()))
        + _encode("description") + _encode({"en": "test"})
    )  # fmt: skip
    path.write_bytes(tree + b"\x00" * 16 + data + b"\xab\xcd\xefMaxMind.com" + metadata)


def _write_city_mmdb(directory: Path) -> str:
    path = directory / "city.mmdb"
    _write_mmdb(
        path,
        {
            "192.0.2.0/24": {
                "country": {"iso_code": "US"},
                "subdivisions": [{"iso_code": "CA", "names": {"en": "California"}}],
                "city": {"names": {"en": "San Francisco", "de": "San Francisco"}},
            },
            "198.51.100.0/24": {
                "country": {"iso_code": "FR"},
                "subdivisions": [{"names": {"en": "Île-de-France"}}],
                "city": {"names": {"en": "Paris"}},
            },
            "2001:db8:1::/48": {"country": {"iso_code": "FR"}, "city": {"names": {"en": "Lyon"}}},
        },
    )
    return str(path)


@pytest.fixture
def mmdb_path(tmp_path: Path) -> str:
    return _write_city_mmdb(tmp_path)


@pytest.fixture(scope="module")
def full_locator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GeoLocator]:
    directory = tmp_path_factory.mktemp("geo")
    locator = GeoLocator(_write_country_files(directory), _write_city_mmdb(directory))
    yield locator
    locator.close()


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.one_of(
        st.text(max_size=60),
        st.ip_addresses().map(str),
        st.sampled_from(["192.0.2.0", "198.51.100.0", "2001:db8:1::", "::ffff:1.0.0.0"]),
    )
)
def test_locate_never_raises(full_locator: GeoLocator, prefix: str) -> None:
    info = full_locator.locate(prefix)
    assert info.country is None or (len(info.country) == 2 and info.country.isupper())
    assert info.region is None or isinstance(info.region, str)


def test_mmdb_adds_region_and_city(country_path: str, mmdb_path: str) -> None:
    locator = GeoLocator(country_path, mmdb_path)
    assert locator.locate("192.0.2.0") == GeoInfo("US", "California", "San Francisco")
    assert locator.locate("2001:db8:1::") == GeoInfo("FR", None, "Lyon")
    assert locator.locate("::ffff:192.0.2.0") == GeoInfo("US", "California", "San Francisco")
    locator.close()


def test_country_database_wins_and_mmdb_fills_gaps(country_path: str, mmdb_path: str) -> None:
    locator = GeoLocator(country_path, mmdb_path)
    # 198.51.100.0/24 is not in the country file: the .mmdb supplies the country too.
    assert locator.locate("198.51.100.0") == GeoInfo("FR", "Île-de-France", "Paris")
    assert locator.locate("1.0.0.0") == GeoInfo("AU", None, None)
    assert locator.locate("") == GeoInfo(None, None, None)
    assert locator.locate("nonsense") == GeoInfo(None, None, None)
    locator.close()


def test_mmdb_alone_is_available(tmp_path: Path, mmdb_path: str) -> None:
    locator = GeoLocator(str(tmp_path / "absent"), mmdb_path)
    assert locator.available
    assert locator.locate("192.0.2.0").city == "San Francisco"
    locator.close()


def test_unreadable_mmdb_is_logged_not_raised(
    country_path: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    with caplog.at_level(logging.WARNING, logger="cadlink.ingest.enrich.geo"):
        locator = GeoLocator(country_path, str(bad))
    assert locator.locate("192.0.2.0") == GeoInfo("US", None, None)
    assert any("bad.mmdb" in r.getMessage() for r in caplog.records)


# --- the real Debian file -------------------------------------------------------------------


@pytest.mark.skipif(not Path(DEFAULT_COUNTRY_PATH).is_file(), reason="tor-geoipdb not installed")
def test_real_tor_geoip_database() -> None:
    started = time.perf_counter()
    locator = GeoLocator()
    load_seconds = time.perf_counter() - started
    assert locator.available
    assert load_seconds < 15  # ~1 s on the 2-core reference machine
    assert locator.locate("8.8.8.0").country == "US"
    assert locator.locate("193.0.6.0").country == "NL"  # RIPE NCC, Amsterdam
    assert locator.locate("2001:4860:4860::").country == "US"  # Google public DNS
    assert locator.locate("10.0.0.0").country is None
    assert locator.locate("2001:db8::").country is None
