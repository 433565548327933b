"""The region a run's browser views open at: the strongest TSS call that has a motif hit beside it.

Opening on the first 20 kb of a genome shows the strand tracks but, as a rule, none of the sparse
ones (motif hits, DeepLIFT/SHAP on the top calls). A window centred on a top call shows them all.
Regions are 0-based half-open `(chrom, start, end)`; `ucsc_locus` and `jbrowse_locus` write the
1-based, end-inclusive text the browsers take.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from pathlib import Path

import numpy as np

Region = tuple[str, int, int]

DEFAULT_WIDTH = 2000  # nt shown around the chosen call
CANDIDATES = 50  # the strongest calls considered


def _bed_rows(path: Path) -> list[list[str]]:
    """The tab-separated fields of each data line of a BED (plain or gzip); [] when the file is missing."""
    if not path.is_file():
        return []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return [line.rstrip("\n").split("\t") for line in handle if line.strip() and not line.startswith(("#", "track", "browser"))]


def _window(chrom: str, centre: int, size: int, width: int) -> Region:
    """A `width`-nt window centred on 0-based `centre`, shifted to lie inside [0, size)."""
    start = max(0, min(centre - width // 2, size - width))
    return chrom, start, min(size, start + width)


def default_region(tracks_dir: Path, chrom_sizes: Mapping[str, int], width: int = DEFAULT_WIDTH) -> Region:
    """The window of `width` nt around the highest-scoring call in tracks/tss_peaks.bed(.gz) whose window
    holds a motif hit (tracks/motif_hits.bed.gz) — of the `CANDIDATES` strongest calls; else around
    the strongest call; the first 20 kb of the first contig when there are no calls."""
    first = next(iter(chrom_sizes))
    fallback: Region = (first, 0, min(int(chrom_sizes[first]), max(width, 20000)))
    peak_file = tracks_dir / "tss_peaks.bed"
    rows = _bed_rows(peak_file if peak_file.is_file() else tracks_dir / "tss_peaks.bed.gz")
    peaks = [r for r in rows if len(r) >= 5 and r[0] in chrom_sizes]
    if not peaks:
        return fallback
    scores = np.array([float(r[4]) for r in peaks])
    order = np.argsort(-scores, kind="stable")[:CANDIDATES]
    windows = [_window(peaks[i][0], (int(peaks[i][1]) + int(peaks[i][2])) // 2, int(chrom_sizes[peaks[i][0]]), width) for i in order]
    hit_rows = _bed_rows(tracks_dir / "motif_hits.bed.gz")
    hit_chroms = np.array([r[0] for r in hit_rows])
    hit_starts = np.array([int(r[1]) for r in hit_rows], dtype=np.int64)
    hit_ends = np.array([int(r[2]) for r in hit_rows], dtype=np.int64)
    for chrom, start, end in windows:
        if np.any((hit_chroms == chrom) & (hit_starts < end) & (hit_ends > start)):
            return chrom, start, end
    return windows[0]


def ucsc_locus(region: Region) -> str:
    """'chrom:start-end', 1-based and end-inclusive (UCSC defaultPos, IGV locus)."""
    chrom, start, end = region
    return f"{chrom}:{start + 1}-{end}"


def jbrowse_locus(region: Region) -> str:
    """'chrom:start..end', 1-based and end-inclusive (JBrowse 2 location)."""
    chrom, start, end = region
    return f"{chrom}:{start + 1}..{end}"
