"""Giving the C heap's free pages back to the system: after start-up, and as soon as a large
buffer (a loader batch) is freed."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or None where malloc is another's (musl, macOS): nothing to do there."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
LARGE_BUFFER_BYTES = 1 << 20


def map_large_buffers(threshold: int = LARGE_BUFFER_BYTES) -> bool:
    """Have glibc map every allocation of `threshold` bytes or more on its own, and unmap it
    when freed. By default glibc raises that threshold to the largest block freed so far (up to
    32 MiB), so after the first batch the loader's 16 MiB buffers (a batch read from the
    spool) came from the heap, which kept up to twice that resident after they were freed.
    Setting it fixes it. False where malloc is not glibc's."""
    libc = _libc()
    return libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, threshold) == 1


def release_free_memory() -> None:
    """Hand glibc's free heap pages back (`malloc_trim`). Start-up parses and drops a lot
    (the user-agent rules' sources, the GeoIP lines, the app's schemas): the pages stay
    resident otherwise, about 10 MB in the store process, until the heap happens to reuse
    them."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
