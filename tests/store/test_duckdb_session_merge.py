"""A visitor's new events that follow its stored session are merged into that session's row
in place (an update of the columns a merge changes), and the row equals a rebuild from the
events, also where the new events bring the first values the stored part lacked."""

from __future__ import annotations

from typing import Any

from session_upkeep import T0_MS, UA, load_both, sessions_of

from cadlink.events import Envelope, IncomingEvent
from cadlink.pipeline.enrichment import Enricher
from cadlink.store.events.duckdb_sessions import (
    ATTRIBUTION_COLUMNS,
    FIRST_COLUMNS,
    MERGED_COLUMNS,
)
from cadlink.store.events.duckdb_store import DuckDBEventStore


def _load(store: DuckDBEventStore, enricher: Enricher, second: int, **event: Any) -> None:
    """One event of visitor 7 at T0 + `second` (session_upkeep.load_both)."""
    ms = T0_MS + second * 1000
    incoming = IncomingEvent(event_id=f"e{second:04d}", timestamp=ms, **event)
    load_both(store, enricher, [Envelope(ms, "site-1", 7, "", UA, [incoming])])


def _row_ids(store: DuckDBEventStore) -> list[int]:
    rows = store._con.execute(
        "SELECT rowid FROM sessions WHERE site_id = 'site-1' ORDER BY started_at"
    ).fetchall()
    return [int(r[0]) for r in rows]


def test_a_merge_updates_the_stored_row_and_fills_in_first_values(
    store: DuckDBEventStore, enricher: Enricher
) -> None:
    # The session starts with an event that has no page view, referrer, UTM or screen.
    _load(store, enricher, 0, event_type="heartbeat", page_url="https://shop.example/")
    first = _row_ids(store)
    _load(
        store,
        enricher,
        20,
        event_type="page_view",
        session_id="tab-1",
        user_id="u-42",
        page_url="https://shop.example/p/1?utm_source=newsletter&utm_medium=email",
        referrer="https://www.google.com/",
        screen_resolution="1920x1080",
    )
    _load(
        store,
        enricher,
        40,
        event_type="page_view",
        page_url="https://shop.example/p/2?utm_source=other",
        referrer="https://duckduckgo.com/",
    )
    assert store.sessions_rebuilt == 0  # every batch took the merge path
    assert _row_ids(store) == first  # the same row, updated: not deleted and inserted again
    kept = sessions_of(store, "site-1")
    store.rebuild_sessions("site-2")
    assert kept == sessions_of(store, "site-2")
    (session,) = kept
    assert session["events"] == 3 and session["page_views"] == 2
    assert (session["landing_page"], session["exit_page"]) == ("/p/1", "/p/2")
    # The first values the stored part lacked come from the first event that has them.
    assert session["referrer"] == "https://www.google.com/"
    assert (session["utm_source"], session["utm_medium"]) == ("newsletter", "email")
    assert session["client_session_id"] == "tab-1" and session["user_id"] == "u-42"
    assert session["screen_resolution"] == "1920x1080"
    assert session["duration_s"] == 40.0 and not session["is_bounce"]


def test_a_gap_longer_than_the_timeout_starts_a_new_row(
    store: DuckDBEventStore, enricher: Enricher
) -> None:
    _load(store, enricher, 0, event_type="page_view", page_url="https://shop.example/a")
    _load(store, enricher, 10, event_type="page_view", page_url="https://shop.example/b")
    _load(store, enricher, 31 * 60, event_type="page_view", page_url="https://shop.example/c")
    assert store.sessions_rebuilt == 0
    kept = sessions_of(store, "site-1")
    store.rebuild_sessions("site-2")
    assert kept == sessions_of(store, "site-2")
    assert [(s["landing_page"], s["exit_page"], s["events"]) for s in kept] == [
        ("/a", "/b", 2),
        ("/c", "/c", 1),
    ]


def test_the_merge_columns_are_every_column_but_the_sessions_identity(
    store: DuckDBEventStore,
) -> None:
    columns = [r[0] for r in store._con.execute("DESCRIBE sessions").fetchall()]
    identity = {"site_id", "session_key", "visitor_id", "started_at"}
    assert not set(MERGED_COLUMNS) & set(FIRST_COLUMNS)
    assert set(ATTRIBUTION_COLUMNS) <= set(FIRST_COLUMNS)
    assert set(MERGED_COLUMNS) | set(FIRST_COLUMNS) | identity == set(columns)
    assert len(MERGED_COLUMNS) + len(FIRST_COLUMNS) + len(identity) == len(columns)
