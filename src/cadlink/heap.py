"""Giving the C heap's free pages back to the system after start-up."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> None:
    """Hand glibc's free heap pages back (`malloc_trim`). Start-up parses and drops a lot
    (the user-agent rules' sources, the GeoIP lines, the app's schemas): the pages stay
    resident otherwise, about 10 MB in the store process, until the heap happens to reuse
    them."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
