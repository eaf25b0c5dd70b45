"""Visitor identity without storing addresses: truncated IPs and keyed hashes.

Used on the request path, so every function is a few C calls (~1 µs). Ids are signed
64-bit integers so that they fit a SQL BIGINT and count fast in DuckDB/ClickHouse.
"""

from __future__ import annotations

import secrets
import socket
from hashlib import blake2b
from typing import Final

__all__ = ["SALT_BYTES", "anonymous_visitor_id", "consented_visitor_id", "ip_prefix", "new_salt"]

SALT_BYTES: Final = 32
_V4_MAPPED: Final = b"\x00" * 10 + b"\xff\xff"
_ZERO_V6_TAIL: Final = b"\x00" * 10


def ip_prefix(ip: str) -> str:
    """The address with its host part zeroed: IPv4 /24, IPv6 /48; "" when `ip` is invalid.

    "203.0.113.77" → "203.0.113.0", "2001:db8:1:2::5" → "2001:db8:1::", and an IPv4-mapped
    IPv6 address ("::ffff:203.0.113.77") → "203.0.113.0".
    """
    if len(ip) > 64:
        return ""
    ip = ip.strip()
    try:
        if ":" not in ip:
            # inet_pton, unlike inet_aton, rejects shorthand such as "10.1" or "0x7f.1".
            packed = socket.inet_pton(socket.AF_INET, ip)
            return socket.inet_ntop(socket.AF_INET, packed[:3] + b"\x00")
        packed = socket.inet_pton(socket.AF_INET6, ip.strip("[]"))
    except (OSError, ValueError):  # ValueError: embedded NUL
        return ""
    if packed[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:15] + b"\x00")
    return socket.inet_ntop(socket.AF_INET6, packed[:6] + _ZERO_V6_TAIL)


def anonymous_visitor_id(salt: bytes, site_id: str, ip: str, user_agent: str) -> int:
    """Keyed BLAKE2b-64 of site|ip|user agent as a signed 64-bit int.

    With a salt rotated daily and then deleted, the id cannot be linked back to an address
    or across days. `salt` must be 1-64 bytes (`new_salt()` gives 32).
    """
    if not 0 < len(salt) <= 64:
        raise ValueError("salt must be 1 to 64 bytes")
    # surrogatepass: a lone surrogate from a JSON "\ud800" escape must hash, not raise.
    data = f"{site_id}|{ip}|{user_agent}".encode("utf-8", "surrogatepass")
    digest = blake2b(data, digest_size=8, key=salt).digest()
    return int.from_bytes(digest, "big", signed=True)


def consented_visitor_id(site_id: str, visitor_id: str) -> int:
    """Unkeyed BLAKE2b-64 of site|client visitorId as a signed 64-bit int; stable forever."""
    data = f"{site_id}|{visitor_id}".encode("utf-8", "surrogatepass")
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big", signed=True)


def new_salt() -> bytes:
    """32 random bytes for `anonymous_visitor_id`."""
    return secrets.token_bytes(SALT_BYTES)
