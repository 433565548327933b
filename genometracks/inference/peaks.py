"""TSS calls from probability tracks: per strand local maxima above a threshold, at least
`min_distance` nt apart (the higher peak wins), → BED6 with score = round(1000 * p)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
from omegaconf import DictConfig
from scipy.signal import find_peaks

from genometracks.formats.bigbed import BedSchema, sort_bed_records, write_bed_outputs
from genometracks.formats.bigwig import read_bigwig
from genometracks.io.atomic import write_text_atomic
from genometracks.io.rundir import STRAND_WORDS, RunDir


def call_peaks(values: np.ndarray, threshold: float, min_distance: int) -> np.ndarray:
    """0-based positions of the peaks of one contig strand's track [length] (vectorised, scipy).

    A plateau counts once (its middle); `min_distance` >= 1 nt between kept peaks."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    padded = np.concatenate([[-np.inf], values.astype(np.float64), [-np.inf]])
    peaks, _ = find_peaks(padded, height=threshold, distance=max(int(min_distance), 1))
    return (peaks - 1).astype(np.int64)


def peak_records(
    track_by_strand: dict[str, dict[str, np.ndarray]], threshold: float, min_distance: int, contig_order: list[str]
) -> list[tuple]:
    """BED6 tuples (chrom, start, end, name, score, strand) over all contigs and strands, sorted by
    `contig_order`, start, strand (a bigBed wants byte order: `sort_bed_records`)."""
    rank = {name: i for i, name in enumerate(contig_order)}  # a dict: drafts have thousands of contigs
    records = []
    for contig in contig_order:
        for strand in "+-":
            values = track_by_strand[strand][contig]
            for pos in call_peaks(values, threshold, min_distance):
                p = float(values[pos])
                records.append((contig, int(pos), int(pos) + 1, f"TSS_{int(pos) + 1}{strand}", int(round(1000 * p)), strand))
    records.sort(key=lambda r: (rank[r[0]], r[1], r[5]))
    return records


def peak_threshold(setting: object, run_dir: Path) -> tuple[float, str]:
    """(probability threshold, where it came from). `auto`: the validation split's F1-optimal threshold
    (calibrated probabilities, as in the tracks) of the model that wrote the tracks (DIR/tracks/predict.json:
    a shipped model's card, or the metrics.json beside its checkpoint), else DIR/metrics.json, else 0.5."""
    if str(setting) != "auto":
        return float(setting), "configured"
    try:
        model = json.loads((RunDir(run_dir).tracks / "predict.json").read_text())["model"]
        value = model["threshold"]
        if value is not None and 0.0 < float(value) < 1.0:
            return float(value), f"{model.get('threshold_source')} of {model.get('source')}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        value = json.loads(RunDir(run_dir).metrics_json.read_text())["validation"]["both"]["threshold_f1"]
    except (OSError, ValueError, KeyError, TypeError):
        value = None
    if value is None or not 0.0 < float(value) < 1.0:
        return 0.5, "0.5 (no validation threshold in metrics.json)"
    return float(value), "validation F1-optimal (metrics.json)"


def peaks_command(cfg: DictConfig) -> dict:
    """`genometracks peaks run_dir=DIR`: DIR/tracks/tss_peaks.bed (+ .bb, .bed.gz/.tbi)."""
    run = RunDir.checked(cfg)
    out = run.root
    with pyBigWig.open(str(run.tss_bigwig("+"))) as bw:
        chrom_sizes = dict(bw.chroms())
    values = {s: {c: read_bigwig(run.tss_bigwig(s), c) for c in chrom_sizes} for s in STRAND_WORDS}
    threshold, source = peak_threshold(cfg.predict.peaks.threshold, out)
    records = peak_records(values, threshold, int(cfg.predict.peaks.min_distance), list(chrom_sizes))
    # byte order of contig names (contig_10 before contig_9), as bigBed and tabix need
    frame = sort_bed_records(pd.DataFrame(records, columns=["chrom", "start", "end", "name", "score", "strand"]))
    write_text_atomic(run.peaks_bed, frame.to_csv(sep="\t", header=False, index=False))
    paths = {"bed": run.peaks_bed}
    if records:  # a bigBed cannot be empty: with no peak above the threshold only the (empty) BED is written
        paths.update(
            write_bed_outputs(
                frame, run.peaks_stem, BedSchema("tss_peaks", "TSS calls: local maxima of genometracks TSS probability"), chrom_sizes
            )
        )
    summary = {
        "peaks": len(records),
        "threshold": threshold,
        "threshold_source": source,
        "min_distance": int(cfg.predict.peaks.min_distance),
        "files": {k: str(Path(v).relative_to(out)) for k, v in paths.items()},
    }
    print(json.dumps(summary))
    return summary
