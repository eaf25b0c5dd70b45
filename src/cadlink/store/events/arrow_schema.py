"""The Arrow schema of `analytics_events` rows, for the stores and exports that use Arrow.

Kept apart so that importing the event stores does not import pyarrow (see base.py).
"""

from __future__ import annotations

import pyarrow as pa

from cadlink.events import EVENT_COLUMNS

_ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "timestamp": pa.timestamp("ms", tz="UTC"),
    "int64": pa.int64(),
    "bool": pa.bool_(),
    "json": pa.string(),
}

EVENT_ARROW_SCHEMA = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in EVENT_COLUMNS])
