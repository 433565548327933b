"""What a piece of work cost: wall seconds and peak resident memory (for stage and part records)."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager


def peak_rss_mib(children: bool = True) -> int:
    """Peak resident memory so far, MiB: this process's, or (children=True) the larger of it and its
    waited-for children's. ru_maxrss only grows, so the work that raises it is the work that needed it."""
    who = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) if children else (resource.RUSAGE_SELF,)
    return round(max(resource.getrusage(w).ru_maxrss for w in who) / 1024)  # Linux reports KiB


@contextmanager
def cost(into: dict[str, dict[str, float]], name: str) -> Iterator[None]:
    """Time the block; afterwards into[name] = {"seconds": wall s (0.1), "peak_rss_mib": peak so far}."""
    start = time.perf_counter()
    yield
    into[name] = {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": peak_rss_mib()}
