"""The extractors' processes keep freed memory for reuse (glibc's mmap threshold)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SIZE = 256 * 2**20
PAGES = SIZE // os.sysconf("SC_PAGE_SIZE")
# a 256 MiB block allocated, written and freed three times; prints the page faults
PROGRAM = f"""
import ctypes, resource, sys
from avvp_lit.utils.memory import reuse_freed_memory
if sys.argv[1] == "reuse" and not reuse_freed_memory():
    sys.exit(3)
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
def touch():
    block = libc.malloc({SIZE})
    ctypes.memset(block, 1, {SIZE})
    libc.free(block)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], env=env, capture_output=True, text=True
    )
    if run.returncode == 3:
        pytest.skip("the C library is not glibc: no mallopt")
    assert run.returncode == 0, run.stderr
    return int(run.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    assert _faults("default") > 3 * PAGES * 0.9  # each block mmapped afresh
    assert _faults("reuse") < 3 * PAGES * 0.01
