"""Giving the C heap's free pages back to the system: after start-up, and after each of the
loader's large buffers."""

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


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
LARGE_BUFFER_BYTES = 1 << 20


def map_large_buffers(threshold: int = LARGE_BUFFER_BYTES) -> bool:
    """Have glibc map every allocation of `threshold` bytes or more on its own, and unmap it
    when freed. By default glibc raises that threshold to the largest block freed so far (up to
    32 MiB), so after the first batch the loader's 16 MiB buffers (a batch read from the
    spool) came from the heap, which kept up to twice that resident after they were freed.
    Setting it fixes it. False where malloc is not glibc's."""
    mallopt = _mallopt()
    return mallopt is not None and mallopt(_M_MMAP_THRESHOLD, threshold) == 1


def release_free_memory() -> None:
    """Hand glibc's free heap pages back (`malloc_trim`). Start-up parses and drops a lot
    (the user-agent rules' sources, the GeoIP lines, the app's schemas): the pages stay
    resident otherwise, about 10 MB in the store process, until the heap happens to reuse
    them."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
