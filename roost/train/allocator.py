"""glibc's malloc, tuned for training on a CPU: big tensors reuse the process's memory instead of fresh pages.

Why: glibc serves each allocation above its mmap threshold (dynamic, at most
32 MiB) with a fresh ``mmap`` and gives it back to the OS on ``free``, and it
trims the top of the heap once more than twice that is free. A CPU training
step allocates and frees tensors of that size every step (activations, their
gradients, the bf16 copies autocast makes), so each step the kernel page-faults
and zero-fills them anew. Raising both thresholds keeps that memory in the
process for the next step, which is what jemalloc or tcmalloc would do:
``roost train`` on the sample network (depth 4, 16 x 256 tokens, bf16, Muon)
makes 4,153 instead of 3,985 tokens/s (+4%). In bench/train_throughput.py a
bare step of roost's takes 1-10% less time, and HF Llama's, whose loss
allocates bigger tensors, 6-45% less (BENCHMARKS.md, "Training"). The price is
that the process keeps its peak memory until it exits, which a training run
reaches every step anyway.

A user who already chose (``MALLOC_*`` variables, or jemalloc or tcmalloc in
``LD_PRELOAD``) is left alone, as is any platform without glibc's ``mallopt``.
"""

from __future__ import annotations

import ctypes
import os
import sys

# glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # allocations up to 1 GiB come from the heap; up to 1 GiB of free heap is kept


def user_chose_allocator() -> bool:
    preload = os.environ.get("LD_PRELOAD", "")
    return any(name.startswith("MALLOC_") for name in os.environ) or "jemalloc" in preload or "tcmalloc" in preload


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as the module docstring says; True if it is now so tuned."""
    if not sys.platform.startswith("linux") or user_chose_allocator():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; musl's is a stub that returns 0
    return mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, KEEP_BYTES) == 1
