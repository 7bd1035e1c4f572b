"""bertzoo.corpus.stream.release_free_heap hands freed C-heap pages back to the OS (glibc).

The corpus loop calls it after every chunk (benchmarks/stream_memory.py measures the effect on
long streams); here: memory malloc'd, touched and freed inside the heap stays resident until the
call, and is gone after it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from pathlib import Path

import pytest

from bertzoo.corpus.stream import release_free_heap

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or not Path("/proc/self/status").exists(),
    reason="malloc_trim is glibc's; RSS is read from /proc",
)


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmRSS:"))
    return int(line.split()[1])


def test_freed_heap_pages_leave_the_resident_set() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(4096) for _ in range(16_000)]  # 64 MB in the heap (below the mmap threshold)
    for b in blocks:
        ctypes.memset(b, 1, 4096)  # make the pages resident
    for b in blocks[:-1]:  # the last one pins the heap's top: free() alone cannot shrink it
        libc.free(b)
    before = rss_kb()
    assert release_free_heap() is True
    after = rss_kb()
    libc.free(blocks[-1])
    assert before - after > 32_000, (before, after)  # most of the 64 MB freed
