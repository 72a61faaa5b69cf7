"""The extractors' processes keep freed memory for reuse (glibc's mmap and trim
thresholds)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="glibc's allocator and its mallopt"
)
SIZE = 256 * 2**20
# a 256 MiB block allocated, written and freed three times; prints the page faults
PROGRAM = f"""
import ctypes, resource, sys
from avvp_lit.utils.memory import reuse_freed_memory
if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
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
    """Page faults of the three later blocks, in a process whose allocator settings come
    only from ``mode`` (tests/conftest.py sets MALLOC_* for the processes it starts)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return int(run.stdout)


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    default = _faults("default")  # each block mapped afresh: 3 x 65,536 faults of 4 KiB
    assert default > 0
    assert _faults("reuse") < default / 10


def test_avvp_extract_sets_it_before_anything_is_loaded(tmp_path, monkeypatch):
    import avvp_lit.cli.extract as cli

    calls = []
    monkeypatch.setattr(cli, "reuse_freed_memory", lambda: calls.append(True))
    status = cli.main([str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "out")])
    assert status == 2 and calls == [True]
