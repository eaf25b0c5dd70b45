"""A data subject's rows, found and erased, on every event store (DuckDB and PostgreSQL):
store/events/subjects.py and `EventStore.erase_visitors`."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.identity import consented_visitor_id
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events import subjects
from cadlink.store.events.base import EventStore, open_event_store

SITE, OTHER_SITE = "site-1", "site-2"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
ALICE_PHONE, ALICE_LAPTOP, BOB = 11, 12, 13  # anonymous visitor ids
_ids = itertools.count()


def ev(
    minutes: float, kind: str = "page_view", user: str | None = None, **kw: Any
) -> IncomingEvent:
    return IncomingEvent(
        event_type=kind,
        event_id=f"e{next(_ids)}",
        timestamp=int((T0 + timedelta(minutes=minutes)).timestamp() * 1000),
        page_url="https://shop.example/p/1",
        user_id=user,
        **kw,
    )


def envelope(site: str, visitor: int, *events: IncomingEvent) -> Envelope:
    received = max(e.timestamp or 0 for e in events)
    return Envelope(received, site, visitor, "", UA, list(events))


def product(minutes: float, user: str | None = None, kind: str = "product_view") -> IncomingEvent:
    props = {"productId": "sku-1", "name": "Lamp", "price": 20, "currency": "EUR", "revenue": 20}
    return ev(minutes, kind, user, properties=props)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'events.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_url")
    s = open_event_store(url, 30, 72)
    enricher = Enricher(
        UserAgentParser(), GeoLocator(country_path=None), late_event_hours=24 * 3650
    )
    # Alice browses on her phone (identified after two events) and, later, on her laptop;
    # Bob is someone else; the other site has a visitor with Alice's phone's id.
    envelopes = [
        envelope(SITE, ALICE_PHONE, ev(0), product(1), ev(2, "identify", "alice"), ev(3, user="alice"),
                 product(4, "alice", "affiliate_click")),
        envelope(SITE, ALICE_LAPTOP, ev(600, user="alice"), product(601, "alice", "purchase")),
        envelope(SITE, BOB, ev(1), product(2), ev(3)),
        envelope(OTHER_SITE, ALICE_PHONE, ev(0), product(1)),
        envelope(
            SITE, 99, ev(700, consent=True, visitor_id="client-vid"), ev(701, consent=True, visitor_id="client-vid")
        ),
    ]  # fmt: skip
    s.load(b"".join(encode_envelope(e) for e in envelopes), {}, enricher.staging)
    try:
        yield s
    finally:
        s.close()


def counts(store: EventStore, site: str, visitor: int) -> dict[str, int]:
    """Rows of `visitor` in every table that holds visitor rows."""
    mark = "?" if store.engine == "duckdb" else "%s"
    out = {}
    for table in subjects.TABLES:
        sql = f"SELECT count(*) AS n FROM {table} WHERE site_id = {mark} AND visitor_id = {mark}"
        out[table] = int(store.fetch(sql, [site, visitor])[0]["n"])
    return out


def test_a_user_id_finds_every_visitor_id_that_carried_it(store: EventStore) -> None:
    assert subjects.visitors(store, SITE, ["alice"], []) == sorted([ALICE_PHONE, ALICE_LAPTOP])
    assert subjects.visitors(store, SITE, ["nobody"], []) == []
    # Given ids count only where the site has rows of them.
    assert subjects.visitors(store, SITE, [], [BOB, 404]) == [BOB]
    assert subjects.user_ids(store, SITE, [ALICE_PHONE, BOB]) == ["alice"]
    assert subjects.user_ids(store, SITE, [BOB]) == []
    consented = consented_visitor_id(SITE, "client-vid")
    assert subjects.visitors(store, SITE, [], [consented]) == [consented]


def test_the_events_of_visitors_come_in_time_order_a_page_at_a_time(store: EventStore) -> None:
    ids = [ALICE_PHONE, ALICE_LAPTOP]
    paged = list(subjects.events(store, SITE, ids, page_rows=2))
    whole = list(subjects.events(store, SITE, ids))
    assert [r["event_id"] for r in paged] == [r["event_id"] for r in whole]
    assert len(whole) == 7  # the two events before `identify` included
    assert [r["ts"] for r in whole] == sorted(r["ts"] for r in whole)
    assert {r["visitor_id"] for r in whole} == set(ids)
    assert [r["landing_page"] for r in subjects.sessions(store, SITE, ids)] == ["/p/1"] * 2
    assert "last_event_id" not in subjects.sessions(store, SITE, ids)[0]
    assert list(subjects.events(store, SITE, [])) == []


def test_erasing_visitors_deletes_their_rows_in_every_table_and_nothing_else(
    store: EventStore,
) -> None:
    bob, elsewhere = counts(store, SITE, BOB), counts(store, OTHER_SITE, ALICE_PHONE)
    before = {v: counts(store, SITE, v) for v in (ALICE_PHONE, ALICE_LAPTOP)}
    # Every table holds some of Alice's rows, so the test covers each of them.
    assert all(before[ALICE_PHONE][t] + before[ALICE_LAPTOP][t] > 0 for t in subjects.TABLES)
    deleted = store.erase_visitors(SITE, [ALICE_PHONE, ALICE_LAPTOP])
    assert deleted == {t: before[ALICE_PHONE][t] + before[ALICE_LAPTOP][t] for t in subjects.TABLES}
    for visitor in (ALICE_PHONE, ALICE_LAPTOP):
        assert counts(store, SITE, visitor) == dict.fromkeys(subjects.TABLES, 0)
    assert counts(store, SITE, BOB) == bob
    assert counts(store, OTHER_SITE, ALICE_PHONE) == elsewhere
    assert subjects.visitors(store, SITE, ["alice"], []) == []
    assert store.erase_visitors(SITE, []) == dict.fromkeys(subjects.TABLES, 0)
