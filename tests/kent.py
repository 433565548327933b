"""UCSC's kent tools beside the checkout (../shared/tools/kent): hubCheck and the reference readers.

Tests that need them use `needs_kent` (skipped with a reason where the folder is absent; in CI,
tests/conftest.py turns that skip into a failure). `assert_hub_clean` runs our validator and,
where the tools exist, `hubcheck -checkSettings`: every hub a test writes goes through both.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from genometracks.io.paths import REPO_ROOT

KENT = REPO_ROOT.parent / "shared" / "tools" / "kent"
HAVE_KENT = (KENT / "kent").is_file() and (KENT / "hubcheck").is_file()
needs_kent = pytest.mark.skipif(
    not HAVE_KENT,
    reason=f"UCSC kent tools not found at {KENT} (hubCheck, "
    "bigWigToBedGraph, bigBedToBed, twoBitToFa); CI provides them in ../shared/tools/kent",
)


def kent(tool: str, *args: str | Path) -> subprocess.CompletedProcess:
    """`kent TOOL args...` (output files named by the caller; 'stdout' for standard output)."""
    return subprocess.run([str(KENT / "kent"), tool, *map(str, args)], capture_output=True, text=True, timeout=300)


def hubcheck(hub_dir: str | Path, *options: str) -> subprocess.CompletedProcess:
    """UCSC hubCheck -checkSettings on a local hub folder (exit 0 = no problems)."""
    return subprocess.run(
        [str(KENT / "hubcheck"), "-checkSettings", *options, str(Path(hub_dir) / "hub.txt")], capture_output=True, text=True, timeout=300
    )


def assert_hub_clean(hub_dir: str | Path) -> None:
    """Our validate_hub finds nothing, and hubCheck (where installed) reports zero problems."""
    from genometracks.browser.validate import validate_hub

    assert validate_hub(hub_dir) == []
    if HAVE_KENT:
        result = hubcheck(hub_dir)
        assert result.returncode == 0, f"hubCheck on {hub_dir}:\n{result.stdout}{result.stderr}"
