"""How rows move in and out of PostgreSQL for the event store: connections, COPY, Arrow.

Every connection is in autocommit mode (writes open explicit transactions), speaks UTC and
returns jsonb as the compact JSON text the DuckDB store returns. Batches go in with COPY in
CSV written by Arrow's C++ writer (far faster than adapting rows in Python); they come out of
a server-side cursor as Arrow record batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import msgspec
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import set_json_loads

from cadlink.events import EVENT_COLUMN_NAMES

Row = dict[str, Any]
_COLUMNS = ", ".join(EVENT_COLUMN_NAMES)
_json_decode = msgspec.json.decode
_json_encode = msgspec.json.Encoder().encode


def _compact_json(data: bytes | str) -> str:
    """jsonb as compact JSON text, like the DuckDB store's (keys in jsonb's order)."""
    return _json_encode(_json_decode(data)).decode()


class _NumericLoader(Loader):
    """`numeric` as DuckDB's numbers: sum of integers an int, anything with a fraction a float.

    PostgreSQL's sum/avg of integers and extract() return `numeric`, which psycopg would load
    as `Decimal`: unequal to the float DuckDB gives for 0.1 and not encodable as a JSON number.
    """

    def load(self, data: Buffer) -> int | float:
        text = bytes(data)
        return int(text) if text.lstrip(b"-").isdigit() else float(text)


# A write transaction holds the stores' write lock (an advisory lock) to its end. A process
# frozen inside one (SIGSTOP, a paused VM, a host cut off) would hold it until TCP gave up,
# hours later, and every other loader (and erasure) would wait behind it: the server ends
# such a session once it has been idle in its transaction this long (the lock goes with it;
# the frozen loader's batch fails and is loaded again, by it or by whoever claims its
# entries). A loader's transaction is never idle that long: between its statements it only
# hands rows over.
IDLE_IN_TRANSACTION_MS = 60_000


def connect(url: str) -> psycopg.Connection[Row]:
    con = psycopg.connect(url, autocommit=True, row_factory=dict_row, client_encoding="utf8")
    set_json_loads(_compact_json, con)
    con.adapters.register_loader("numeric", _NumericLoader)
    # Timestamps come back as UTC datetimes, and COPY's zone-less timestamps are read as UTC.
    con.execute("SET TIME ZONE 'UTC'")
    con.execute(f"SET idle_in_transaction_session_timeout = {int(IDLE_IN_TRANSACTION_MS)}")
    return con


def copy_rows(con: psycopg.Connection[Row], table: str, rows: pa.Table) -> None:
    """COPY an Arrow batch of event rows into `table` (the staging or the events table)."""
    with (
        con.cursor() as cur,
        cur.copy(f"COPY {table} ({_COLUMNS}) FROM STDIN (FORMAT csv)") as copy,
    ):
        copy.write(_to_csv(rows))


def add_drops(con: psycopg.Connection[Row], drops: dict[tuple[str, date, str], int]) -> None:
    if drops:
        with con.cursor() as cur:
            cur.executemany(
                "INSERT INTO dropped_events VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (site_id, day, reason) "
                "DO UPDATE SET count = dropped_events.count + excluded.count",
                [(s, d, r, n) for (s, d, r), n in drops.items()],
            )


def arrow_batches(
    connect: Callable[[], psycopg.Connection[Row]],
    sql: str,
    params: list[Any],
    schema: pa.Schema,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """Rows of `sql` as Arrow batches, from a server-side cursor on a connection of its own.

    The connection opens on the first `next()` and closes when the iterator is exhausted,
    closed early or dropped, so the caller holds at most `batch_rows` rows at a time.
    """
    con = connect()
    try:
        with con.transaction(), con.cursor("cadlink_stream", row_factory=tuple_row) as cur:
            cur.itersize = batch_rows
            cur.execute(sql, params)
            while rows := cur.fetchmany(batch_rows):
                columns = zip(*rows, strict=True)
                arrays = [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        con.close()


def _to_csv(rows: pa.Table) -> memoryview:
    """The batch as CSV for COPY: NULL is an empty unquoted field, strings are quoted.

    PostgreSQL text cannot hold NUL characters (DuckDB's can): they are removed, in plain
    columns and inside the properties documents (where JSON spells them \\u0000).
    """
    table = rows.select(list(EVENT_COLUMN_NAMES))
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            # Arrow formats zoned timestamps ~40x slower than naive ones: send the UTC
            # wall-clock time, which the connection (TimeZone UTC) reads as UTC.
            table = table.set_column(i, name, column.cast(pa.timestamp(column.type.unit)))
        elif not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        elif name == "properties":
            if pc.any(pc.match_substring(column, "\\u0000")).as_py():
                table = table.set_column(i, name, pa.array(_strip_json_nul(column.to_pylist())))
        elif pc.any(pc.match_substring(column, "\x00")).as_py():
            table = table.set_column(i, name, pc.replace_substring(column, "\x00", ""))
    out = pa.BufferOutputStream()
    pa_csv.write_csv(table, out, pa_csv.WriteOptions(include_header=False))
    return memoryview(out.getvalue())


def _strip_json_nul(documents: list[str | None]) -> list[str | None]:
    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("\x00", "")
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return [None if d is None else _json_encode(clean(_json_decode(d))).decode() for d in documents]
