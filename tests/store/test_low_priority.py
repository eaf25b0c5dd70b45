"""Upkeep runs on a thread of its own at a lower priority (low_priority.py); the caller's own
priority is untouched, results and exceptions come back."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from cadlink.store.events.low_priority import NICENESS, run_at_low_priority


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_work_runs_less_favoured_than_the_caller_who_stays_as_it_was() -> None:
    before = _nice()
    seen = run_at_low_priority(lambda: (_nice(), threading.current_thread().name))
    assert seen == (min(19, before + NICENESS), "upkeep")
    assert _nice() == before


def test_its_exception_reaches_the_caller() -> None:
    def fails() -> None:
        raise ValueError("no room")

    with pytest.raises(ValueError, match="no room"):
        run_at_low_priority(fails)
    assert run_at_low_priority(lambda: None) is None
