"""Start-up hands the C heap's free pages back (`cadlink.heap`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cadlink.heap import _libc, release_free_memory


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_freed_heap_pages_go_back_to_the_system() -> None:
    assert _libc() is not None  # glibc: the product's platform
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


_LARGE_BUFFERS = """
import subprocess
import sys
from cadlink.heap import map_large_buffers

def rss_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

if sys.argv[1] == "fixed":
    assert map_large_buffers()
base = rss_kb()
for _ in range(3):  # as the loader does: a batch's buffer, freed, then the next one
    buffer = bytearray(16 << 20)
    buffer[::4096] = b"x" * len(buffer[::4096])  # touch every page
    del buffer
print(rss_kb() - base)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_large_buffers_go_back_to_the_system_when_freed() -> None:
    """Left to glibc, the threshold rises to the first freed 16 MiB block, and the next ones
    come from the heap, which keeps them resident (the control shows it does here)."""

    def kept_kb(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _LARGE_BUFFERS, mode], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return int(out.stdout)

    assert kept_kb("default") > 8_000  # the control: glibc kept the freed buffer
    assert kept_kb("fixed") < 4_000
