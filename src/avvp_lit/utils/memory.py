"""Keep freed memory for reuse in processes that run large CPU networks.

glibc serves every block above its mmap threshold (dynamic, at most 32 MiB) with a fresh
``mmap`` and unmaps it on free. A CPU forward pass of CLIP ViT-L/14, HTS-AT or R(2+1)D-18
allocates tens of such activation tensors per layer, so each one page-faults zeroed
pages in again, every layer of every batch. Raising the mmap threshold to 1 GiB and the
trim threshold to 2 GiB lets freed blocks stay in the heap and be reused (the trim
threshold matters as much: without it the heap's free top is returned and faulted in
again). ``avvp-bench extract`` took 11-22 % less time per clip in five interleaved pairs
(README, "Benchmarks"). The process keeps its peak heap instead of returning it to the
system between batches.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MMAP_THRESHOLD = 2**30
TRIM_THRESHOLD = 2**31 - 1


def reuse_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds for this process (DataLoader workers forked
    later inherit them). Where glibc refuses a threshold above 32 MiB (older releases),
    large blocks come from the heap by turning mmap off instead. Returns False, with one
    warning, where the C library has no ``mallopt`` (macOS, Windows) or refuses (musl)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library already loaded
    except (OSError, AttributeError, TypeError):
        log.warning("no mallopt in this C library: freed memory is returned, not reused")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) or mallopt(M_MMAP_MAX, 0)
    )
    if not applied:
        log.warning("the C library refused mallopt: freed memory is returned, not reused")
    return applied
