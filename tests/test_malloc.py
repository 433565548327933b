"""Allocator helpers: the heap cap releases freed pages only when resident memory has grown by more
than its slack, and the release really gives memory back on glibc."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from genometracks.io import malloc


def test_heap_cap_releases_only_on_growth_beyond_its_slack(monkeypatch):
    resident = iter([1000, 1100, 1300, 900, 950, 1200, 1160])  # MiB, as /proc/self/statm would say
    released = []
    monkeypatch.setattr(malloc, "resident_mib", lambda: next(resident))
    monkeypatch.setattr(malloc, "release_freed_memory", lambda: released.append(True) or True)
    cap = malloc.HeapCap(slack_mib=256)  # base 1000
    assert cap() is False  # 1100: within the slack
    assert cap() is True  # 1300 > 1256: released, new base 900 (read after the release)
    assert cap.base == 900 and cap.releases == 1
    assert cap() is False  # 950
    assert cap() is True  # 1200 > 1156: released, new base 1160
    assert cap.base == 1160 and cap.releases == 2 and len(released) == 2


def test_heap_cap_does_nothing_where_memory_cannot_be_read(monkeypatch):
    monkeypatch.setattr(malloc, "resident_mib", lambda: None)
    monkeypatch.setattr(malloc, "release_freed_memory", lambda: pytest.fail("released without a reading"))
    cap = malloc.HeapCap()
    assert cap() is False and cap.releases == 0


PROBE = """
import json
import numpy as np
from genometracks.io import malloc
malloc.keep_freed_memory()  # blocks < 32 MiB come from the heap and freed ones stay there
start = malloc.resident_mib()
blocks = [np.ones(1 << 17) for _ in range(200)]  # 200 x 1 MiB, touched
kept = blocks[19::20]
del blocks
held = malloc.resident_mib()
released = malloc.release_freed_memory()
after = malloc.resident_mib()
print(json.dumps(dict(start=start, held=held, released=released, after=after, kept=sum(float(b[0]) for b in kept))))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc on Linux only")
def test_release_gives_freed_heap_pages_back():
    """Freed blocks below the mmap threshold stay in the heap (resident) until released: 200 blocks
    of 1 MiB, all freed but every 20th, pin the heap's top; the release returns the holes. In a fresh
    interpreter, so that no earlier test's free heap absorbs the blocks."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    m = json.loads(done.stdout)
    assert m["held"] - m["start"] >= 150, m  # the freed blocks are still resident
    assert m["released"] is True and m["after"] - m["start"] <= 60, m  # only the 10 kept blocks (+ slack)
    assert m["kept"] == 10.0
