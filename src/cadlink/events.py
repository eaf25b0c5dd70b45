"""The event schema: what the tracker sends, what the buffer holds, what the store keeps.

Pure data definitions, no I/O. Field names on the wire are camelCase (the public contract);
Python attributes are snake_case.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

# Event types every part of the product knows about; custom names are accepted too.
SEED_EVENT_TYPES: frozenset[str] = frozenset(
    {
        "page_view", "page_exit", "scroll_depth", "product_view", "product_hover",
        "product_click", "product_compare", "product_wishlist", "affiliate_click",
        "affiliate_hover", "copied_coupon", "shared_product", "search_query", "search_filter",
        "search_sort", "zero_results", "click", "hover", "focus", "blur", "form_start",
        "form_submit", "form_abandon", "session_start", "session_end", "heartbeat",
        "idle_start", "idle_end", "js_error", "api_error", "slow_page", "identify",
        "web_vitals", "outbound_click", "purchase",
    }
)  # fmt: skip

# Events that count as the visitor engaging (a session with one of these is not a bounce).
# `product_view` is not one: a shop's page sends it as it loads (`trackProductView`), so
# counting it would make every visit that lands on a product page engaged, and the bounce
# rate of a shop's most common landing pages would always read 0%.
ENGAGEMENT_EVENT_TYPES: frozenset[str] = SEED_EVENT_TYPES - {
    "page_view", "page_exit", "session_start", "session_end", "heartbeat", "idle_start",
    "idle_end", "js_error", "api_error", "slow_page", "identify", "web_vitals", "hover",
    "product_hover", "affiliate_hover", "focus", "blur", "product_view",
}  # fmt: skip

# Events that make a session "converted"; `revenue` comes from their `properties.revenue`.
CONVERSION_EVENT_TYPES: frozenset[str] = frozenset(
    {"affiliate_click", "purchase", "form_submit", "copied_coupon"}
)

Str64 = Annotated[str, msgspec.Meta(max_length=64)]
Str128 = Annotated[str, msgspec.Meta(max_length=128)]
Str512 = Annotated[str, msgspec.Meta(max_length=512)]
Url = Annotated[str, msgspec.Meta(max_length=2048)]
# Event names: a seed type or a custom name of these characters. Checked by the collect path
# (`valid_event_type`), not by msgspec: a `pattern` constraint runs a Python regex per event,
# which was a fifth of decoding a tracker's event.
EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
EVENT_TYPE_CHARS = "A-Za-z0-9_.:-"
_EVENT_TYPE_RE = re.compile(r"[A-Za-z0-9_.:\-]+")
Timestamp = Annotated[int, msgspec.Meta(ge=0, le=32_503_680_000_000)]  # ms, before year 3000


def valid_event_type(name: str) -> bool:
    """Whether `name` (1-64 characters, checked by the decoder) may name an event."""
    return name in SEED_EVENT_TYPES or _EVENT_TYPE_RE.fullmatch(name) is not None


class _EventFields(
    msgspec.Struct, rename="camel", omit_defaults=True, forbid_unknown_fields=False, gc=False
):
    """Every field of an event but `properties` (no reference cycles: not tracked by the GC)."""

    event_type: EventType
    site_id: Str64 | None = None
    event_id: Str64 | None = None
    timestamp: Timestamp | None = None
    session_id: Str128 | None = None
    visitor_id: Str128 | None = None
    user_id: Str128 | None = None
    consent: bool = False
    page_url: Url | None = None
    page_path: Url | None = None
    page_title: Str512 | None = None
    referrer: Url | None = None
    screen_resolution: Str64 | None = None
    viewport: Str64 | None = None
    utm_source: Str128 | None = None
    utm_medium: Str128 | None = None
    utm_campaign: Str128 | None = None
    utm_term: Str128 | None = None
    utm_content: Str128 | None = None


class IncomingEvent(
    _EventFields, rename="camel", omit_defaults=True, forbid_unknown_fields=False, gc=False
):
    """One event as the tracker sends it. Unknown fields (client device/geo claims) are ignored."""

    properties: dict[str, Any] | None = None


NO_PROPERTIES = msgspec.Raw(b"")


class CollectedEvent(
    _EventFields, rename="camel", omit_defaults=True, forbid_unknown_fields=False, gc=False
):
    """An event as the collect endpoint decodes it: `properties` stays the JSON text the client
    sent (once checked: `collect.py`), so it is neither built into Python objects nor encoded
    again on the request path. The buffer record it makes reads back as an `IncomingEvent`."""

    properties: msgspec.Raw = NO_PROPERTIES


class IncomingBatch(msgspec.Struct, rename="camel", forbid_unknown_fields=False, gc=False):
    """`{"events": [...], "siteId": ...}`: the batch form of a collect request."""

    events: list[CollectedEvent]
    site_id: Str64 | None = None


_ENVELOPE_KEYS = {
    "received_ms": "r",
    "site_id": "s",
    "anon_visitor": "v",
    "ip_prefix": "p",
    "user_agent": "u",
    "events": "e",
}


class _EnvelopeHead(msgspec.Struct, rename=_ENVELOPE_KEYS, gc=False):
    received_ms: int
    site_id: str
    anon_visitor: int  # keyed daily hash of site, IP and user agent (signed 64-bit)
    ip_prefix: str  # IPv4 /24 or IPv6 /48, e.g. "203.0.113.0"; "" when unknown
    user_agent: str


class Envelope(_EnvelopeHead, rename=_ENVELOPE_KEYS, gc=False):
    """What one accepted request puts in the durable buffer: one line of JSON.

    It holds no raw IP: the request path derives the anonymous visitor hash and a truncated
    network prefix (for geo lookup) and forgets the address. The events are the validated
    ones, re-encoded (known fields only, camelCase; `properties` as the client sent the
    object): the loader parses exactly what the request path checked.
    """

    events: list[IncomingEvent]


class CollectedEnvelope(_EnvelopeHead, rename=_ENVELOPE_KEYS, gc=False):
    """The collect endpoint's `Envelope`: the same record, written from `CollectedEvent`s."""

    events: list[CollectedEvent]


_envelope_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(Envelope)


def encode_envelope(envelope: Envelope) -> bytes:
    """The buffer record of `envelope`: its JSON and a newline (JSON escapes any inside)."""
    return _envelope_encoder.encode(envelope) + b"\n"


def encode_envelope_into(envelope: Envelope | CollectedEnvelope, buffer: bytearray) -> bytearray:
    """`encode_envelope` into `buffer` (replacing what it held), for a caller that reuses one
    buffer: no new object per record."""
    _envelope_encoder.encode_into(envelope, buffer)
    buffer.append(10)
    return buffer


def decode_envelope(record: bytes) -> Envelope:
    """The envelope of one buffer record (with or without its newline)."""
    return _envelope_decoder.decode(record)


# Columns of `analytics_events`, in storage order, with their portable type names.
# The event stores map these onto their own types.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("site_id", "text"),
    ("ts", "timestamp"),
    ("event_id", "text"),
    ("event_type", "text"),
    ("client_ts", "timestamp"),
    ("received_at", "timestamp"),
    ("session_id", "text"),
    ("visitor_id", "int64"),
    ("user_id", "text"),
    ("consent", "bool"),
    ("page_url", "text"),
    ("page_path", "text"),
    ("page_title", "text"),
    ("referrer", "text"),
    ("referrer_domain", "text"),
    ("source", "text"),
    ("channel", "text"),
    ("device_type", "text"),
    ("os", "text"),
    ("os_version", "text"),
    ("browser", "text"),
    ("browser_version", "text"),
    ("screen_resolution", "text"),
    ("viewport", "text"),
    ("country", "text"),
    ("region", "text"),
    ("city", "text"),
    ("utm_source", "text"),
    ("utm_medium", "text"),
    ("utm_campaign", "text"),
    ("utm_term", "text"),
    ("utm_content", "text"),
    ("properties", "json"),
)

EVENT_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in EVENT_COLUMNS)
