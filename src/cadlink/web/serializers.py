"""Stored rows → the API's camelCase JSON."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import msgspec

from cadlink.web_names import camel

_json_decode = msgspec.json.decode


def _value(key: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if key == "properties" and isinstance(value, str):
        return _json_decode(value)
    if key == "visitor_id" and value is not None:
        return str(value)  # 64-bit: JavaScript numbers would round it
    return value


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    return {camel(k): _value(k, v) for k, v in row.items()}


def session_json(row: dict[str, Any]) -> dict[str, Any]:
    return {camel(k): _value(k, v) for k, v in row.items()}


def encode_cursor(ts: datetime, event_id: str) -> str:
    raw = msgspec.json.encode([ts.isoformat(), event_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError for anything that is not a cursor this API issued."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, event_id = msgspec.json.decode(raw, type=tuple[str, str])
        return datetime.fromisoformat(ts), event_id
    except (ValueError, msgspec.DecodeError) as e:
        raise ValueError("cursor is not valid; use meta.nextCursor from a previous page") from e
