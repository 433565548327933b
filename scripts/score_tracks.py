#!/usr/bin/env python3
"""Per-base ROC AUC / PR AUC of a run's exported TSS bigWigs against TSS label sets, over a region,
both strands together: what a user scores after loading the tracks. Reads DIR/tracks/tss.plus.bw and
tss.minus.bw with pyBigWig, and each label set as the BED6 that `genometracks labels labels=<set>`
writes (0-based TSS positions on NC_000913.3). A base is positive when a TSS of the set sits on it
(on its strand). Prints a Markdown table row per label set.

Usage: python3 scripts/score_tracks.py RUN_DIR [chrom:start-end] [label sets ...]
(default region: the paper's test region NC_000913.3:2738785-3667115; sets: curated cappable_seq
regulondb_strong). Needs the shared E. coli data (`genometracks labels` reads it)."""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyBigWig

from genometracks.training.metrics import average_precision, roc_auc


def label_positions(label_set: str, chrom: str, start: int, end: int) -> dict[str, np.ndarray]:
    """0-based TSS positions of `label_set` in [start, end) per strand ('+', '-')."""
    with tempfile.TemporaryDirectory() as tmp:
        bed = Path(tmp) / f"{label_set}.bed"
        subprocess.run(["genometracks", "labels", f"labels={label_set}", f"out={bed}"], check=True, capture_output=True, text=True)
        rows = [line.split("\t") for line in bed.read_text().splitlines() if line.strip()]
    out = {}
    for strand in "+-":
        pos = np.array([int(r[1]) for r in rows if r[0] == chrom and r[5].strip() == strand], dtype=np.int64)
        out[strand] = np.unique(pos[(pos >= start) & (pos < end)]) - start
    return out


def track_values(run_dir: Path, chrom: str, start: int, end: int) -> dict[str, np.ndarray]:
    values = {}
    for strand, name in (("+", "tss.plus.bw"), ("-", "tss.minus.bw")):
        with pyBigWig.open(str(run_dir / "tracks" / name)) as bw:
            values[strand] = np.nan_to_num(np.asarray(bw.values(chrom, start, end), dtype=np.float64))
    return values


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0])
    region = argv[1] if len(argv) > 1 else "NC_000913.3:2738785-3667115"
    sets = argv[2:] or ["curated", "cappable_seq", "regulondb_strong"]
    chrom, span = region.split(":")
    start, end = (int(x) for x in span.split("-"))
    scores = track_values(run_dir, chrom, start, end)
    print(f"| labels ({region}, both strands) | TSSs | ROC AUC | PR AUC |")
    print("|---|---|---|---|")
    for label_set in sets:
        positions = label_positions(label_set, chrom, start, end)
        labels = {s: np.zeros(end - start, dtype=bool) for s in "+-"}
        for s in "+-":
            labels[s][positions[s]] = True
        y = np.concatenate([labels["+"], labels["-"]])
        x = np.concatenate([scores["+"], scores["-"]])
        print(f"| {label_set} | {int(y.sum()):,} | {roc_auc(y, x):.3f} | {average_precision(y, x):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
