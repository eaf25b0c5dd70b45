"""Event stores: DuckDB (embedded), later PostgreSQL and ClickHouse, behind one interface."""

from cadlink.store.events.base import EventPage, EventStore, StoreBatch, open_event_store

__all__ = ["EventPage", "EventStore", "StoreBatch", "open_event_store"]
