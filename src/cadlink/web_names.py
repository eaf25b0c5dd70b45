"""Public (camelCase) names of stored columns, shared by the API and the exports."""

from __future__ import annotations

import re

_CAMEL = re.compile(r"_([a-z])")
_RENAMES = {"ts": "timestamp", "client_ts": "clientTimestamp", "received_at": "receivedAt"}


def camel(name: str) -> str:
    return _RENAMES.get(name) or _CAMEL.sub(lambda m: m.group(1).upper(), name)


def camel_columns(names: list[str]) -> list[str]:
    return [camel(n) for n in names]
