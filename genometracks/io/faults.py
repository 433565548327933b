"""Fault injection for the fault suite: `GENOMETRACKS_KILL_AT=<point>[,<point>...]` makes the process
SIGKILL itself when it reaches a named point, so tests can kill a run at an exact moment (mid-write
of a bigWig, mid-swap of a hub) and check that nothing written before is lost or half-written.

Points: `write:<file name>` (atomic file write: temporary file complete, target not yet replaced),
`stage:<folder name>` (atomic folder: staging folder complete, not yet swapped in). Unset in normal
use: one environment lookup per output file.
"""

from __future__ import annotations

import os
import signal

KILL_AT = "GENOMETRACKS_KILL_AT"


def kill_point(point: str) -> None:
    """SIGKILL this process if `point` is listed in $GENOMETRACKS_KILL_AT."""
    wanted = os.environ.get(KILL_AT)
    if wanted and point in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
