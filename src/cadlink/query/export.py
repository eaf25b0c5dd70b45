"""Streaming exports of raw events and of reports as CSV, JSON (NDJSON) or Parquet.

Raw events stream from the store in Arrow record batches and are encoded batch by batch, so
memory stays constant whatever the range; reports are small and are encoded whole.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import msgspec

from cadlink.query.spec import QueryError

if TYPE_CHECKING:
    import pyarrow as pa
from cadlink.web_names import camel_columns

_json = msgspec.json.Encoder()


class Format(StrEnum):
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"

    @property
    def media_type(self) -> str:
        return {
            Format.CSV: "text/csv; charset=utf-8",
            Format.JSON: "application/x-ndjson",
            Format.PARQUET: "application/vnd.apache.parquet",
        }[self]

    @property
    def extension(self) -> str:
        return {Format.CSV: "csv", Format.JSON: "ndjson", Format.PARQUET: "parquet"}[self]


def parse_format(value: str | None) -> Format:
    try:
        return Format(value or "csv")
    except ValueError:
        raise QueryError("format must be csv, json or parquet", "format") from None


class _Sink(io.RawIOBase):
    """A write-only file that hands out what was written since the last `take()`."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._chunks.append(data)
        return len(data)

    def take(self) -> bytes:
        out, self._chunks = b"".join(self._chunks), []
        return out


def _renamed(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch.rename_columns(camel_columns(batch.schema.names))


def encode_batches(
    batches: Iterable[pa.RecordBatch], fmt: Format, schema: pa.Schema
) -> Iterator[bytes]:
    """Encode Arrow batches one at a time; yields bytes as they are ready."""
    # pyarrow loads with the first export, not with the server (it costs ~25 MB resident).
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    schema = pa.schema(
        [f.with_name(n) for f, n in zip(schema, camel_columns(schema.names), strict=True)]
    )
    if fmt is Format.CSV:
        sink = _Sink()
        with pacsv.CSVWriter(sink, schema) as writer:
            yield sink.take()
            for batch in batches:
                writer.write_batch(_renamed(batch))
                yield sink.take()
        yield sink.take()
    elif fmt is Format.PARQUET:
        sink = _Sink()
        with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
            for batch in batches:
                writer.write_batch(_renamed(batch))
                yield sink.take()
        yield sink.take()
    else:
        for batch in batches:
            rows = _renamed(batch).to_pylist()
            yield b"".join(_json.encode(_plain(r)) + b"\n" for r in rows)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if hasattr(v, "isoformat"):
            v = v.isoformat()
        elif k == "visitorId" and isinstance(v, int):
            v = str(v)  # 64-bit: JavaScript's numbers would round it (as the API gives it)
        out[k] = v
    return out


def encode_rows(rows: list[dict[str, Any]], fmt: Format) -> bytes:
    """Encode a report's rows (already camelCase dicts)."""
    if fmt is Format.JSON:
        return b"".join(_json.encode(_plain(r)) + b"\n" for r in rows)
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([_plain(r) for r in rows]) if rows else pa.table({})
    sink = io.BytesIO()
    if fmt is Format.CSV:
        if rows:
            pacsv.write_csv(table, sink)
    else:
        pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def flatten(value: Any, prefix: str = "") -> list[dict[str, Any]]:
    """Turn a report's JSON into rows: lists of dicts become rows, nested dicts get prefixes."""
    if isinstance(value, list):
        return [r if isinstance(r, dict) else {"value": r} for r in value]
    if isinstance(value, dict):
        lists = {k: v for k, v in value.items() if isinstance(v, list)}
        if len(lists) == 1 and len(value) == 1:
            return flatten(next(iter(lists.values())))
        flat: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(v, dict):
                for kk, vv in v.items():
                    if not isinstance(vv, (dict, list)):
                        flat[f"{prefix}{k}.{kk}"] = vv
            elif not isinstance(v, list):
                flat[f"{prefix}{k}"] = v
        return [flat]
    return [{"value": value}]
