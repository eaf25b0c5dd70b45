"""The served tracker stays within its size budget (docs/tracker.md, "Size")."""

from __future__ import annotations

import gzip

from tracker_harness import TRACKER

BUDGET = 3584  # bytes gzipped: 3.5 KB


def test_tracker_is_within_budget() -> None:
    code = TRACKER.read_bytes()
    assert code.startswith(b"(()=>{")  # one minified IIFE: nothing leaks into the page's globals
    assert len(gzip.compress(code, compresslevel=6)) <= BUDGET
