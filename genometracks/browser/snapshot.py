"""A browser snapshot of a run: `DIR/igv/index.html` (igv.js) served on loopback with
`genometracks.browser.serve` and screenshotted by headless Chromium, written as a PNG.

Chromium is optional: without it `browser_snapshot` logs why and returns None. The page is shown
through a temporary copy of it (`igv/_snapshot_<pid>_*.html`, removed afterwards) without its status
line, whose igv.js config names the locus asked for.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import numpy as np

from genometracks.browser.locus import igvjs_locus
from genometracks.browser.serve import serve
from genometracks.browser.status_page import script_json
from genometracks.io.atomic import atomic_path
from genometracks.io.rundir import RunDir

log = logging.getLogger(__name__)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_CONFIG = re.compile(r'(<script type="application/json" id="igv-config">)(.*?)(</script>)', re.S)
_LOCUS = re.compile(r"^\S+:[\d,]+-[\d,]+$")  # the contig name may hold ':' (the last one starts the span)


class SnapshotError(ValueError):
    """A snapshot that cannot be taken as asked; the message names the file or locus and the fix."""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on PATH, or None."""
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


HIDE_STATUS = "<style>#igv-status{display:none}</style>"  # the page's load-state line: for tests, not for a picture


def _snapshot_page(page: Path, locus: str | None) -> Path:
    """A temporary copy of the igv.js page (beside it, so its relative URLs work) showing `locus` (None: the
    page's own), without the status line the page prints under the tracks."""
    text = page.read_text(encoding="utf-8")
    if locus is not None:
        match = _CONFIG.search(text)
        if match is None:
            raise SnapshotError(f"{page}: no igv-config block; rewrite the page with `genometracks export`")
        config = json.loads(match.group(2))
        config["locus"] = igvjs_locus(locus)
        text = text[: match.start(2)] + script_json(config) + text[match.end(2) :]
    text = text.replace("</head>", HIDE_STATUS + "</head>", 1)
    fd, name = tempfile.mkstemp(prefix=f"_snapshot_{os.getpid()}_", suffix=".html", dir=page.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(name)


def _crop_bottom(png: Path, margin: int = 12) -> None:
    """Cut the blank rows under the last drawn track (a page shorter than the window)."""
    from matplotlib.image import imread, imsave

    pixels = imread(str(png))
    differs = np.any(np.abs(pixels - pixels[-1:]) > 1e-3, axis=(1, 2))
    last = int(np.flatnonzero(differs)[-1]) if differs.any() else pixels.shape[0] - 1
    if last + 1 + margin < pixels.shape[0]:
        imsave(str(png), pixels[: last + 1 + margin], format="png")


def browser_snapshot(
    run_dir: str | Path,
    locus: str | None = None,
    out: str | Path | None = None,
    width: int = 1400,
    height: int = 900,
    budget_ms: int = 20000,
    timeout_s: float = 120.0,
) -> Path | None:
    """Screenshot DIR/igv/index.html at `locus` (IGV syntax, 1-based: 'chr:1,000-3,000'; None = the
    page's own) into `out` (default DIR/plots/browser_snapshot.png, written atomically; blank rows
    below the tracks are cropped).

    Returns the PNG path, or None (reason logged) when Chromium is not installed. Raises
    SnapshotError when the page is missing, the locus is malformed or Chromium writes no image."""
    run_dir = Path(run_dir)
    page = RunDir(run_dir).igv / "index.html"
    if not page.is_file():
        raise SnapshotError(f"{page}: IGV page not found; run `genometracks export run_dir={run_dir}` first")
    if locus is not None and not _LOCUS.match(locus):
        raise SnapshotError(f"locus {locus!r}: use IGV syntax CHROM:START-END (1-based), e.g. chr:1001-3000")
    chromium = find_chromium()
    if chromium is None:
        log.warning("browser snapshot skipped: no Chromium on PATH (apt-get install chromium)")
        return None
    out = Path(out) if out is not None else RunDir(run_dir).plots / "browser_snapshot.png"
    shown = _snapshot_page(page, locus)
    try:
        with serve(run_dir) as server, tempfile.TemporaryDirectory(prefix="gt-chromium-") as profile:
            url = f"{server.url}igv/{quote(shown.name)}"
            with atomic_path(out) as tmp:
                command = [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                    "--disable-dev-shm-usage",
                    f"--user-data-dir={profile}",
                    f"--virtual-time-budget={int(budget_ms)}",
                    f"--window-size={int(width)},{int(height)}",
                    f"--screenshot={tmp}",
                    url,
                ]
                try:
                    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
                except subprocess.TimeoutExpired as err:
                    raise SnapshotError(f"{chromium} took over {timeout_s:.0f} s on {url}") from err
                if not tmp.is_file():
                    raise SnapshotError(
                        f"{chromium} wrote no screenshot of {url} (exit {result.returncode}): {result.stderr.strip()[-600:]}"
                    )
                _crop_bottom(tmp)
    finally:
        shown.unlink(missing_ok=True)
    log.info("browser snapshot of %s at %s -> %s", page, locus or "the page's locus", out)
    return out
