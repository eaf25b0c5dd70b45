"""Enrichment: what the loader derives for each event, and where each part is computed.

The staging SQL (store/events/staging.py) does the per-event work in DuckDB; this module
supplies what needs Python, once per distinct value the staging has not seen before:
user agent → browser, OS, device and bot verdict (ua-parser with its Rust engine); truncated
network prefix → country, region, city; referrer, page URL and UTM tags → UTM values (sent,
else read from the URL), source and channel, and the page path; a consented client
`visitorId` → its stored visitor id (an unkeyed hash, stable across days).

`Enricher` turns envelopes into enriched Arrow rows through the same SQL on an in-memory
DuckDB: the demo generator, imports and the stores that are not DuckDB use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

from cadlink.events import Envelope, encode_envelope
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.identity import consented_visitor_id
from cadlink.ingest.enrich.referrer import classify
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.ingest.enrich.utm import page_path as path_of
from cadlink.ingest.enrich.utm import utm_from_url
from cadlink.store.events.staged import (
    PARSER_CACHE_ENTRIES,
    AttributionKey,
    AttributionRow,
    Identity,
    PlaceRow,
    Staging,
    UserAgentRow,
)
from cadlink.store.events.staging import Stager, memory_stager, stage_to_arrow

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Enriched", "Enricher", "EnrichmentLookups", "Identity"]


def _attribution(
    referrer: str | None,
    page_url: str | None,
    utm_source: str | None,
    utm_medium: str | None,
    utm_campaign: str | None,
    utm_term: str | None,
    utm_content: str | None,
) -> AttributionRow:
    """UTM tags (each as sent, else as the page URL has it), the traffic source they give,
    and the page path of the URL."""
    sent = (utm_source, utm_medium, utm_campaign, utm_term, utm_content)
    utm = utm_from_url(page_url) if not all(sent) else {}
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
        path_of(page_url),
    )


class EnrichmentLookups:
    """The staging's `Lookups`: maintained parsers and hashes, per distinct value."""

    def __init__(self, ua_parser: UserAgentParser, geo: GeoLocator) -> None:
        self.ua = ua_parser
        self.geo = geo
        # Pages and referrers repeat heavily (Zipf): the staging remembers what it asked for as
        # long as its connection lives; this bridges a lookup table that was emptied.
        self._attribution = lru_cache(maxsize=PARSER_CACHE_ENTRIES)(_attribution)

    def user_agents(self, agents: Sequence[str]) -> list[UserAgentRow]:
        rows: list[UserAgentRow] = []
        for agent in agents:
            a = self.ua.parse(agent)
            rows.append(
                (a.browser, a.browser_version or None, a.os, a.os_version or None,
                 a.device_type, a.bot_reason)
            )  # fmt: skip
        return rows

    def places(self, prefixes: Sequence[str]) -> list[PlaceRow]:
        return [(p.country, p.region, p.city) for p in map(self.geo.locate, prefixes)]

    def attributions(self, keys: Sequence[AttributionKey]) -> list[AttributionRow]:
        attribution = self._attribution
        return [attribution(*key) for key in keys]

    def visitors(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        return [consented_visitor_id(site, visitor) for site, visitor in pairs]


@dataclass
class Enriched:
    rows: pa.Table
    drops: dict[tuple[str, date, str], int] = field(default_factory=dict)
    identities: list[Identity] = field(default_factory=list)


class Enricher:
    """Envelopes → enriched Arrow rows (`EVENT_ARROW_SCHEMA`), through the staging SQL on a
    private in-memory DuckDB. Use from one thread at a time."""

    def __init__(
        self,
        ua_parser: UserAgentParser,
        geo: GeoLocator,
        late_event_hours: int = 72,
    ) -> None:
        self.lookups = EnrichmentLookups(ua_parser, geo)
        self.staging = Staging(self.lookups, late_event_hours)
        self._stager: Stager | None = None  # an in-memory DuckDB, opened on first use

    def enrich(self, envelopes: list[Envelope]) -> Enriched:
        return self.enrich_records(b"".join(encode_envelope(e) for e in envelopes))

    def enrich_records(self, blob: bytes) -> Enriched:
        """Enrich buffer records (whole lines) as the loader does."""
        if self._stager is None:
            self._stager = memory_stager(self.staging)
        rows, staged = stage_to_arrow(self._stager, blob)
        return Enriched(rows, staged.drops, staged.identities)
