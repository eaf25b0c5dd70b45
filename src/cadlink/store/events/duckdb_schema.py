"""DuckDB DDL for the embedded event store.

Layout decisions (see docs/architecture.md): events are appended in loader batches sorted by
(site_id, ts), so DuckDB's per-row-group min/max indexes prune by time; visitor ids are
64-bit integers (distinct counts on integers are several times faster than on strings);
low-cardinality text columns are dictionary-compressed by DuckDB automatically.
"""

from __future__ import annotations

EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS analytics_events (
    site_id VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    event_id VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    client_ts TIMESTAMPTZ,
    received_at TIMESTAMPTZ NOT NULL,
    session_id VARCHAR,
    visitor_id BIGINT NOT NULL,
    user_id VARCHAR,
    consent BOOLEAN NOT NULL,
    page_url VARCHAR,
    page_path VARCHAR,
    page_title VARCHAR,
    referrer VARCHAR,
    referrer_domain VARCHAR,
    source VARCHAR,
    channel VARCHAR,
    device_type VARCHAR,
    os VARCHAR,
    os_version VARCHAR,
    browser VARCHAR,
    browser_version VARCHAR,
    screen_resolution VARCHAR,
    viewport VARCHAR,
    country VARCHAR,
    region VARCHAR,
    city VARCHAR,
    utm_source VARCHAR,
    utm_medium VARCHAR,
    utm_campaign VARCHAR,
    utm_term VARCHAR,
    utm_content VARCHAR,
    properties JSON
)
"""

SESSIONS_DDL = """
CREATE TABLE IF NOT EXISTS sessions (
    site_id VARCHAR NOT NULL,
    session_key VARCHAR NOT NULL,
    visitor_id BIGINT NOT NULL,
    user_id VARCHAR,
    client_session_id VARCHAR,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ NOT NULL,
    duration_s DOUBLE NOT NULL,
    page_views INTEGER NOT NULL,
    events INTEGER NOT NULL,
    landing_page VARCHAR,
    exit_page VARCHAR,
    referrer VARCHAR,
    referrer_domain VARCHAR,
    source VARCHAR,
    channel VARCHAR,
    utm_source VARCHAR,
    utm_medium VARCHAR,
    utm_campaign VARCHAR,
    utm_term VARCHAR,
    utm_content VARCHAR,
    device_type VARCHAR,
    browser VARCHAR,
    os VARCHAR,
    screen_resolution VARCHAR,
    country VARCHAR,
    region VARCHAR,
    city VARCHAR,
    is_bounce BOOLEAN NOT NULL,
    converted BOOLEAN NOT NULL,
    revenue DOUBLE NOT NULL,
    -- the id of the session's last event in (ts, event_id) order: whether new events with
    -- the session's end time come after it (duckdb_sessions.py); internal, not listed
    last_event_id VARCHAR
)
"""

# Stores created before `last_event_id` existed get it (NULL: their sessions rebuild once).
SESSIONS_MIGRATIONS = ("ALTER TABLE sessions ADD COLUMN IF NOT EXISTS last_event_id VARCHAR",)

SUPPORT_DDL = (
    """
    CREATE TABLE IF NOT EXISTS loader_positions (
        segment VARCHAR PRIMARY KEY,
        position BIGINT NOT NULL
    )
    """,
    # A queue loader's once-markers (position 0, store/events/base.ONCE): tens of thousands
    # a batch, inserted and deleted again, so without the primary key's index (its upkeep
    # made forgetting a batch's 20 k markers cost 144 ms in the store). One loader writes
    # them (DuckDB has one writer), which checks before it inserts.
    """
    CREATE TABLE IF NOT EXISTS loader_markers (segment VARCHAR NOT NULL)
    """,
    """
    CREATE TABLE IF NOT EXISTS dropped_events (
        site_id VARCHAR NOT NULL,
        day DATE NOT NULL,
        reason VARCHAR NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (site_id, day, reason)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS schema_info (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)
    """,
    # Accepted buffer records the loader could not load (they do not decode, or enrichment
    # fails on them), kept as they were so that nothing accepted is lost without a trace.
    """
    CREATE TABLE IF NOT EXISTS dead_letters (
        stored_at TIMESTAMPTZ NOT NULL,
        n INTEGER NOT NULL,  -- its place among the batch's dead letters
        error VARCHAR NOT NULL,
        payload BLOB NOT NULL
    )
    """,
)

SCHEMA_VERSION = "1"
