#!/usr/bin/env python3
"""genometracks and Promotech per base on the curated labels of the paper's test region, with and without
the TSSs that Promotech was trained on.

Promotech's E. coli training positives (its ECOLI_2 set) are the dRNA-seq TSSs of Thomason et al., one of
the curated set's sources: most curated TSSs with dRNA-seq support sit exactly on a published Promotech
window's 3' end. This scores both tools (a) on every curated TSS and (b) with the dRNA-seq-supported TSS
positions left out of the scored bases (the other curated TSSs stay positive, every other base
negative). Both tools' values are per base: genometracks' bigWigs, Promotech's window probabilities at
each window's 3' end (`genometracks.report.compare.promotech_track`).

Usage: python3 scripts/promotech_heldout.py RUN_DIR [SOURCE]   (SOURCE: the curated source to hold out,
default drnaseq). Needs the shared E. coli data; prints a Markdown table.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyBigWig

from genometracks.io.paths import shared_data
from genometracks.report.build import PROMOTECH_FILE
from genometracks.report.compare import promotech_track, read_promotech
from genometracks.training.metrics import average_precision, roc_auc

CHROM, START, END = "NC_000913.3", 2_738_785, 3_667_115  # the TSS paper's test region, 0-based half-open


def curated_labels(source: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(positive, held-out) bool [END - START] per strand: curated TSSs, and those `source` supports."""
    with tempfile.TemporaryDirectory() as tmp:
        bed = Path(tmp) / "curated.bed"
        subprocess.run(["genometracks", "labels", "labels=curated", f"out={bed}"], check=True, capture_output=True, text=True)
        rows = [line.split("\t") for line in bed.read_text().splitlines() if line.strip()]
    positive = {s: np.zeros(END - START, dtype=bool) for s in "+-"}
    held = {s: np.zeros(END - START, dtype=bool) for s in "+-"}
    for row in rows:
        pos, strand = int(row[1]), row[5].strip()
        if row[0] == CHROM and START <= pos < END:
            positive[strand][pos - START] = True
            held[strand][pos - START] |= source in row[3].split(",")
    return positive, held


def main(argv: list[str]) -> int:
    run_dir, source = Path(argv[0]), (argv[1] if len(argv) > 1 else "drnaseq")
    tracks = {}
    for strand, name in (("+", "tss.plus.bw"), ("-", "tss.minus.bw")):
        with pyBigWig.open(str(run_dir / "tracks" / name)) as bw:
            tracks[strand] = np.nan_to_num(np.asarray(bw.values(CHROM, START, END), dtype=np.float64))
    table = read_promotech(shared_data() / PROMOTECH_FILE)
    peer = promotech_track(table, CHROM, START, END)
    positive, held = curated_labels(source)
    ends = {s: np.zeros(END - START, dtype=bool) for s in "+-"}  # a published window's TSS (3' end)
    for strand in "+-":
        tss = table.loc[(table["chrom"] == CHROM) & (table["strand"] == strand), "tss"].to_numpy(np.int64)
        ends[strand][tss[(tss >= START) & (tss < END)] - START] = True
    on = {
        k: sum(int((ends[s] & mask[s]).sum()) for s in "+-")
        for k, mask in (("held", held), ("other", {s: positive[s] & ~held[s] for s in "+-"}))
    }
    n_held = sum(int(held[s].sum()) for s in "+-")
    n_other = sum(int((positive[s] & ~held[s]).sum()) for s in "+-")
    print(
        f"{on['held']} of {n_held} {source}-supported curated TSSs sit exactly on a published Promotech window's 3' end "
        f"({on['other']} of the other {n_other})\n"
    )
    y = np.concatenate([positive["+"], positive["-"]])
    out = np.concatenate([held["+"], held["-"]])
    print(f"| curated labels, {CHROM}:{START:,}-{END:,}, both strands | TSSs | tool | ROC AUC | PR AUC |")
    print("|---|---|---|---|---|")
    for what, keep in (("all", np.ones_like(y, dtype=bool)), (f"without the {int(out.sum()):,} {source}-supported", ~out)):
        for tool, values in (("genometracks", tracks), ("Promotech", peer)):
            x, labels = np.concatenate([values["+"], values["-"]])[keep], y[keep]
            print(f"| {what} | {int(labels.sum()):,} | {tool} | {roc_auc(labels, x):.3f} | {average_precision(labels, x):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
