"""Process-wide allocator tuning for the segment loop (speed only; results do not depend on it)."""

from __future__ import annotations

import ctypes
import ctypes.util


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks below 32 MiB in the heap (mallopt M_MMAP_THRESHOLD, and
    M_TRIM_THRESHOLD 1 GiB) so that per-segment tensors reuse memory instead of page-faulting fresh
    pages every segment. Process-wide; returns False where the C library has no mallopt."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(-3, 32 << 20)) and bool(libc.mallopt(-1, 1 << 30))
    except (OSError, AttributeError, TypeError):
        return False
