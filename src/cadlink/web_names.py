"""Public (camelCase) names and values of stored columns, shared by the API and the exports."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

import msgspec

_CAMEL = re.compile(r"_([a-z])")
_RENAMES = {"ts": "timestamp", "client_ts": "clientTimestamp", "received_at": "receivedAt"}


def camel(name: str) -> str:
    return _RENAMES.get(name) or _CAMEL.sub(lambda m: m.group(1).upper(), name)


def camel_columns(names: list[str]) -> list[str]:
    return [camel(n) for n in names]


_json_decode = msgspec.json.decode


def _finite(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None


def properties_json(text: str) -> Any:
    """Stored properties as JSON values. The collect endpoint refuses numbers beyond a
    double's range; one stored before it did reads as null instead of failing the page."""
    try:
        return _json_decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return json.loads(text, parse_float=_finite)


def _value(key: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if key == "properties" and isinstance(value, str):
        return properties_json(value)
    if key == "visitor_id" and value is not None:
        return str(value)  # 64-bit: JavaScript numbers would round it
    return value


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored event as the API shows it (times in epoch ms, properties as JSON)."""
    return {camel(k): _value(k, v) for k, v in row.items()}


def session_json(row: dict[str, Any]) -> dict[str, Any]:
    return {camel(k): _value(k, v) for k, v in row.items()}
