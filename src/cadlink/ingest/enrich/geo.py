"""Truncated IP address → country (and region/city with an optional .mmdb), offline.

Countries come from the Tor/IPFire range files shipped by Debian's `tor-geoipdb` (IPFire
Location data, CC BY-SA 4.0): `geoip` holds `FROM_INT,TO_INT,CC` lines for IPv4 and `geoip6`
holds `FROM_ADDR,TO_ADDR,CC` lines for IPv6. They are loaded into sorted `array`s and
searched with `bisect`. Region and city need a MaxMind/DB-IP City `.mmdb` file, read with
`maxminddb`, which the operator supplies.
"""

from __future__ import annotations

import functools
import logging
import socket
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

import maxminddb

__all__ = ["DEFAULT_COUNTRY_PATH", "GeoInfo", "GeoLocator"]

log = logging.getLogger(__name__)

DEFAULT_COUNTRY_PATH: Final = "/usr/share/tor/geoip"

# IPFire marks ranges with codes that are not countries (anycast, satellite, "Europe", ...).
_NOT_COUNTRIES: Final = frozenset(
    {"??", "ZZ", "AP", "EU", "A1", "A2", "A3", "A4", "AB", "OS", "UN", "XX"}
)
_RENAMED: Final = {"UK": "GB"}
_V4_MAPPED: Final = b"\x00" * 10 + b"\xff\xff"


@dataclass(frozen=True, slots=True)
class GeoInfo:
    """Where a visitor is, as far as we can tell; None where unknown."""

    country: str | None
    region: str | None
    city: str | None


_UNKNOWN: Final = GeoInfo(None, None, None)


class _RangeTable:
    """Sorted [start, end] integer ranges, each with a country code (`finish` says how overlaps
    resolve).

    Once finished it keeps only where each range starts: the gaps between ranges become
    ranges of their own with no country, so a lookup needs no end. That drops a third of the
    table (3.4 MB of the store process for the IPv4 and IPv6 files)."""

    def __init__(self, typecode: str) -> None:
        self.starts = array(typecode)
        self._ends = array(typecode)  # until `finish`
        self.codes = array("H")
        self.names: list[str | None] = []
        self._name_index: dict[str | None, int] = {}

    def _code_index(self, code: str | None) -> int:
        index = self._name_index.get(code)
        if index is None:
            index = self._name_index[code] = len(self.names)
            self.names.append(_country(code) if code is not None else None)
        return index

    def add(self, start: int, end: int, code: str) -> None:
        self.starts.append(start)
        self._ends.append(end)
        self.codes.append(self._code_index(code))

    def finish(self) -> None:
        """Sorts the ranges if the file was not in order (the shipped files are), then keeps
        their starts and the gaps'. Where ranges overlap (IPv6 ranges within one /64 do, cut
        to 64 bits), a key belongs to the last range starting at or before it, and to none
        past that range's end."""
        starts, ends, codes = self.starts, self._ends, self.codes
        order: range | list[int] = range(len(starts))
        if any(a > b for a, b in pairwise(starts)):
            order = sorted(order, key=starts.__getitem__)
        top = (1 << (8 * starts.itemsize)) - 1
        gap = self._code_index(None)
        self.starts, self.codes = array(starts.typecode), array("H")
        self._ends = array(ends.typecode)  # not needed any more
        covered = -1  # the end of the last range
        for i in order:
            start = starts[i]
            if start > covered + 1:
                self.starts.append(covered + 1)
                self.codes.append(gap)
            if self.starts and self.starts[-1] == start:
                self.codes[-1] = codes[i]
            else:
                self.starts.append(start)
                self.codes.append(codes[i])
            covered = ends[i]
        if covered < top:
            self.starts.append(covered + 1)
            self.codes.append(gap)

    def find(self, key: int) -> str | None:
        i = bisect_right(self.starts, key) - 1
        return self.names[self.codes[i]] if i >= 0 else None

    def __len__(self) -> int:
        return len(self.starts)


def _country(code: str) -> str | None:
    code = code.strip().upper()
    code = _RENAMED.get(code, code)
    if len(code) != 2 or not code.isalpha() or code in _NOT_COUNTRIES:
        return None
    return code


def _v6_high64(address: str) -> int:
    # Visitors are kept to their /48, so the upper 64 bits are all a lookup can use; they
    # also fit an unsigned 64-bit array, which a full 128-bit address would not.
    return int.from_bytes(socket.inet_pton(socket.AF_INET6, address)[:8], "big")


def _data_lines(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="ascii", errors="replace") as lines:
        for line in lines:
            if line and line[0] != "#" and not line.isspace():
                yield line.rstrip("\r\n").split(",")


def _load_v4(path: Path) -> _RangeTable:
    table = _RangeTable("I" if array("I").itemsize >= 4 else "L")
    for fields in _data_lines(path):
        try:
            table.add(int(fields[0]), int(fields[1]), fields[2])
        except (ValueError, IndexError, OverflowError):
            continue  # a damaged line loses one range, not the whole table
    table.finish()
    return table


def _load_v6(path: Path) -> _RangeTable:
    table = _RangeTable("Q")
    for fields in _data_lines(path):
        try:
            table.add(_v6_high64(fields[0]), _v6_high64(fields[1]), fields[2])
        except (OSError, ValueError, IndexError, OverflowError):
            continue
    table.finish()
    return table


class GeoLocator:
    """Looks up truncated addresses; never raises for bad input or missing databases.

    `country_path` is the Tor IPv4 file; its IPv6 twin is the same name with "6" appended.
    By default the Debian location is used when present. A missing file is logged once, at
    construction, and countries are then None. `mmdb_path` adds region and city.
    """

    def __init__(
        self,
        country_path: str | None = None,
        mmdb_path: str | None = None,
        cache_size: int = 65_536,
    ) -> None:
        self._v4: _RangeTable | None = None
        self._v6: _RangeTable | None = None
        self._mmdb: Any = None
        v4_path = Path(country_path or DEFAULT_COUNTRY_PATH)
        v6_path = v4_path.with_name(v4_path.name + "6")
        if v4_path.is_file():
            self._v4 = _load_v4(v4_path)
        if v6_path.is_file():
            self._v6 = _load_v6(v6_path)
        if self._v4 is None or self._v6 is None:
            log.warning(
                "GeoIP country database not found at %s / %s: countries will be unknown "
                "for the missing address family (install Debian's tor-geoipdb)",
                v4_path,
                v6_path,
            )
        if mmdb_path:
            try:
                self._mmdb = maxminddb.open_database(mmdb_path)
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                log.warning("Cannot open GeoIP city database %s: %s", mmdb_path, exc)
        self._cached = functools.lru_cache(maxsize=cache_size)(self._locate_uncached)

    @property
    def available(self) -> bool:
        """True when at least one database loaded, so a lookup can find something."""
        return self._v4 is not None or self._v6 is not None or self._mmdb is not None

    def locate(self, ip_prefix: str) -> GeoInfo:
        """Country/region/city for a truncated address ("" or garbage gives all None)."""
        if not ip_prefix or len(ip_prefix) > 45:
            return _UNKNOWN
        return self._cached(ip_prefix)

    def close(self) -> None:
        if self._mmdb is not None:
            self._mmdb.close()

    def _locate_uncached(self, ip_prefix: str) -> GeoInfo:
        key = _parse(ip_prefix)
        if key is None:
            return _UNKNOWN
        version, number = key
        table = self._v4 if version == 4 else self._v6
        country = table.find(number) if table is not None else None
        if self._mmdb is None:
            return GeoInfo(country, None, None) if country else _UNKNOWN
        if version == 4 and ":" in ip_prefix:  # IPv4-mapped: ask for the IPv4 address itself
            ip_prefix = socket.inet_ntop(socket.AF_INET, number.to_bytes(4, "big"))
        try:
            record = self._mmdb.get(ip_prefix)
        except ValueError:  # e.g. an IPv6 address against an IPv4-only database
            record = None
        if not isinstance(record, dict):
            return GeoInfo(country, None, None) if country else _UNKNOWN
        if country is None:
            country = _country(_text(record, "country", "iso_code") or "")
        subdivisions = record.get("subdivisions")
        first = subdivisions[0] if isinstance(subdivisions, list) and subdivisions else None
        return GeoInfo(country, _text(first, "names", "en"), _text(record, "city", "names", "en"))


def _parse(ip_prefix: str) -> tuple[int, int] | None:
    """(4, address) or (6, upper 64 bits) for a valid address; None otherwise."""
    # ValueError: an embedded NUL, which inet_pton refuses before parsing.
    try:
        if ":" not in ip_prefix:
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip_prefix), "big")
        packed = socket.inet_pton(socket.AF_INET6, ip_prefix)
    except (OSError, ValueError):
        return None
    if packed[:12] == _V4_MAPPED:  # ::ffff:a.b.c.d is an IPv4 visitor
        return 4, int.from_bytes(packed[12:], "big")
    return 6, int.from_bytes(packed[:8], "big")


def _text(record: object, *keys: str) -> str | None:
    """The string at `record[k1][k2]...`, or None when any step is missing or not a string."""
    for key in keys:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record if isinstance(record, str) and record else None
