"""Start-up hands the C heap's free pages back (`cadlink.heap`)."""

from __future__ import annotations

import sys

import pytest

from cadlink.heap import _malloc_trim, release_free_memory


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_freed_heap_pages_go_back_to_the_system() -> None:
    assert _malloc_trim() is not None  # glibc: the product's platform
    # Blocks above pymalloc's 512 bytes come from malloc; keeping one in 64 leaves the heap
    # with freed pages between live blocks, which it neither reuses nor returns by itself.
    blocks = [bytes(4000) for _ in range(20_000)]
    kept = blocks[::64]
    del blocks
    before = _rss_kb()
    release_free_memory()
    after = _rss_kb()
    assert before - after > 30_000, (before, after)  # of about 80 MB freed
    assert len(kept) == 313
