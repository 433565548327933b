"""The region a run's browser views open at: a strong TSS call with a head-motif hit in its promoter
(and, where one was found, its σ70 promoter's boxes).

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
PROMOTER = 60  # nt upstream of a TSS where its core promoter (-35, -10 boxes) lies


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
    """The window of `width` nt around one of the `CANDIDATES` highest-scoring calls of
    tracks/tss_peaks.bed(.gz), chosen by the motif hits of tracks/motif_hits.bed.gz: the strongest call
    with a same-strand hit in its promoter (the `PROMOTER` nt upstream of the TSS) and σ70 boxes in
    tracks/sigma70_boxes.bed.gz (its `tss` column names the call); else the strongest with a same-strand
    hit in its promoter; else the strongest with any hit in its window; else the strongest call. The first
    20 kb of the first contig when there are no calls."""
    first = next(iter(chrom_sizes))
    fallback: Region = (first, 0, min(int(chrom_sizes[first]), max(width, 20000)))
    peak_file = tracks_dir / "tss_peaks.bed"
    rows = _bed_rows(peak_file if peak_file.is_file() else tracks_dir / "tss_peaks.bed.gz")
    peaks = [r for r in rows if len(r) >= 6 and r[0] in chrom_sizes]
    if not peaks:
        return fallback
    scores = np.array([float(r[4]) for r in peaks])
    top = [peaks[i] for i in np.argsort(-scores, kind="stable")[:CANDIDATES]]
    hit_rows = [r for r in _bed_rows(tracks_dir / "motif_hits.bed.gz") if len(r) >= 6]
    hit_chroms = np.array([r[0] for r in hit_rows])
    hit_starts = np.array([int(r[1]) for r in hit_rows], dtype=np.int64)
    hit_ends = np.array([int(r[2]) for r in hit_rows], dtype=np.int64)
    hit_strands = np.array([r[5] for r in hit_rows])
    with_boxes = {(r[0], r[9]) for r in _bed_rows(tracks_dir / "sigma70_boxes.bed.gz") if len(r) >= 10}

    def tier(call: list[str], window: Region) -> int:
        chrom, start, end, strand = call[0], int(call[1]), int(call[2]), call[5]
        on_contig = hit_chroms == chrom
        lo, hi = (start - PROMOTER, start) if strand == "+" else (end, end + PROMOTER)
        if np.any(on_contig & (hit_strands == strand) & (hit_starts < hi) & (hit_ends > lo)):
            return 0 if (chrom, call[3]) in with_boxes else 1
        return 2 if np.any(on_contig & (hit_starts < window[2]) & (hit_ends > window[1])) else 3

    windows = [_window(c[0], (int(c[1]) + int(c[2])) // 2, int(chrom_sizes[c[0]]), width) for c in top]
    tiers = [tier(call, window) for call, window in zip(top, windows)]
    return windows[int(np.argmin(tiers))]  # argmin: the first (strongest) of the best tier


def ucsc_locus(region: Region) -> str:
    """'chrom:start-end', 1-based and end-inclusive (UCSC defaultPos, IGV locus)."""
    chrom, start, end = region
    return f"{chrom}:{start + 1}-{end}"


def igvjs_locus(locus: str) -> str:
    """An IGV locus 'chrom:start-end' as igv.js reads it: unchanged, except for a contig name holding
    ':' (an assembler's 'scaffold:1'), which igv.js splits at its first ':' and so opens the whole
    genome; that one goes in igv.js's tab-separated form 'chrom<TAB>start<TAB>end' (1-based)."""
    chrom, _, span = locus.rpartition(":")
    if ":" not in chrom or "-" not in span:
        return locus
    start, _, end = span.partition("-")
    return f"{chrom}\t{start}\t{end}"


def jbrowse_locus(region: Region) -> str:
    """'chrom:start..end', 1-based and end-inclusive (JBrowse 2 location)."""
    chrom, start, end = region
    return f"{chrom}:{start + 1}..{end}"
