"""`properties` travels as the JSON text the client sent, and event names are checked in
Python: whatever the collect endpoint accepts must load, with the values it was sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from test_collect import UA, event

from cadlink.config import Settings
from cadlink.events import SEED_EVENT_TYPES, valid_event_type
from cadlink.ingest.collect import CollectHandler
from cadlink.ingest.collect_answers import Rejection
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.ingest.metrics import IngestMetrics
from cadlink.ingest.salts import SaltRing
from cadlink.ingest.sites import SiteDirectory, SiteInfo
from cadlink.pipeline.enrichment import Enricher
from cadlink_fixtures import Running

SITE = "site-props"


class _Records:
    """A buffer that keeps what it is given."""

    defers = False

    def __init__(self) -> None:
        self.records: list[bytes] = []

    def put(self, record: bytes | bytearray) -> None:
        self.records.append(bytes(record))

    defer = put

    def flush(self) -> None:
        pass


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(UserAgentParser(), GeoLocator())


def _handler(tmp_path_factory: pytest.TempPathFactory) -> tuple[CollectHandler, _Records]:
    sites = SiteDirectory()
    sites.replace([SiteInfo(SITE, "shop.example")])
    salts = SaltRing()
    salts.replace({datetime.now(UTC).date(): b"s" * 32})
    buffer = _Records()
    settings = Settings(data_dir=tmp_path_factory.mktemp("d"), rate_limit_per_minute=0)
    return CollectHandler(settings, sites, salts, buffer, IngestMetrics()), buffer  # type: ignore[arg-type]


def _accept(handler: CollectHandler, body: bytes) -> int:
    headers = {b"user-agent": UA["User-Agent"].encode()}
    return handler._accept("203.0.113.9", headers, body, None)


def _stored_properties(enricher: Enricher, record: bytes) -> list[Any]:
    """Load a buffer record as the loader does (DuckDB's JSON reader, on the record as it
    was written) and read back `properties` as stored."""
    enriched = enricher.enrich_records(record)
    stored = enriched.rows.column("properties").to_pylist()
    return [None if p is None else json.loads(p) for p in stored]


def test_properties_keep_their_values_and_null_means_none(
    tmp_path_factory: pytest.TempPathFactory, enricher: Enricher
) -> None:
    handler, buffer = _handler(tmp_path_factory)
    props = {"price": 129.99, "name": "Café “crème”", "emoji": "\U0001f600", "esc": "\u00e9",
             "nested": {"a": [1, None, True]}, "big": 123456789012345678901234567890}  # fmt: skip
    body = json.dumps(
        {"siteId": SITE, "events": [event(properties=props), event(properties=None), event()]}
    ).encode()
    assert _accept(handler, body) == 3
    [record] = buffer.records
    assert _stored_properties(enricher, record) == [props, None, None]
    # Escapes and non-ASCII text as the client wrote them.
    escaped = body.replace("Café".encode(), b"Caf\\u00e9")
    assert _accept(handler, escaped) == 3
    assert _stored_properties(enricher, buffer.records[-1])[0] == props
    spaced = body.replace(b'"properties": null', b'"properties": { \n }')
    assert _accept(handler, spaced) == 3
    assert _stored_properties(enricher, buffer.records[-1]) == [props, None, None]


@pytest.mark.parametrize(
    ("properties", "why", "field"),
    [
        (b"[1, 2]", "object", "events[1].properties"),
        (b'"text"', "object", "events[1].properties"),
        (b"5", "object", "events[1].properties"),
        (b'{"x": "\xff\xfe"}', "UTF-8", "events[1].properties"),  # DuckDB's reader refuses it
        # A lone surrogate (DuckDB's reader refuses it too): msgspec's parser already does.
        (b'{"x": "\\ud800"}', "JSON", None),
    ],
)
def test_properties_that_would_not_load_are_400(
    tmp_path_factory: pytest.TempPathFactory, properties: bytes, why: str, field: str | None
) -> None:
    handler, buffer = _handler(tmp_path_factory)
    good = json.dumps(event(eventType="click")).encode()
    bad = good[:-1] + b', "properties": ' + properties + b"}"
    body = b'{"siteId": "' + SITE.encode() + b'", "events": [' + good + b", " + bad + b"]}"
    with pytest.raises(Rejection) as info:
        _accept(handler, body)
    assert info.value.status == 400
    assert info.value.field == field
    assert why in info.value.message
    assert not buffer.records


@pytest.mark.parametrize("name", ["page view", "a/b", "x;DROP", "é", "a\nb"])
def test_event_names_outside_the_charset_are_400(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    handler, buffer = _handler(tmp_path_factory)
    body = json.dumps({"siteId": SITE, "events": [event(), event(eventType=name)]}).encode()
    with pytest.raises(Rejection) as info:
        _accept(handler, body)
    assert info.value.field == "events[1].eventType"
    assert not buffer.records


def test_custom_event_names_in_the_charset_are_accepted() -> None:
    assert all(valid_event_type(t) for t in SEED_EVENT_TYPES)
    assert valid_event_type("signup.completed:v2-b_1")
    assert not valid_event_type("signup completed")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False,
    allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
    children, max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    props=st.dictionaries(st.text(max_size=10), _json_values, max_size=6), ascii_only=st.booleans()
)
def test_whatever_is_accepted_loads_with_the_values_sent(
    tmp_path_factory: pytest.TempPathFactory,
    enricher: Enricher,
    props: dict[str, Any],
    ascii_only: bool,
) -> None:
    handler, buffer = _handler(tmp_path_factory)
    body = json.dumps(
        {"siteId": SITE, "events": [event(properties=props)]}, ensure_ascii=ascii_only
    ).encode("utf-8", "surrogatepass")
    try:
        _accept(handler, body)
    except Rejection:
        # Only what DuckDB could not read may be refused: text with lone surrogates.
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(props, ensure_ascii=False))
        return
    [stored] = _stored_properties(enricher, buffer.records[0])
    assert stored == (props or None)  # an empty object is stored as none


def test_collect_end_to_end_stores_raw_properties(running: Running) -> None:
    props = {"productId": "sku-1", "price": 9.5, "tags": ["a", "b"], "title": "Crème brûlée"}
    ev = event(siteId=running.site_id, eventType="product_view", properties=props)
    r = running.client.post("/api/v1/collect", json=ev, headers=UA)
    assert r.status_code == 204, r.text
    [stored] = running.stored(1)
    assert stored["properties"] == props
