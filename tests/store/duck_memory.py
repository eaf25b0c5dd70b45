"""Helpers of the DuckDB memory and checkpoint tests: loader records, and memory limits as
DuckDB reports them."""

from __future__ import annotations

import time

import duckdb

from cadlink.events import Envelope, IncomingEvent, encode_envelope

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
NOW = int(time.time() * 1000)
LIMIT = "256MB"  # the configured limit the tests open their stores with


def records(n: int, prefix: str, *, pad: bool = False) -> bytes:
    """`n` single-event buffer records of one site; `pad`: about 200 bytes more each."""
    lines = []
    for i in range(n):
        event = IncomingEvent(
            event_type="page_view", event_id=f"{prefix}{i}", timestamp=NOW + i,
            page_url=f"https://shop.example/p/{i}" if pad else None,
            properties={"pad": "y" * 100} if pad else None,
        )  # fmt: skip
        lines.append(
            encode_envelope(Envelope(NOW + i, "site-1", i % 50, "203.0.113.0", UA, [event]))
        )
    return b"".join(lines)


def limit_of(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert row is not None
    return str(row[0])


def as_set(limit: str) -> str:
    """How DuckDB reports a limit after `SET memory_limit = limit`."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{limit}'")
    return limit_of(con)
