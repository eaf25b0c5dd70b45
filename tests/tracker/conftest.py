"""Fixtures of the tracker's browser tests; they live in tracker_harness.py with its helpers."""

from tracker_harness import browser, cadlink_server, pages, tab

__all__ = ["browser", "cadlink_server", "pages", "tab"]
