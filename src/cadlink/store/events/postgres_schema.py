"""PostgreSQL DDL for the server-mode event store.

Same tables and columns as the DuckDB store (`duckdb_schema.py`), in PostgreSQL types.
`analytics_events` is range-partitioned by month on `ts`: the loader creates the partitions a
batch needs before loading it, and a DEFAULT partition catches anything else. Indexes serve the
reports (site and time, visitor journeys, event types) and the dedup anti-join.
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from cadlink.events import EVENT_COLUMNS

SCHEMA_VERSION = "1"

# Text compares bytewise (COLLATE "C"), as in DuckDB: identical orderings and faster comparisons.
_PG_TYPES = {
    "text": 'text COLLATE "C"',
    "timestamp": "timestamptz",
    "int64": "bigint",
    "bool": "boolean",
    "json": "jsonb",
}
_NOT_NULL = {"site_id", "ts", "event_id", "event_type", "received_at", "visitor_id", "consent"}


def _event_columns(*, text_json: bool = False) -> str:
    parts = []
    for name, kind in EVENT_COLUMNS:
        pg_type = _PG_TYPES["text"] if kind == "json" and text_json else _PG_TYPES[kind]
        parts.append(f"{name} {pg_type}" + (" NOT NULL" if name in _NOT_NULL else ""))
    return ",\n    ".join(parts)


EVENTS_DDL = f"""
CREATE TABLE IF NOT EXISTS analytics_events (
    {_event_columns()}
) PARTITION BY RANGE (ts)
"""

# Indexes created on the partitioned parent propagate to every partition, present and future.
EVENT_INDEXES = (
    "CREATE INDEX IF NOT EXISTS analytics_events_site_ts ON analytics_events (site_id, ts)",
    "CREATE INDEX IF NOT EXISTS analytics_events_site_visitor_ts "
    "ON analytics_events (site_id, visitor_id, ts)",
    # With the visitor: funnels, goals and realtime counts read it by index only (no heap
    # visit per event; the 3-step funnel on 1 M demo events took 683 ms, 360 ms with it).
    "CREATE INDEX IF NOT EXISTS analytics_events_site_type_ts_visitor "
    "ON analytics_events (site_id, event_type, ts) INCLUDE (visitor_id)",
    # A unique index on a partitioned table must contain the partition key: (site, id, ts)
    # backs up the dedup anti-join (which it serves) against identical retries.
    "CREATE UNIQUE INDEX IF NOT EXISTS analytics_events_dedup "
    "ON analytics_events (site_id, event_id, ts)",
)

# Indexes an earlier schema created that a current one replaces (dropped at start-up).
RETIRED_INDEXES = ("analytics_events_site_type_ts",)

DEFAULT_PARTITION_DDL = (
    "CREATE TABLE IF NOT EXISTS analytics_events_default PARTITION OF analytics_events DEFAULT"
)

SESSIONS_DDL = """
CREATE TABLE IF NOT EXISTS sessions (
    site_id text COLLATE "C" NOT NULL,
    session_key text COLLATE "C" NOT NULL,
    visitor_id bigint NOT NULL,
    user_id text COLLATE "C",
    client_session_id text COLLATE "C",
    started_at timestamptz NOT NULL,
    ended_at timestamptz NOT NULL,
    duration_s double precision NOT NULL,
    page_views integer NOT NULL,
    events integer NOT NULL,
    landing_page text COLLATE "C",
    exit_page text COLLATE "C",
    referrer text COLLATE "C",
    referrer_domain text COLLATE "C",
    source text COLLATE "C",
    channel text COLLATE "C",
    utm_source text COLLATE "C",
    utm_medium text COLLATE "C",
    utm_campaign text COLLATE "C",
    utm_term text COLLATE "C",
    utm_content text COLLATE "C",
    device_type text COLLATE "C",
    browser text COLLATE "C",
    os text COLLATE "C",
    screen_resolution text COLLATE "C",
    country text COLLATE "C",
    region text COLLATE "C",
    city text COLLATE "C",
    is_bounce boolean NOT NULL,
    converted boolean NOT NULL,
    revenue double precision NOT NULL
)
"""

_ARROW = {
    "text": pa.string(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "bigint": pa.int64(),
    "integer": pa.int32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "jsonb": pa.string(),
}


def _arrow_schema(ddl: str) -> pa.Schema:
    """The Arrow schema of a table's rows, read off its DDL (name, then type, per line)."""
    lines = [line.strip().split() for line in ddl.strip().splitlines()[1:-1]]
    return pa.schema([(words[0], _ARROW[words[1].rstrip(",")]) for words in lines])


# What `stream` returns: the columns as DuckDB exports them (microseconds, JSON as text).
EVENTS_STREAM_SCHEMA = _arrow_schema(EVENTS_DDL)
SESSIONS_STREAM_SCHEMA = _arrow_schema(SESSIONS_DDL)

SESSION_INDEXES = (
    "CREATE INDEX IF NOT EXISTS sessions_site_started ON sessions (site_id, started_at)",
    "CREATE INDEX IF NOT EXISTS sessions_site_visitor_started "
    "ON sessions (site_id, visitor_id, started_at)",
)

SUPPORT_DDL = (
    """
    CREATE TABLE IF NOT EXISTS loader_positions (
        segment text COLLATE "C" PRIMARY KEY,
        position bigint NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS dropped_events (
        site_id text COLLATE "C" NOT NULL,
        day date NOT NULL,
        reason text COLLATE "C" NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (site_id, day, reason)
    )
    """,
    # Accepted buffer records the loader could not load (see duckdb_schema.py).
    """
    CREATE TABLE IF NOT EXISTS dead_letters (
        stored_at timestamptz NOT NULL,
        n integer NOT NULL,  -- its place among the batch's dead letters
        error text NOT NULL,
        payload bytea NOT NULL
    )
    """,
    "CREATE TABLE IF NOT EXISTS schema_info (key text PRIMARY KEY, value text NOT NULL)",
    # DuckDB's TRY_CAST(... AS DOUBLE): NULL instead of an error for a malformed revenue.
    """
    CREATE OR REPLACE FUNCTION cadlink_try_float8(v text) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
    BEGIN
        RETURN v::double precision;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END
    $$
    """,
)

# Per-connection staging tables for the loader: the batch as sent (properties as text, so a
# bad document is caught by us, not by COPY), the deduplicated new rows, the affected visitors.
STAGING_DDL = (
    f"""
    CREATE TEMP TABLE IF NOT EXISTS tmp_batch (
        {_event_columns(text_json=True)}
    ) ON COMMIT DELETE ROWS
    """,
    f"""
    CREATE TEMP TABLE IF NOT EXISTS new_rows (
        {_event_columns()}
    ) ON COMMIT DELETE ROWS
    """,
    """
    CREATE TEMP TABLE IF NOT EXISTS affected (
        site_id text COLLATE "C" NOT NULL,
        visitor_id bigint NOT NULL,
        lo timestamptz NOT NULL,
        hi timestamptz NOT NULL
    ) ON COMMIT DELETE ROWS
    """,
)

# Serialises schema changes (init, partition creation) across processes.
DDL_LOCK_KEY = 0x63616C6E6B01
# Serialises loads: the anti-join and the session rebuild must see every committed batch.
WRITE_LOCK_KEY = 0x63616C6E6B02


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_between(first: date, last: date) -> list[date]:
    """The first days of every month from `first`'s to `last`'s, inclusive."""
    months, month = [], month_start(first)
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def partition_name(month: date) -> str:
    return f"analytics_events_p{month.year:04d}_{month.month:02d}"


def partition_ddl(month: date) -> str:
    # Built from a date only (never user input), so inlining the bounds is safe.
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF analytics_events "
        f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
        f"TO ('{next_month(month).isoformat()} 00:00:00+00')"
    )
