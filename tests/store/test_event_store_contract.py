"""The event store contract, run on every store: DuckDB (embedded) and PostgreSQL.

Sessionization (gaps, late and out-of-order events, idempotence), exactly-once bookkeeping,
listings and round trips must give the same answers on each store; the last test loads the
same random traffic into both and compares everything they return.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest

from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.ingest.enrich.useragent import UserAgentParser
from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events.base import (
    EVENT_ARROW_SCHEMA,
    ONCE,
    AlreadyStored,
    EventStore,
    StoreBatch,
    open_event_store,
)

SITE = "site-1"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
_counter = iter(range(1_000_000))


def ms(minutes: float) -> int:
    return int((T0 + timedelta(minutes=minutes)).timestamp() * 1000)


def ev(minutes: float, kind: str = "page_view", path: str = "/", **props: Any) -> IncomingEvent:
    return IncomingEvent(
        event_type=kind,
        event_id=f"e{next(_counter)}",
        timestamp=ms(minutes),
        page_url=f"https://shop.example{path}",
        properties=props or None,
    )


def envelope(visitor: int, *events: IncomingEvent) -> Envelope:
    # received_ms equals the newest event so the loader believes the client timestamps
    received = max(e.timestamp or 0 for e in events)
    return Envelope(received, SITE, visitor, "", UA, list(events))


def store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "duckdb":
        return f"duckdb:///{tmp_path / f'events-{next(_counter)}.duckdb'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@contextlib.contextmanager
def windowed_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, hours: int
) -> Iterator[EventStore]:
    """A store of `kind` whose duplicate check looks `hours` around each event time."""
    store = open_event_store(store_url(kind, request, tmp_path), 30, dedup_window_hours=hours)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def event_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """An empty event store of each kind (30-minute session timeout, 72-hour dedup window)."""
    store = open_event_store(store_url(request.param, request, tmp_path), 30, 72)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(UserAgentParser(), GeoLocator(country_path=None), late_event_hours=24 * 3650)


def load(store: EventStore, enricher: Enricher, *envs: Envelope) -> int:
    """Store envelopes as the loader does: their buffer records, staged by the store."""
    records = b"".join(encode_envelope(e) for e in envs)
    return store.load(records, {}, enricher.staging).stored


def write(store: EventStore, enricher: Enricher, *envs: Envelope) -> int:
    """Store envelopes enriched to Arrow first (the path of imports and other tools)."""
    e = enricher.enrich(list(envs))
    return store.write(StoreBatch(e.rows, e.drops))


def raw_rows(*events: tuple[str, datetime], received_at: datetime | None = None) -> pa.Table:
    """Stored rows built directly: `(event_id, ts)` page views of visitor 1."""
    base: dict[str, Any] = dict.fromkeys(EVENT_ARROW_SCHEMA.names)
    base |= {"site_id": SITE, "event_type": "page_view", "visitor_id": 1, "consent": False}
    table = [base | {"event_id": i, "ts": ts, "received_at": received_at or ts} for i, ts in events]
    return pa.Table.from_pylist(table, schema=EVENT_ARROW_SCHEMA)


def sessions(store: EventStore) -> list[dict[str, Any]]:
    return store.list_sessions(SITE, T0 - timedelta(days=1), T0 + timedelta(days=2), 1000)


def test_gap_longer_than_timeout_starts_a_new_session(
    event_store: EventStore, enricher: Enricher
) -> None:
    load(
        event_store,
        enricher,
        envelope(1, ev(0, path="/a"), ev(10, path="/b"), ev(29, "heartbeat", "/b")),
    )
    load(event_store, enricher, envelope(1, ev(70, path="/c")))
    rows = sessions(event_store)
    assert [(r["page_views"], r["events"]) for r in rows] == [(2, 3), (1, 1)]
    first = rows[0]
    assert first["landing_page"] == "/a"
    assert first["exit_page"] == "/b"
    assert first["duration_s"] == 29 * 60  # the heartbeat extends the session
    assert first["is_bounce"] is False
    assert rows[1]["is_bounce"] is True


def test_late_event_bridging_two_sessions_merges_them(
    event_store: EventStore, enricher: Enricher
) -> None:
    load(event_store, enricher, envelope(1, ev(0, path="/a")), envelope(1, ev(50, path="/c")))
    assert len(sessions(event_store)) == 2
    load(event_store, enricher, envelope(1, ev(25, path="/b")))  # late, within 30 min of both
    [merged] = sessions(event_store)
    assert merged["page_views"] == 3
    assert merged["landing_page"] == "/a"
    assert merged["exit_page"] == "/c"
    assert merged["duration_s"] == 50 * 60


def test_out_of_order_event_earlier_than_session_start_becomes_landing(
    event_store: EventStore, enricher: Enricher
) -> None:
    load(event_store, enricher, envelope(1, ev(10, path="/second")))
    load(event_store, enricher, envelope(1, ev(0, path="/first")))
    [row] = sessions(event_store)
    assert row["landing_page"] == "/first"
    assert row["started_at"] == T0


def _from(minutes: float, kind: str, path: str, referrer: str | None) -> IncomingEvent:
    event = ev(minutes, kind, path)
    event.referrer = referrer
    return event


_ATTRIBUTION = ("source", "channel", "referrer", "utm_source", "utm_medium", "utm_campaign")


@pytest.mark.parametrize("batches", ["one", "two"])
def test_a_sessions_attribution_comes_whole_from_its_landing_page_view(
    event_store: EventStore, enricher: Enricher, batches: str
) -> None:
    # Visitor 1 lands directly, then opens a newsletter link; visitor 2 sends a heartbeat
    # (an old tab) before landing from Google. Each column's first non-empty value mixed
    # them: "Direct" with the newsletter's referrer and tags; "Direct" with Google's referrer.
    mail = "https://mail.google.com/"
    first = [
        envelope(1, _from(0, "page_view", "/d1", None)),
        envelope(2, _from(0, "heartbeat", "/old", None)),
    ]
    second = [
        envelope(1, _from(1, "page_view", "/d2?utm_source=newsletter&utm_medium=email&utm_campaign=x",
                          mail)),
        envelope(2, _from(1, "page_view", "/from-google", "https://www.google.com/")),
    ]  # fmt: skip
    if batches == "one":
        load(event_store, enricher, *first, *second)
    else:
        load(event_store, enricher, *first)
        load(event_store, enricher, *second)
    rows = {r["visitor_id"]: r for r in sessions(event_store)}
    direct, google = rows[1], rows[2]
    assert [direct[c] for c in _ATTRIBUTION] == ["Direct", "direct", None, None, None, None]
    assert [google[c] for c in _ATTRIBUTION] == [
        "Google", "search", "https://www.google.com/", None, None, None
    ]  # fmt: skip
    assert google["landing_page"] == "/from-google"
    kept = sessions(event_store)
    event_store.rebuild_sessions(SITE)
    assert sessions(event_store) == kept


def test_visitors_are_sessionized_independently(
    event_store: EventStore, enricher: Enricher
) -> None:
    load(event_store, enricher, envelope(1, ev(0)), envelope(2, ev(5)), envelope(1, ev(100)))
    assert sorted((r["visitor_id"], r["page_views"]) for r in sessions(event_store)) == [
        (1, 1),
        (1, 1),
        (2, 1),
    ]


def test_engagement_and_conversion(event_store: EventStore, enricher: Enricher) -> None:
    load(
        event_store,
        enricher,
        envelope(1, ev(0, path="/p"), ev(0.1, "affiliate_click", "/p", revenue=12.5)),
        envelope(2, ev(0, path="/q"), ev(0.05, "scroll_depth", "/q", depth=50)),
        envelope(3, ev(0, path="/r"), ev(0.5, "heartbeat", "/r")),
        envelope(4, ev(0, path="/s"), ev(0.2, "purchase", "/s", revenue="7.25")),
        envelope(5, ev(0, path="/t"), ev(0.2, "purchase", "/t", revenue="n/a")),
        envelope(6, ev(0, path="/u"), ev(0.02, "product_view", "/u"), ev(0.08, "page_exit", "/u")),
    )
    rows = {r["visitor_id"]: r for r in sessions(event_store)}
    assert rows[1]["converted"] is True
    assert rows[1]["revenue"] == 12.5
    assert rows[1]["is_bounce"] is False
    assert rows[2]["is_bounce"] is False  # one page, but engaged (scrolled)
    assert rows[2]["converted"] is False
    assert rows[3]["is_bounce"] is False  # one page, 30 s on it
    assert rows[4]["revenue"] == 7.25  # a numeric string counts
    assert (rows[5]["converted"], rows[5]["revenue"]) == (True, 0.0)  # a malformed one does not
    # The product page reported its product as it loaded; the visitor left within 5 s.
    assert rows[6]["is_bounce"] is True


def test_replaying_a_batch_changes_nothing(event_store: EventStore, enricher: Enricher) -> None:
    batch = [envelope(1, ev(0), ev(3), ev(6)), envelope(2, ev(1))]
    assert load(event_store, enricher, *batch) == 4
    before = sessions(event_store)
    assert load(event_store, enricher, *batch) == 0
    assert sessions(event_store) == before
    assert event_store.count_events(SITE) == 4


def test_duplicates_inside_a_batch_count_once(event_store: EventStore, enricher: Enricher) -> None:
    first = ev(0)
    assert load(event_store, enricher, envelope(1, first, ev(1)), envelope(1, first)) == 2
    assert event_store.count_events() == 2


def test_a_retry_within_the_dedup_window_counts_once_whatever_its_timestamp(
    event_store: EventStore, enricher: Enricher
) -> None:
    first = ev(0)
    assert load(event_store, enricher, envelope(1, first)) == 1
    # Resent two hours later with a clock the loader does not believe: another ts, same id.
    late = Envelope(ms(120), SITE, 1, "", UA, [first])
    assert load(event_store, enricher, late) == 0
    assert event_store.count_events() == 1


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_repeat_is_found_within_the_dedup_window_of_its_event_time(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with windowed_store(kind, request, tmp_path, 1) as store:
        assert store.write(StoreBatch(raw_rows(("a", T0), ("b", T0)))) == 2
        later = T0 + timedelta(hours=5)
        # Replayed five hours later, unchanged (same event time): still the same event.
        assert store.write(StoreBatch(raw_rows(("a", T0), received_at=later))) == 0
        # The same id five hours later in event time is outside the window: a new event.
        assert store.write(StoreBatch(raw_rows(("b", later), received_at=later))) == 1
        assert store.count_events(SITE) == 3


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_dedup_window_is_each_events_own_not_the_batchs_span(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with windowed_store(kind, request, tmp_path, 1) as store:
        mid, now = T0 + timedelta(minutes=150), T0 + timedelta(hours=5)
        assert store.write(StoreBatch(raw_rows(("a", mid), ("b", T0), ("c", now)))) == 3
        # One batch: a late repeat of b, a current repeat of c, and an "a" 2.5 hours from the
        # stored one. Each is checked within an hour of its own time: b and c are repeats,
        # "a" is a new event, though the batch's span (T0 to now) holds the stored "a".
        batch = raw_rows(("b", T0), ("a", now), ("c", now), received_at=now)
        assert store.write(StoreBatch(batch)) == 1
        assert store.count_events(SITE) == 4


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_with_no_dedup_window_a_resend_with_its_timestamp_is_still_found(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with windowed_store(kind, request, tmp_path, 0) as store:
        assert store.write(StoreBatch(raw_rows(("a", T0)))) == 1
        later = T0 + timedelta(hours=30)
        assert store.write(StoreBatch(raw_rows(("a", T0), received_at=later))) == 0
        # Ten seconds off is another event when the window is zero.
        assert store.write(StoreBatch(raw_rows(("a", T0 + timedelta(seconds=10))))) == 1
        assert store.count_events(SITE) == 2


def test_appended_history_gets_the_sessions_incremental_loading_gives(
    event_store: EventStore, enricher: Enricher
) -> None:
    traffic = _random_traffic(seed=5, retries=False)
    tables = [enricher.enrich(batch).rows for batch in traffic]
    for table in tables:
        event_store.write(StoreBatch(table))
    for table in tables:
        sites = pa.array(["site-2"] * table.num_rows)
        event_store.append(StoreBatch(table.set_column(0, "site_id", sites)))
    assert event_store.rebuild_sessions("site-2") == len(sessions(event_store))
    lo, hi = T0 - timedelta(days=1), T0 + timedelta(days=2)
    appended = event_store.list_sessions("site-2", lo, hi, 1000)
    assert [r | {"site_id": SITE} for r in appended] == sessions(event_store)
    assert event_store.count_events("site-2") == event_store.count_events(SITE)


def _ordered_traffic(seed: int) -> list[list[Envelope]]:
    """Visits arriving roughly in order, as in production: most batches continue sessions
    stored before them; some events come late, some share a timestamp or sit exactly one
    timeout apart, and conversions with revenue fall on either side of a batch boundary."""
    rng = random.Random(seed)
    kinds = ["page_view"] * 5 + ["scroll_depth", "heartbeat", "click", "purchase", "identify"]
    timeline: list[tuple[float, int, IncomingEvent]] = []
    for visitor in range(1, 30):
        t = rng.uniform(0, 90)
        for _ in range(rng.randint(1, 14)):
            kind = rng.choice(kinds)
            props = {"revenue": rng.choice([9.99, 0.1, 0.2, "3.30"])} if kind == "purchase" else {}
            event = ev(t, kind, rng.choice(["/", "/a", "/b", "/c"]), **props)
            if kind == "identify":
                event.user_id = f"user-{visitor}-{rng.randint(1, 2)}"
            if rng.random() < 0.2:
                event.referrer = rng.choice(["https://www.google.com/", "https://x.example/"])
            if rng.random() < 0.1:
                event.page_url = None
            timeline.append((t, visitor, event))
            t += rng.choice([0, 0.004, 0.05, 0.5, 5, 29.5, 30, 30.5, 45])
    timeline.sort(key=lambda item: item[0])
    batches: list[list[tuple[float, int, IncomingEvent]]] = []
    while timeline:
        size = rng.randint(2, 25)
        batches.append(timeline[:size])
        timeline = timeline[size:]
    for i in range(len(batches) - 1):  # a few events arrive one or more batches late
        for item in list(batches[i]):
            if rng.random() < 0.08:
                batches[i].remove(item)
                batches[rng.randint(i + 1, len(batches) - 1)].append(item)
    return [[envelope(visitor, event) for _, visitor, event in batch] for batch in batches]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_sessions_kept_batch_by_batch_equal_a_rebuild_from_the_events(
    event_store: EventStore, enricher: Enricher, seed: int
) -> None:
    traffic = _ordered_traffic(seed)
    for batch in traffic:
        table = enricher.enrich(batch).rows
        event_store.write(StoreBatch(table))
        event_store.append(
            StoreBatch(table.set_column(0, "site_id", pa.array(["site-2"] * len(table))))
        )
    lo, hi = T0 - timedelta(days=1), T0 + timedelta(days=2)
    kept = sessions(event_store)
    event_store.rebuild_sessions("site-2")
    rebuilt = event_store.list_sessions("site-2", lo, hi, 1000)
    assert len(kept) > 20
    assert kept == [r | {"site_id": SITE} for r in rebuilt]


def test_revenue_continued_in_a_later_batch_sums_as_a_rebuild_does(
    event_store: EventStore, enricher: Enricher
) -> None:
    # (0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3) in floating point: the session must hold the sum
    # a rebuild from its events gives, not the sum of two partial sums.
    first = [envelope(1, ev(0, "purchase", revenue=0.1))]
    later = [envelope(1, ev(1, "purchase", revenue=0.2), ev(2, "purchase", revenue=0.3))]
    for batch in (first, later):
        table = enricher.enrich(batch).rows
        event_store.write(StoreBatch(table))
        event_store.append(
            StoreBatch(table.set_column(0, "site_id", pa.array(["site-2"] * len(table))))
        )
    event_store.rebuild_sessions("site-2")
    lo, hi = T0 - timedelta(days=1), T0 + timedelta(days=2)
    rebuilt = event_store.list_sessions("site-2", lo, hi, 10)
    assert [s["revenue"] for s in sessions(event_store)] == [rebuilt[0]["revenue"]]


def test_positions_and_drops_commit_with_the_rows(
    event_store: EventStore, enricher: Enricher
) -> None:
    e = enricher.enrich([envelope(1, ev(0))])
    day = T0.date()
    event_store.write(StoreBatch(e.rows, {(SITE, day, "crawler"): 2}, {"seg-a": 100}))
    event_store.write(StoreBatch(e.rows, {(SITE, day, "crawler"): 1}, {"seg-a": 200, "seg-b": 5}))
    assert event_store.positions() == {"seg-a": 200, "seg-b": 5}
    assert event_store.dropped(SITE, day, day) == [{"day": day, "reason": "crawler", "count": 3}]
    event_store.forget_positions(["seg-a"])
    assert event_store.positions() == {"seg-b": 5}
    # An empty batch still records its positions (a segment holding only bots).
    event_store.write(StoreBatch(e.rows.slice(0, 0), {}, {"seg-c": 7}))
    assert event_store.positions() == {"seg-b": 5, "seg-c": 7}
    assert event_store.count_events() == 1


def test_event_listing_pages_with_a_cursor(event_store: EventStore, enricher: Enricher) -> None:
    load(event_store, enricher, envelope(1, *[ev(i) for i in range(25)]))
    lo, hi = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
    seen: list[str] = []
    after = None
    while True:
        page = event_store.list_events(SITE, lo, hi, 10, after)
        seen.extend(r["event_id"] for r in page.rows)
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert len(seen) == 25
    assert len(set(seen)) == 25
    assert event_store.list_events("other-site", lo, hi, 10).rows == []


def test_streams_rows_in_time_order_as_arrow_batches(
    event_store: EventStore, enricher: Enricher
) -> None:
    load(event_store, enricher, envelope(1, *[ev(i * 7) for i in range(25)]), envelope(2, ev(3)))
    lo, hi = T0 - timedelta(hours=1), T0 + timedelta(hours=4)
    schema, batches = event_store.stream("events", SITE, lo, hi, batch_rows=10)
    assert schema.names == EVENT_ARROW_SCHEMA.names
    streamed = [row for batch in batches for row in batch.to_pylist()]
    assert streamed == event_store.list_events(SITE, lo, hi, 100).rows
    schema, batches = event_store.stream("sessions", SITE, lo, hi)
    streamed = [row for batch in batches for row in batch.to_pylist()]
    assert streamed == event_store.list_sessions(SITE, lo, hi, 100)
    assert len(streamed) == 2
    assert schema.names == list(streamed[0])
    with pytest.raises(ValueError, match="cannot stream"):
        event_store.stream("users", SITE, lo, hi)


def test_rows_round_trip_with_their_python_types(event_store: EventStore) -> None:
    """Awkward text survives the load path (COPY on PostgreSQL) exactly, NULL apart from ''."""
    tricky = 'a "quoted", comma\nnew line\ttab \\ backslash é 漢字 🙂'
    props = msgspec.json.encode({"note": tricky, "n": [1, 2.5, None, True]}).decode()
    row: dict[str, Any] = dict.fromkeys(EVENT_ARROW_SCHEMA.names)
    row |= {
        "site_id": SITE,
        "ts": T0,
        "event_id": "x1",
        "event_type": "custom:thing",
        "received_at": T0,
        "visitor_id": -(2**63),
        "consent": True,
        "page_path": tricky,
        "page_title": "",
        "properties": props,
    }
    event_store.write(StoreBatch(pa.Table.from_pylist([row], schema=EVENT_ARROW_SCHEMA)))
    [got] = event_store.list_events(SITE, T0, T0 + timedelta(seconds=1), 10).rows
    assert list(got) == EVENT_ARROW_SCHEMA.names
    same = {k for k in row if k not in ("ts", "received_at", "properties")}
    assert {k: got[k] for k in same} == {k: row[k] for k in same}
    assert got["ts"] == got["received_at"] == T0
    assert got["ts"].utcoffset() == timedelta(0)
    # A compact JSON string, as stored; PostgreSQL's jsonb may order the keys differently.
    assert isinstance(got["properties"], str)
    assert msgspec.json.decode(got["properties"]) == msgspec.json.decode(props)
    assert len(got["properties"]) == len(props)
    assert got["page_title"] == ""
    assert got["referrer"] is None
    [session] = sessions(event_store)
    assert isinstance(session["duration_s"], float)
    assert isinstance(session["revenue"], float)
    assert isinstance(session["page_views"], int)


def test_fetch_returns_plain_python_numbers(event_store: EventStore, enricher: Enricher) -> None:
    load(event_store, enricher, envelope(1, ev(0)), envelope(2, ev(1)))
    [row] = event_store.fetch(
        "SELECT count(*) AS n, sum(visitor_id) AS total, avg(visitor_id) AS mean, "
        "sum(duration_s) AS seconds FROM sessions",
        [],
    )
    assert row == {"n": 2, "total": 3, "mean": 1.5, "seconds": 0.0}
    assert [type(v) for v in row.values()] == [int, int, float, float]


def _random_traffic(seed: int, *, retries: bool = True) -> list[list[Envelope]]:
    """Batches of random visits: gaps around the timeout, late events, retries, conversions."""
    rng = random.Random(seed)
    batches: list[list[Envelope]] = []
    sent: list[tuple[int, IncomingEvent]] = []
    paths = ["/", "/a", "/b", "/products/1", "/products/2", "/checkout"]
    kinds = ["page_view"] * 6 + ["scroll_depth", "heartbeat", "affiliate_click", "purchase"]
    for _ in range(8):
        batch = []
        for _ in range(rng.randint(5, 15)):
            visitor = rng.randint(1, 12)
            start = rng.uniform(0, 600)
            events = []
            for i in range(rng.randint(1, 5)):
                kind = rng.choice(kinds)
                props = {"revenue": round(rng.uniform(1, 90), 2)} if kind == "purchase" else {}
                minutes = start + i * rng.choice([0.5, 5, 29, 31])
                events.append(ev(minutes, kind, rng.choice(paths), **props))
                sent.append((visitor, events[-1]))
            batch.append(envelope(visitor, *events))
        for visitor, old in rng.sample(sent, k=min(3, len(sent))):  # retries of earlier events
            if retries:
                batch.append(envelope(visitor, old))
        batches.append(batch)
    return batches


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [7, 11, 23])
def test_both_stores_give_identical_answers(
    seed: int, enricher: Enricher, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    stores = [open_event_store(store_url(k, request, tmp_path), 30) for k in ("duckdb", "postgres")]
    try:
        answers, traffic = [], _random_traffic(seed)
        for store in stores:
            counts = [load(store, enricher, *batch) for batch in traffic]
            events = store.list_events(SITE, T0 - timedelta(days=1), T0 + timedelta(days=2), 10**4)
            for row in events.rows:
                row["properties"] = row["properties"] and msgspec.json.decode(row["properties"])
            answers.append((counts, events, sessions(store), store.count_events()))
        assert answers[0] == answers[1]
        assert len(answers[0][2]) > 10
    finally:
        for store in stores:
            store.close()


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("seed", [5, 13])
def test_arrow_writes_and_loaded_records_store_the_same(
    kind: str, seed: int, enricher: Enricher, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`write` (Arrow rows) and `load` (buffer records) are two ways into one store: the
    same traffic gives the same events, sessions and counts either way."""
    traffic = _random_traffic(seed)
    answers = []
    for n, into in enumerate((load, write)):
        with contextlib.ExitStack() as stack:
            if kind == "postgres":
                url = stack.enter_context(request.getfixturevalue("postgres_databases")())
            else:
                url = f"duckdb:///{tmp_path / f'{n}.duckdb'}"
            store = open_event_store(url, 30)
            stack.callback(store.close)
            counts = [into(store, enricher, *batch) for batch in traffic]
            events = store.list_events(
                SITE, T0 - timedelta(days=1), T0 + timedelta(days=2), 10**4
            ).rows
            answers.append((counts, events, sessions(store)))
    assert answers[0] == answers[1]
    assert sum(answers[0][0]) > 100


def test_loaded_records_commit_their_positions_drops_and_dead_letters(
    event_store: EventStore, enricher: Enricher
) -> None:
    bot = Envelope(ms(1), SITE, 9, "", "curl/8.5.0", [ev(1), ev(1.5)])
    records = encode_envelope(envelope(1, ev(0))) + encode_envelope(bot)
    rejected = [(b'{"not": "an envelope"}', "undecodable: why")]
    loaded = event_store.load(records, {"seg-a": len(records)}, enricher.staging, rejected)
    assert (loaded.stored, loaded.staged.records, loaded.staged.events) == (1, 2, 3)
    day = T0.date()
    assert loaded.staged.drops == {(SITE, day, "http_client"): 2}
    assert event_store.dropped(SITE, day, day) == [
        {"day": day, "reason": "http_client", "count": 2}
    ]
    assert event_store.positions() == {"seg-a": len(records)}
    assert [bytes(d["payload"]) for d in event_store.dead_letters()] == [rejected[0][0]]
    # Nothing but positions (a segment that held only a torn tail).
    assert event_store.load(b"", {"seg-b": 3}, enricher.staging).stored == 0
    assert event_store.positions() == {"seg-a": len(records), "seg-b": 3}
    assert event_store.count_events() == 1


def test_records_that_are_not_envelopes_fail_the_batch(
    event_store: EventStore, enricher: Enricher
) -> None:
    """A line that parses but is not an envelope must not vanish (the loader then keeps it as
    a dead letter): staging refuses the batch, and nothing of it is stored."""
    records = encode_envelope(envelope(1, ev(0))) + b'{"not": "an envelope"}\n'
    with pytest.raises(ValueError, match="not envelopes"):
        event_store.load(records, {"seg-a": len(records)}, enricher.staging)
    assert event_store.count_events() == 0 and event_store.positions() == {}


def test_dead_letters_are_kept_with_the_batch_that_met_them(event_store: EventStore) -> None:
    rejected = [(b"\x81\xa3not\xa2an", "undecodable: expected an array"), (b"\x00" * 3, "why")]
    rows = raw_rows(("d-1", T0))
    assert event_store.write(StoreBatch(rows, {}, {"seg-1": 42}, rejected)) == 1
    letters = event_store.dead_letters()
    assert [(bytes(d["payload"]), d["error"]) for d in letters] == rejected
    assert all(d["stored_at"] is not None for d in letters)
    assert event_store.positions() == {"seg-1": 42}


def test_a_load_whose_once_markers_are_committed_writes_nothing(
    event_store: EventStore, enricher: Enricher
) -> None:
    """Positions of value 0 are insert-once markers (a queue's entries): a second load with
    one of them raises `AlreadyStored` and writes nothing, not even events without ids. Other
    positions (the spool's offsets) move on as before."""
    no_id = IncomingEvent(event_type="page_view", timestamp=ms(0), page_url="https://shop.example/")
    record = encode_envelope(envelope(1, no_id))
    assert event_store.load(record, {"q:1-0": ONCE, "q:2-0": ONCE}, enricher.staging).stored == 1
    with pytest.raises(AlreadyStored) as refused:
        event_store.load(record, {"q:2-0": ONCE, "q:3-0": ONCE}, enricher.staging)
    assert refused.value.keys == ["q:2-0"]
    assert event_store.count_events(SITE) == 1  # the id-less event was not stored again
    assert "q:3-0" not in event_store.positions()  # rolled back with the rest
    seg = "00000000000000000001-1-000001.spool"
    event_store.load(encode_envelope(envelope(2, ev(1))), {seg: 100}, enricher.staging)
    event_store.load(encode_envelope(envelope(3, ev(2))), {seg: 200}, enricher.staging)
    assert event_store.positions()[seg] == 200
    assert event_store.count_events(SITE) == 3
