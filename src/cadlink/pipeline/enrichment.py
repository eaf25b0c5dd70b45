"""Turns buffered envelopes into enriched, column-oriented rows for the event store.

Runs in the loader, in batches: user agent (one parse per envelope, cached), bots dropped and
counted per site, day and reason, geo from the truncated network prefix, referrer → source and
channel, UTM from the page URL when the tracker did not send it, visitor identity.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import msgspec
import pyarrow as pa

from cadlink.events import EVENT_COLUMN_NAMES, Envelope
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.identity import consented_visitor_id
from cadlink.ingest.enrich.referrer import classify
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.ingest.enrich.utm import page_path as path_of
from cadlink.ingest.enrich.utm import utm_from_url
from cadlink.store.events.base import EVENT_ARROW_SCHEMA

_json = msgspec.json.Encoder()
_NO_UTM: dict[str, str] = {}
_FUTURE_SKEW_MS = 60_000  # client clocks ahead by more than this are not believed


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
        # Pages and referrers repeat heavily (Zipf): memoising the pure parsers saves most of
        # the per-event cost. The caches hold URLs only, never addresses.
        self._classify = lru_cache(maxsize=65_536)(classify)
        self._utm = lru_cache(maxsize=65_536)(utm_from_url)
        self._path = lru_cache(maxsize=65_536)(path_of)

    def enrich(self, envelopes: list[Envelope]) -> Enriched:
        cols: dict[str, list[Any]] = {name: [] for name in EVENT_COLUMN_NAMES}
        drops: dict[tuple[str, date, str], int] = defaultdict(int)
        identities: list[Identity] = []
        append = {name: cols[name].append for name in EVENT_COLUMN_NAMES}
        for env in envelopes:
            agent = self.ua.parse(env.user_agent)
            if agent.bot_reason is not None:
                day = datetime.fromtimestamp(env.received_ms / 1000, UTC).date()
                drops[(env.site_id, day, agent.bot_reason)] += len(env.events)
                continue
            place = self.geo.locate(env.ip_prefix)
            received = env.received_ms
            for ev in env.events:
                ts = ev.timestamp
                if ts is None or ts > received + _FUTURE_SKEW_MS or ts < received - self.late_ms:
                    ts = received
                utm = self._utm(ev.page_url) if ev.utm_source is None else _NO_UTM
                utm_source = ev.utm_source or utm.get("utm_source")
                utm_medium = ev.utm_medium or utm.get("utm_medium")
                ref = self._classify(ev.referrer, ev.page_url, utm_source, utm_medium)
                visitor = (
                    consented_visitor_id(env.site_id, ev.visitor_id)
                    if ev.consent and ev.visitor_id
                    else env.anon_visitor
                )
                append["site_id"](env.site_id)
                append["ts"](ts)
                append["event_id"](ev.event_id or uuid.uuid4().hex)
                append["event_type"](ev.event_type)
                append["client_ts"](ev.timestamp)
                append["received_at"](received)
                append["session_id"](ev.session_id)
                append["visitor_id"](visitor)
                append["user_id"](ev.user_id)
                append["consent"](ev.consent)
                append["page_url"](ev.page_url)
                append["page_path"](ev.page_path or self._path(ev.page_url))
                append["page_title"](ev.page_title)
                append["referrer"](ev.referrer or None)
                append["referrer_domain"](ref.domain)
                append["source"](ref.source)
                append["channel"](ref.channel)
                append["device_type"](agent.device_type)
                append["os"](agent.os)
                append["os_version"](agent.os_version or None)
                append["browser"](agent.browser)
                append["browser_version"](agent.browser_version or None)
                append["screen_resolution"](ev.screen_resolution)
                append["viewport"](ev.viewport)
                append["country"](place.country)
                append["region"](place.region)
                append["city"](place.city)
                append["utm_source"](utm_source)
                append["utm_medium"](utm_medium)
                append["utm_campaign"](ev.utm_campaign or utm.get("utm_campaign"))
                append["utm_term"](ev.utm_term or utm.get("utm_term"))
                append["utm_content"](ev.utm_content or utm.get("utm_content"))
                append["properties"](
                    _json.encode(ev.properties).decode() if ev.properties else None
                )
                if ev.event_type == "identify" and ev.user_id:
                    identities.append(
                        Identity(
                            env.site_id,
                            ev.user_id,
                            dict(ev.properties or {}),
                            datetime.fromtimestamp(ts / 1000, UTC),
                        )
                    )
        table = pa.Table.from_pydict(cols, schema=EVENT_ARROW_SCHEMA)
        return Enriched(rows=table, drops=dict(drops), identities=identities)
