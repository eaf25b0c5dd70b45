"""Stored rows → the API's camelCase JSON."""

from __future__ import annotations

import base64
from datetime import datetime

import msgspec

from cadlink.web_names import event_json, session_json

__all__ = ["decode_cursor", "encode_cursor", "event_json", "session_json"]


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
