"""Buffer records → enriched event rows, in DuckDB: the loader's enrichment as SQL.

The buffer holds one line of JSON per accepted request (`events.encode_envelope`). A batch of
lines is written to a scratch file that DuckDB's JSON reader parses; DuckDB unnests the events
and builds every stored column in C++, without the interpreter lock. What needs Python (user agents,
geo, referrer and UTM attribution, consented visitor ids: maintained parsers and keyed
hashes) is asked once per *new distinct value*: each is remembered in a small lookup table
of the connection, so in steady traffic a batch sends Python a handful of strings, not one
call per event. The result is the temp table `staged_rows`, with `EVENT_COLUMNS` and `i`
(the event's position in the batch, for stable ordering).

Runs on the DuckDB event store's own connection (the rows never leave DuckDB) and, for the
other stores and for callers that want Arrow, on an in-memory DuckDB connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import msgspec
import msgspec.inspect

from cadlink.events import EVENT_COLUMN_NAMES, IncomingEvent
from cadlink.store.events.staged import (
    AttributionKey,
    Identity,
    Staged,
    Staging,
)

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

_FUTURE_SKEW_MS = 60_000  # client clocks ahead by more than this are not believed
# A lookup table larger than this is emptied and refilled on demand: bounded memory whatever
# the traffic (every value in it can be asked again at the cost of one Python call).
LOOKUP_MAX_ROWS = 200_000

_DUCK_TYPES: dict[type[msgspec.inspect.Type], str] = {
    msgspec.inspect.StrType: "VARCHAR",
    msgspec.inspect.IntType: "BIGINT",
    msgspec.inspect.BoolType: "BOOLEAN",
    msgspec.inspect.DictType: "JSON",
}


def _duck_type(kind: msgspec.inspect.Type) -> str:
    """The DuckDB type `from_json` reads a field of `IncomingEvent` as (optional or not)."""
    if isinstance(kind, msgspec.inspect.UnionType):
        (kind,) = (t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
    return _DUCK_TYPES[type(kind)]  # a new field type must be mapped here: KeyError at import


def _event_struct() -> str:
    info = msgspec.inspect.type_info(IncomingEvent)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = ", ".join(f'"{f.encode_name}" {_duck_type(f.type)}' for f in info.fields)
    return f"STRUCT({fields})"


# The record layout of `events.Envelope` (keys r, s, v, p, u, e), as read_json reads it.
ENVELOPE_COLUMNS = (
    "{'r': 'BIGINT', 's': 'VARCHAR', 'v': 'BIGINT', 'p': 'VARCHAR', 'u': 'VARCHAR', "
    f"'e': '{_event_struct()}[]'}}"
)

LOOKUP_DDL = (
    """CREATE TEMP TABLE IF NOT EXISTS lookup_agents (
        ua VARCHAR, browser VARCHAR, browser_version VARCHAR, os VARCHAR,
        os_version VARCHAR, device_type VARCHAR, bot_reason VARCHAR)""",
    """CREATE TEMP TABLE IF NOT EXISTS lookup_places (
        prefix VARCHAR, country VARCHAR, region VARCHAR, city VARCHAR)""",
    """CREATE TEMP TABLE IF NOT EXISTS lookup_attribution (
        k UBIGINT, referrer VARCHAR, page_url VARCHAR, utm_source VARCHAR,
        utm_medium VARCHAR, utm_campaign VARCHAR, utm_term VARCHAR, utm_content VARCHAR,
        a_utm_source VARCHAR, a_utm_medium VARCHAR, a_utm_campaign VARCHAR,
        a_utm_term VARCHAR, a_utm_content VARCHAR, referrer_domain VARCHAR,
        source VARCHAR, channel VARCHAR, url_path VARCHAR)""",
    """CREATE TEMP TABLE IF NOT EXISTS lookup_visitors (
        site_id VARCHAR, visitor VARCHAR, visitor_id BIGINT)""",
)
_LOOKUP_TABLES = ("lookup_agents", "lookup_places", "lookup_attribution", "lookup_visitors")
_LOOKUP_SIZES_SQL = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in _LOOKUP_TABLES)

# Lines → one row per event, read from the batch's scratch files, in order, by DuckDB's JSON
# reader (its own newline scanner: a third of the cost of splitting one large string in SQL).
# `k` keys the event's attribution inputs: the same seven values always hash alike within a
# connection (the lookup table lives no longer than it). Joining on one 64-bit hash instead of
# seven nullable strings is several times cheaper; two distinct inputs share a hash with odds
# of about 1 in 10^9 for a full lookup table (200,000 keys), which would give one of them the
# other's UTM values and source.
_SPLIT_SQL = f"""
CREATE OR REPLACE TEMP TABLE staged AS
WITH envs AS (
    SELECT row_number() OVER () AS line_no,
           {{'r': r, 's': s, 'v': v, 'p': p, 'u': u, 'e': e}} AS env
    FROM read_json($paths, format = 'newline_delimited', columns = {ENVELOPE_COLUMNS})
),
events AS (
    SELECT line_no, env.r AS received_ms, env.s AS site_id, env.v AS anon_visitor,
           env.p AS ip_prefix, env.u AS user_agent,
           -- A line that parses but is not an envelope keeps one row, marked: staging fails
           -- on it (the loader then keeps it as a dead letter) instead of losing it.
           env.r IS NOT NULL AND env.s IS NOT NULL AND env.v IS NOT NULL
               AND env.u IS NOT NULL AND env.e IS NOT NULL
               AND list_bool_and(list_transform(env.e, lambda x: x.eventType IS NOT NULL)) AS ok,
           generate_subscripts(CASE WHEN ok THEN env.e ELSE [NULL] END, 1) AS event_no,
           unnest(CASE WHEN ok THEN env.e ELSE [NULL] END) AS ev
    FROM envs
)
SELECT (line_no << 20) + event_no AS i, received_ms, site_id,
       anon_visitor, ip_prefix, user_agent, ev, ok,
       hash(ev.referrer, ev.pageUrl, ev.utmSource, ev.utmMedium, ev.utmCampaign, ev.utmTerm,
            ev.utmContent) AS k
FROM events
"""

_COUNT_SQL = "SELECT count(*), max(received_ms), count(*) FILTER (WHERE NOT ok) FROM staged"
_NEW_AGENTS_SQL = """
SELECT ua FROM (SELECT DISTINCT user_agent AS ua FROM staged) ANTI JOIN lookup_agents USING (ua)
"""
_DROPS_SQL = """
SELECT s.site_id, CAST(epoch_ms(s.received_ms) AS DATE) AS day, a.bot_reason, count(*)
FROM staged s JOIN lookup_agents a ON a.ua = s.user_agent
WHERE a.bot_reason IS NOT NULL
GROUP BY ALL
"""
_NEW_PLACES_SQL = """
SELECT prefix FROM (SELECT DISTINCT ip_prefix AS prefix FROM staged WHERE ip_prefix <> '')
ANTI JOIN lookup_places USING (prefix)
"""
_NEW_ATTRIBUTION_SQL = """
SELECT k, any_value(ev.referrer), any_value(ev.pageUrl), any_value(ev.utmSource),
       any_value(ev.utmMedium), any_value(ev.utmCampaign), any_value(ev.utmTerm),
       any_value(ev.utmContent)
FROM (SELECT s.k, s.ev FROM staged s ANTI JOIN lookup_attribution a ON a.k = s.k)
GROUP BY k
"""
_NEW_VISITORS_SQL = """
SELECT site_id, visitor FROM (
    SELECT DISTINCT site_id, ev.visitorId AS visitor FROM staged
    WHERE ev.consent AND ev.visitorId <> ''
) ANTI JOIN lookup_visitors USING (site_id, visitor)
"""

# A missing event id becomes a UUIDv7 of the arrival time (RFC 9562, as 32 hex digits): 48
# bits of the time, the version, the variant, 30 bits of the batch's sequence (`_next_seq`:
# milliseconds of the load, strictly increasing in the process; RFC 9562's method 1) and 44
# random bits. Ids the server assigns therefore sort by arrival, across batches within a
# millisecond too: the session upkeep orders a visitor's events by time, then id, and events
# that share one timestamp (sent without an id or a clock) follow the stored ones, which keeps
# them on its merge path (duckdb_sessions.py). With random bits after the time, two requests of
# one visitor that arrived in the same millisecond but were loaded in different batches sorted
# at random, and half of such batches rebuilt that visitor's whole session from its stored
# events. The random bits keep ids distinct between processes that load at once.
_NEW_ID = (
    "printf('%012x', s.received_ms & 281474976710655) || $batch_hex || "
    "substr(replace(CAST(gen_random_uuid() AS VARCHAR), '-', ''), 22, 11)"
)
SEQ_BITS = 30
_seq_lock = threading.Lock()
_last_seq = 0


def _next_seq() -> int:
    """A batch's sequence for the ids it assigns (`_NEW_ID`): milliseconds of the wall clock,
    and always above the last batch's of any stager in the process, should the clock step
    back or two batches start in one millisecond. It wraps every 12 days: the batch after the
    wrap sorts first, which costs a rebuild, not an error."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(_last_seq + 1, time.time_ns() // 1_000_000)
        return _last_seq & ((1 << SEQ_BITS) - 1)


def _batch_hex(seq: int) -> str:
    """The 8 hex digits of `_NEW_ID` after the time, the same for a whole batch: the version,
    12 bits of `seq`, the variant with 2 more, then its last 16."""
    return f"7{seq >> 18:03x}{8 | (seq >> 16) & 3:x}{seq & 0xFFFF:04x}"


_ROWS_SQL = f"""
CREATE OR REPLACE TEMP TABLE staged_rows AS
SELECT s.i,
       s.site_id,
       timezone('UTC', epoch_ms(
           CASE WHEN s.ev.timestamp <= s.received_ms + {_FUTURE_SKEW_MS}
                 AND s.ev.timestamp >= s.received_ms - $late_ms
                THEN s.ev.timestamp ELSE s.received_ms END)) AS ts,
       coalesce(nullif(s.ev.eventId, ''), {_NEW_ID}) AS event_id,
       s.ev.eventType AS event_type,
       timezone('UTC', epoch_ms(s.ev.timestamp)) AS client_ts,
       timezone('UTC', epoch_ms(s.received_ms)) AS received_at,
       s.ev.sessionId AS session_id,
       coalesce(v.visitor_id, s.anon_visitor) AS visitor_id,
       s.ev.userId AS user_id,
       coalesce(s.ev.consent, false) AS consent,
       s.ev.pageUrl AS page_url,
       coalesce(nullif(s.ev.pagePath, ''), t.url_path) AS page_path,
       s.ev.pageTitle AS page_title,
       nullif(s.ev.referrer, '') AS referrer,
       t.referrer_domain, t.source, t.channel,
       a.device_type, a.os, a.os_version, a.browser, a.browser_version,
       s.ev.screenResolution AS screen_resolution,
       s.ev.viewport AS viewport,
       p.country, p.region, p.city,
       t.a_utm_source AS utm_source, t.a_utm_medium AS utm_medium,
       t.a_utm_campaign AS utm_campaign, t.a_utm_term AS utm_term,
       t.a_utm_content AS utm_content,
       CASE WHEN s.ev.properties IS NULL OR CAST(s.ev.properties AS VARCHAR) = '{{}}'
            THEN NULL ELSE CAST(s.ev.properties AS VARCHAR) END AS properties
FROM staged s
JOIN lookup_agents a ON a.ua = s.user_agent
JOIN lookup_attribution t ON t.k = s.k
LEFT JOIN lookup_places p ON p.prefix = s.ip_prefix
LEFT JOIN lookup_visitors v
  ON s.ev.consent AND v.site_id = s.site_id AND v.visitor = s.ev.visitorId
WHERE a.bot_reason IS NULL
"""

_IDENTITIES_SQL = """
SELECT site_id, user_id, properties, epoch_ms(ts) FROM staged_rows
WHERE event_type = 'identify' AND user_id <> ''
ORDER BY i
"""

ROW_COLUMNS = ", ".join(EVENT_COLUMN_NAMES)

# A batch is written to scratch files of about this size, which the JSON reader reads one
# after the other: it holds about five times what it reads at once (82 MB for one 16 MiB
# file, the loader's peak; 45 MB for the same batch in 2 MiB files), and no more time.
SCRATCH_PART_BYTES = 2 << 20


class Stager:
    """Stages batches of buffer records on one DuckDB connection (used by one thread)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, staging: Staging, scratch: Path) -> None:
        """`scratch` names the private files this stager overwrites with each batch (DuckDB
        reads JSON fastest from a file): `scratch` itself, then `scratch.1`, `scratch.2`, …
        (`SCRATCH_PART_BYTES` each); they hold what the buffer holds, no more."""
        self.con = con
        self.staging = staging
        self.scratch = scratch
        self._parts: list[Path] = []  # the files the last batch was written to
        self._records = 0  # and how many records it holds
        self.lookups = staging.lookups
        self.late_ms = staging.late_event_hours * 3_600_000
        for ddl in LOOKUP_DDL:
            con.execute(ddl)

    def stage(self, blob: bytes | bytearray) -> Staged:
        """Parse and enrich `blob` (whole records, newline-terminated) into `staged_rows`.

        A `bytearray` is emptied once written to the scratch files: DuckDB reads them, and
        the loader's batch (16 MiB) is not held while DuckDB works on it."""
        self._parts = self._write_parts(blob)
        self._records = blob.count(b"\n")
        if isinstance(blob, bytearray):
            blob.clear()
        return self.stage_again()

    def stage_again(self) -> Staged:
        """Stage the batch `stage` last wrote to the scratch files (until `drop`) once more:
        after a transaction that failed, say."""
        con = self.con
        self._bound_lookups()
        con.execute(_SPLIT_SQL, {"paths": [str(p) for p in self._parts]})
        row = con.execute(_COUNT_SQL).fetchone()
        if row and row[2]:
            raise ValueError(f"{row[2]} buffer records are not envelopes")
        staged = Staged(records=self._records)
        staged.events = int(row[0]) if row else 0
        staged.newest_received_ms = int(row[1]) if row and row[1] is not None else 0
        self._learn_agents()
        self._learn_places()
        self._learn_attribution()
        self._learn_visitors()
        for site, day, reason, n in con.execute(_DROPS_SQL).fetchall():
            staged.drops[(str(site), day, str(reason))] = int(n)
        con.execute(_ROWS_SQL, {"late_ms": self.late_ms, "batch_hex": _batch_hex(_next_seq())})
        counted = con.execute("SELECT count(*) FROM staged_rows").fetchone()
        staged.rows = int(counted[0]) if counted else 0
        if staged.rows:
            staged.identities = [
                Identity(str(site), str(user), _traits(props), _utc(ms))
                for site, user, props, ms in con.execute(_IDENTITIES_SQL).fetchall()
            ]
        con.execute("DROP TABLE staged")
        return staged

    def drop(self) -> None:
        """Forget the last batch's rows (and empty its scratch files)."""
        self.con.execute("DROP TABLE IF EXISTS staged_rows")
        for part in self._parts:
            with contextlib.suppress(FileNotFoundError):
                os.truncate(part, 0)

    def _write_parts(self, blob: bytes | bytearray) -> list[Path]:
        """Write `blob` to scratch files of about `SCRATCH_PART_BYTES`, split after a
        newline (a record larger than that gets a file to itself)."""
        parts: list[Path] = []
        start = 0
        while start < len(blob) or not parts:
            cut = blob.find(b"\n", start + SCRATCH_PART_BYTES - 1)
            end = len(blob) if cut < 0 else cut + 1
            path = (
                self.scratch
                if not parts
                else self.scratch.with_name(f"{self.scratch.name}.{len(parts)}")
            )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                while start < end:
                    # A view of the part only (released at once: a bytearray with a view
                    # cannot be emptied).
                    with memoryview(blob)[start:end] as chunk:
                        start += os.write(fd, chunk)
            finally:
                os.close(fd)
            parts.append(path)
        return parts

    def _bound_lookups(self) -> None:
        counts = self.con.execute(_LOOKUP_SIZES_SQL).fetchone() or ()
        for table, count in zip(_LOOKUP_TABLES, counts, strict=True):
            if count > LOOKUP_MAX_ROWS:
                self.con.execute(f"DELETE FROM {table}")

    def _learn_agents(self) -> None:
        agents = [str(ua) for (ua,) in self.con.execute(_NEW_AGENTS_SQL).fetchall()]
        if agents:
            self._insert("lookup_agents", agents, self.lookups.user_agents(agents))

    def _learn_places(self) -> None:
        prefixes = [str(p) for (p,) in self.con.execute(_NEW_PLACES_SQL).fetchall()]
        if prefixes:
            self._insert("lookup_places", prefixes, self.lookups.places(prefixes))

    def _learn_attribution(self) -> None:
        rows = self.con.execute(_NEW_ATTRIBUTION_SQL).fetchall()
        if rows:
            keys: list[AttributionKey] = [tuple(r[1:]) for r in rows]
            found = self.lookups.attributions(keys)
            self._insert("lookup_attribution", [r[0] for r in rows], keys, found)

    def _learn_visitors(self) -> None:
        pairs = [(str(s), str(v)) for s, v in self.con.execute(_NEW_VISITORS_SQL).fetchall()]
        if pairs:
            ids = self.lookups.visitors(pairs)
            self._insert("lookup_visitors", [p[0] for p in pairs], [p[1] for p in pairs], ids)

    def _insert(self, table: str, first: Sequence[Any], *more: Sequence[Any]) -> None:
        """Add rows to a lookup table in one statement: `first` is its first column; each of
        `more` is a further column, or a list of tuples giving several columns."""
        columns: list[list[Any]] = [list(first)]
        for part in more:
            if part and isinstance(part[0], tuple):
                columns.extend(list(c) for c in zip(*part, strict=True))
            else:
                columns.append(list(part))
        names = [f"c{n}" for n in range(len(columns))]
        self.con.execute(
            f"INSERT INTO {table} SELECT " + ", ".join(f"unnest(${n})" for n in names),
            dict(zip(names, columns, strict=True)),
        )


def _traits(properties: str | None) -> dict[str, Any]:
    if not properties:
        return {}
    try:
        value = msgspec.json.decode(properties)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return {}  # what collect refuses today (a number beyond a double), stored before
    return value if isinstance(value, dict) else {}


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def stage_to_arrow(stager: Stager, blob: bytes | bytearray) -> tuple[pa.Table, Staged]:
    """Stage `blob` and fetch its rows as Arrow (`EVENT_ARROW_SCHEMA`, in record order)."""
    from cadlink.store.events.arrow_schema import EVENT_ARROW_SCHEMA

    staged = stager.stage(blob)
    try:
        table = stager.con.sql(f"SELECT {ROW_COLUMNS} FROM staged_rows ORDER BY i")
        rows = table.to_arrow_table().cast(EVENT_ARROW_SCHEMA)
    finally:
        stager.drop()
    return rows, staged


def private_scratch(owner: object) -> Path:
    """A scratch file in a new private temporary directory, removed when `owner` is."""
    scratch = Path(tempfile.mkdtemp(prefix="cadlink-staging-")) / "batch.ndjson"
    weakref.finalize(owner, shutil.rmtree, scratch.parent, True)
    return scratch


def memory_stager(staging: Staging) -> Stager:
    """A stager on a private in-memory DuckDB (for stores that are not DuckDB)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return Stager(con, staging, private_scratch(con))
