"""Turns buffered envelopes into enriched, column-oriented rows for the event store.

Runs in the loader, in batches: user agent (one parse per envelope, cached), bots dropped and
counted per site, day and reason, geo from the truncated network prefix, referrer → source and
channel, UTM from the page URL when the tracker did not send it, visitor identity.

The work is done column by column, not event by event: what belongs to an envelope (site,
arrival time, user agent, place) is computed once per envelope and spread over its events by
an Arrow `take`; what derives from repeating strings (page URL, referrer and UTM tags → source
and channel; consented visitor ids) is computed once per distinct value and memoised; the
timestamp rules are Arrow kernels. Per event there is only one pass per stored field.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from cadlink.events import Envelope, IncomingEvent
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.identity import consented_visitor_id
from cadlink.ingest.enrich.referrer import classify
from cadlink.ingest.enrich.useragent import UserAgentInfo, UserAgentParser
from cadlink.ingest.enrich.utm import page_path as path_of
from cadlink.ingest.enrich.utm import utm_from_url
from cadlink.store.events.base import EVENT_ARROW_SCHEMA

_json = msgspec.json.Encoder()
_FUTURE_SKEW_MS = 60_000  # client clocks ahead by more than this are not believed
_TS = pa.timestamp("ms", tz="UTC")
_STR = pa.string()
# Source attribution of one event: utm_source … utm_content, referrer domain, source, channel.
Attribution = tuple[
    str | None, str | None, str | None, str | None, str | None, str | None, str, str
]


@dataclass
class Identity:
    """A visitor linked to a known user by `identify()`."""

    site_id: str
    user_id: str
    traits: dict[str, Any]
    seen_at: datetime


@dataclass
class Enriched:
    rows: pa.Table
    drops: dict[tuple[str, date, str], int] = field(default_factory=dict)
    identities: list[Identity] = field(default_factory=list)


def _attribution(
    referrer: str | None,
    page_url: str | None,
    utm_source: str | None,
    utm_medium: str | None,
    utm_campaign: str | None,
    utm_term: str | None,
    utm_content: str | None,
) -> Attribution:
    """UTM tags (sent, else read from the page URL) and the traffic source they give."""
    utm = utm_from_url(page_url) if utm_source is None else {}
    source = utm_source or utm.get("utm_source")
    medium = utm_medium or utm.get("utm_medium")
    ref = classify(referrer, page_url, source, medium)
    return (
        source,
        medium,
        utm_campaign or utm.get("utm_campaign"),
        utm_term or utm.get("utm_term"),
        utm_content or utm.get("utm_content"),
        ref.domain,
        ref.source,
        ref.channel,
    )


def _new_event_ids(times_ms: list[int]) -> list[str]:
    """One UUIDv7 (RFC 9562) per arrival time in `times_ms`, as 32 hex digits (uuid.hex),
    from one urandom call: 48 bits of the time, then random bits.

    Time-ordered, so the ids the server assigns sort by arrival: the session upkeep orders a
    visitor's events by time, then id, and events that share one timestamp (sent without an
    id or a clock) then follow the stored ones, which keeps them on its merge path
    (duckdb_sessions.py) instead of rebuilding the session on every batch.
    """
    raw = bytearray(secrets.token_bytes(16 * len(times_ms)))
    for n, when in enumerate(times_ms):
        i = 16 * n
        raw[i : i + 6] = (when & 0xFFFF_FFFF_FFFF).to_bytes(6, "big")
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x70  # version 7
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80  # RFC 9562 variant
    text = raw.hex()
    return [text[i : i + 32] for i in range(0, len(text), 32)]


class Enricher:
    def __init__(
        self,
        ua_parser: UserAgentParser,
        geo: GeoLocator,
        late_event_hours: int = 72,
        max_title: int = 512,
    ) -> None:
        self.ua = ua_parser
        self.geo = geo
        self.late_ms = late_event_hours * 3_600_000
        self.max_title = max_title
        # Pages, referrers and visitors repeat heavily (Zipf): memoising the pure functions
        # saves most of the per-event cost. The caches hold URLs and ids, never addresses.
        self._attribution = lru_cache(maxsize=65_536)(_attribution)
        self._path = lru_cache(maxsize=65_536)(path_of)
        self._visitor = lru_cache(maxsize=16_384)(consented_visitor_id)

    def enrich(self, envelopes: list[Envelope]) -> Enriched:
        drops: dict[tuple[str, date, str], int] = defaultdict(int)
        kept: list[Envelope] = []
        agents: list[UserAgentInfo] = []
        for env in envelopes:
            agent = self.ua.parse(env.user_agent)
            if agent.bot_reason is not None:
                day = datetime.fromtimestamp(env.received_ms / 1000, UTC).date()
                drops[(env.site_id, day, agent.bot_reason)] += len(env.events)
                continue
            kept.append(env)
            agents.append(agent)
        places = [self.geo.locate(env.ip_prefix) for env in kept]
        events = [ev for env in kept for ev in env.events]
        offsets = [0]
        for env in kept:
            offsets.append(offsets[-1] + len(env.events))
        owner = pc.list_parent_indices(
            pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.nulls(len(events)))
        )

        def per_envelope(values: list[Any], kind: pa.DataType = _STR) -> pa.Array:
            return pa.array(values, kind).take(owner)

        received = per_envelope([env.received_ms for env in kept], pa.int64())
        client = pa.array([ev.timestamp for ev in events], pa.int64())
        believed = pc.fill_null(
            pc.and_(
                pc.less_equal(client, pc.add(received, _FUTURE_SKEW_MS)),
                pc.greater_equal(client, pc.subtract(received, self.late_ms)),
            ),
            False,
        )
        ts = pc.if_else(believed, client, received)
        columns = self._event_columns(kept, events)
        columns |= {
            "site_id": per_envelope([env.site_id for env in kept]),
            "ts": ts.cast(_TS),
            "client_ts": client.cast(_TS),
            "received_at": received.cast(_TS),
            "device_type": per_envelope([a.device_type for a in agents]),
            "os": per_envelope([a.os for a in agents]),
            "os_version": per_envelope([a.os_version or None for a in agents]),
            "browser": per_envelope([a.browser for a in agents]),
            "browser_version": per_envelope([a.browser_version or None for a in agents]),
            "country": per_envelope([p.country for p in places]),
            "region": per_envelope([p.region for p in places]),
            "city": per_envelope([p.city for p in places]),
        }
        table = pa.Table.from_arrays(
            [columns[name] for name in EVENT_ARROW_SCHEMA.names], schema=EVENT_ARROW_SCHEMA
        )
        return Enriched(table, dict(drops), _identities(events, table, ts))

    def _event_columns(
        self, kept: list[Envelope], events: list[IncomingEvent]
    ) -> dict[str, pa.Array]:
        """The columns that come from each event's own fields."""
        ids: list[str | None] = [ev.event_id for ev in events]
        missing = [i for i, event_id in enumerate(ids) if not event_id]
        if missing:
            arrived = [env.received_ms for env in kept for _ in env.events]
            new_ids = _new_event_ids([arrived[i] for i in missing])
            for i, new_id in zip(missing, new_ids, strict=True):
                ids[i] = new_id
        visitor = self._visitor
        visitors = [
            visitor(env.site_id, ev.visitor_id) if ev.consent and ev.visitor_id else anon
            for env in kept
            for anon in (env.anon_visitor,)
            for ev in env.events
        ]
        path = self._path
        attribution = self._attribution
        found = [
            attribution(
                ev.referrer,
                ev.page_url,
                ev.utm_source,
                ev.utm_medium,
                ev.utm_campaign,
                ev.utm_term,
                ev.utm_content,
            )
            for ev in events
        ]
        utm_source, utm_medium, utm_campaign, utm_term, utm_content, domain, source, channel = (
            zip(*found, strict=True) if found else ((),) * 8
        )
        encode = _json.encode
        return {
            "event_id": pa.array(ids, _STR),
            "event_type": pa.array([ev.event_type for ev in events], _STR),
            "session_id": pa.array([ev.session_id for ev in events], _STR),
            "visitor_id": pa.array(visitors, pa.int64()),
            "user_id": pa.array([ev.user_id for ev in events], _STR),
            "consent": pa.array([ev.consent for ev in events], pa.bool_()),
            "page_url": pa.array([ev.page_url for ev in events], _STR),
            "page_path": pa.array([ev.page_path or path(ev.page_url) for ev in events], _STR),
            "page_title": pa.array([ev.page_title for ev in events], _STR),
            "referrer": pa.array([ev.referrer or None for ev in events], _STR),
            "referrer_domain": pa.array(domain, _STR),
            "source": pa.array(source, _STR),
            "channel": pa.array(channel, _STR),
            "screen_resolution": pa.array([ev.screen_resolution for ev in events], _STR),
            "viewport": pa.array([ev.viewport for ev in events], _STR),
            "utm_source": pa.array(utm_source, _STR),
            "utm_medium": pa.array(utm_medium, _STR),
            "utm_campaign": pa.array(utm_campaign, _STR),
            "utm_term": pa.array(utm_term, _STR),
            "utm_content": pa.array(utm_content, _STR),
            "properties": pa.array(
                [encode(ev.properties) if ev.properties else None for ev in events], _STR
            ),
        }


def _identities(events: list[IncomingEvent], table: pa.Table, ts: pa.Array) -> list[Identity]:
    """Events that link their visitor to a known user (`identify()` with a user id)."""
    found = pc.and_(
        pc.equal(table.column("event_type"), "identify"),
        pc.fill_null(pc.not_equal(table.column("user_id"), ""), False),
    )
    sites = table.column("site_id")
    return [
        Identity(
            sites[i].as_py(),
            events[i].user_id or "",
            dict(events[i].properties or {}),
            datetime.fromtimestamp(ts[i].as_py() / 1000, UTC),
        )
        for i in pc.indices_nonzero(found).to_pylist()
    ]
