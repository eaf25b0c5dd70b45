"""Upkeep that can wait, on a thread the scheduler serves last: beside the request path (the
web process, on the same cores) it takes only the CPU nothing else wants."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Added to the caller's nice value: at +10 Linux gives a thread a tenth of the CPU share of
# one at 0 when both want a core.
NICENESS = 10


def run_at_low_priority(work: Callable[[], T]) -> T:
    """Run `work` on a thread of its own, `NICENESS` below the caller's priority, and wait for
    it: its result, or its exception. Linux keeps a nice value per thread, and a thread may
    not raise its own priority again without privileges, hence a thread of its own rather
    than lowering the caller's for a while. Where threads have no nice value of their own,
    the work runs at the usual priority."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            lower_priority()
            result.append(work())
        except BaseException as e:  # handed to the caller
            error.append(e)

    thread = threading.Thread(target=run, name="upkeep", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def lower_priority() -> None:
    """This thread's nice value `NICENESS` higher (capped at 19)."""
    try:
        tid = threading.get_native_id()
        nice = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, nice + NICENESS))
    except (AttributeError, OSError):  # not Linux, or not allowed: the usual priority
        pass
