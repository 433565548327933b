"""bigWig tracks of per-base values (e.g. TSS probabilities), written with pyBigWig.

Values are float32 arrays [contig length] in forward-strand, 0-based coordinates; every base of
every contig is written (no gaps), so a reader gets back exactly the array it was given. With
`gaps=True` a NaN base is left out of the file (no data), which `read_bigwig` gives back as NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from genometracks.io.atomic import atomic_path

_CHUNK = 1 << 20  # entries per pyBigWig call (bounds the temporary Python lists)


class ExportError(ValueError):
    """Bad input to an exporter; the message names the output file, the record and the fix."""


def value_runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse runs of equal values: (starts int64 [r], ends int64 [r], values float32 [r]), 0-based half-open."""
    values = np.asarray(values, dtype=np.float32)
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    ends = np.concatenate([change, [values.size]]).astype(np.int64)
    return starts, ends, values[starts]


def _check(path: Path, chrom_sizes: Mapping[str, int], values: Mapping[str, np.ndarray], gaps: bool = False) -> None:
    missing = [c for c in chrom_sizes if c not in values]
    if missing:
        raise ExportError(
            f"{path}: no values for contig(s) {missing[:5]}; a track must cover every base "
            "of every contig (pass an array for each contig in chrom_sizes)"
        )
    extra = [c for c in values if c not in chrom_sizes]
    if extra:
        raise ExportError(
            f"{path}: values given for contig(s) {extra[:5]} that are not in chrom_sizes "
            f"{list(chrom_sizes)[:5]}; use the genome's contig names"
        )
    for chrom, size in chrom_sizes.items():
        array = np.asarray(values[chrom])
        if array.ndim != 1 or array.size != size:
            raise ExportError(
                f"{path}: contig {chrom!r} has {size} nt but its values have shape "
                f"{array.shape}; pass one value per base in forward-strand coordinates"
            )
        bad = np.flatnonzero(np.isinf(array) if gaps else ~np.isfinite(array))
        if bad.size:
            raise ExportError(
                f"{path}: contig {chrom!r} value at 0-based position {int(bad[0])} is "
                f"{array[bad[0]]}; bigWig values must be finite (replace NaN/inf first)"
            )


def write_bigwig(
    path: str | Path, chrom_sizes: Mapping[str, int], values: Mapping[str, np.ndarray], max_zooms: int = 10, gaps: bool = False
) -> Path:
    """Write a bigWig covering every base: values[chrom] is float32 [chrom_sizes[chrom]] (with
    gaps=True, NaN where the track has no data: those bases are left out).

    Runs of equal values become bedGraph spans; where runs are short (continuous predictions) the
    contig is written as fixed-step span-1 records instead, a third of the size. Zoom levels on.
    The file appears atomically at `path`."""
    path = Path(path)
    _check(path, chrom_sizes, values, gaps)
    import pyBigWig

    with atomic_path(path, expected_bytes=expected_size(chrom_sizes)) as tmp:
        bw = pyBigWig.open(str(tmp), "w")
        if bw is None:
            raise ExportError(f"{path}: pyBigWig could not create {tmp}; check the folder is writable")
        try:
            bw.addHeader([(c, int(n)) for c, n in chrom_sizes.items()], maxZooms=max_zooms)
            for chrom in chrom_sizes:
                _add_contig(bw, chrom, np.asarray(values[chrom], dtype=np.float32))
        finally:
            bw.close()
        _verify(tmp, path, chrom_sizes)
        _fix_total_summary(tmp, values)
    return path


BIGWIG_MAGIC = 0x888FFC26


def _fix_total_summary(path: Path, values: Mapping[str, np.ndarray]) -> None:
    """Write the header's total-summary min and max from the data. libBigWig starts its running
    maximum at DBL_MIN (the smallest positive double), so a track of negative values only (the
    negated minus strand, a signed attribution) claimed max 2.2e-308 (`bigWigInfo`: max 0).
    The summary block: validCount u64, minVal, maxVal, sumData, sumSquares (doubles), at the u64
    totalSummaryOffset stored at byte 44 of the header."""
    import struct

    finite = [np.asarray(v, dtype=np.float32) for v in values.values()]
    finite = [v[np.isfinite(v)] for v in finite]
    finite = [v for v in finite if v.size]
    if not finite:
        return
    low, high = min(float(v.min()) for v in finite), max(float(v.max()) for v in finite)
    with open(path, "r+b") as handle:
        head = handle.read(52)
        order = "<" if struct.unpack("<I", head[:4])[0] == BIGWIG_MAGIC else ">"
        (summary,) = struct.unpack(order + "Q", head[44:52])
        if summary == 0:
            return
        handle.seek(summary + 8)
        handle.write(struct.pack(order + "dd", low, high))


def expected_size(chrom_sizes: Mapping[str, int]) -> int:
    """Upper estimate of a per-base bigWig's bytes: 4 per base of fixed-step data plus zoom levels
    and headers (measured: about 5 per base on random values, less on smooth tracks)."""
    return 6 * int(sum(chrom_sizes.values())) + (1 << 20)


def _verify(tmp: Path, path: Path, chrom_sizes: Mapping[str, int]) -> None:
    """Re-open the written file: libBigWig does not report failed writes, so check header and contigs."""
    import pyBigWig

    bw = pyBigWig.open(str(tmp))
    try:
        chroms = bw.chroms() if bw is not None else None
        if chroms != {c: int(n) for c, n in chrom_sizes.items()}:
            raise ExportError(
                f"{path}: the written bigWig does not read back (disk full or write error?); the previous file, if any, is kept"
            )
    finally:
        if bw is not None:
            bw.close()


def _add_contig(bw: Any, chrom: str, values: np.ndarray) -> None:
    """Add one contig's values, as spans if that is smaller, else as fixed-step single bases; NaN
    bases are left out."""
    starts, ends, run_values = value_runs(values)
    kept = ~np.isnan(run_values)
    starts, ends, run_values = starts[kept], ends[kept], run_values[kept]
    if 3 * starts.size <= values.size:  # bedGraph record: 12 bytes; fixed-step: 4 bytes per base
        for lo in range(0, starts.size, _CHUNK):
            hi = min(lo + _CHUNK, starts.size)
            bw.addEntries([chrom] * (hi - lo), starts[lo:hi], ends=ends[lo:hi], values=run_values[lo:hi].astype(np.float64))
        return
    for first, stop in finite_stretches(values):
        for lo in range(first, stop, _CHUNK):
            chunk = values[lo : min(lo + _CHUNK, stop)].astype(np.float64)
            bw.addEntries(chrom, lo, values=chunk, span=1, step=1)


def finite_stretches(values: np.ndarray) -> list[tuple[int, int]]:
    """Maximal [start, stop) stretches of non-NaN values of [n], 0-based half-open, in order."""
    present = np.concatenate([[False], ~np.isnan(values), [False]])
    edges = np.flatnonzero(present[1:] != present[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def read_bigwig(path: str | Path, chrom: str) -> np.ndarray:
    """Values of one contig as float32 [length] (NaN where the file has no data)."""
    import pyBigWig

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: bigWig not found")
    bw = pyBigWig.open(str(path))
    if bw is None or not bw.isBigWig():
        raise ExportError(f"{path}: not a bigWig file")
    try:
        sizes = bw.chroms()
        if chrom not in sizes:
            raise ExportError(f"{path}: contig {chrom!r} not in the bigWig; it has {list(sizes)[:10]}")
        return np.asarray(bw.values(chrom, 0, sizes[chrom], numpy=True), dtype=np.float32)
    finally:
        bw.close()
