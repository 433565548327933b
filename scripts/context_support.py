#!/usr/bin/env python3
"""How many of a run's E. coli TSS calls in each gene-context class an experimental TSS map confirms.

For the calls in the TSS paper's held-out test region (NC_000913.3:2,738,785-3,667,115, which no shipped
model was trained or tuned on), the share of each class (tracks/tss_context.tsv, written by the peaks
stage) with a TSS of each label set within ±WINDOW nt on the same strand. The last row is what a
random position would get: the set's TSSs in the region × (2 WINDOW + 1) / (2 × region length).

Usage: python3 scripts/context_support.py RUN_DIR [WINDOW]   (default 5 nt). Needs the shared E. coli
data; prints a Markdown table.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.genome.sequence import Genome
from genometracks.inference.gene_context import CLASSES
from genometracks.io.paths import shared_data
from genometracks.labels.annotations import load_tss_set

CHROM, START, END = "NC_000913.3", 2_738_785, 3_667_115  # the TSS paper's test region, 0-based half-open
SETS = {"curated": "curated", "cappable_seq": "Cappable-seq", "drnaseq": "dRNA-seq (primary)", "cho2014": "Cho 2014"}


def near(positions: np.ndarray, sites: np.ndarray, window: int) -> np.ndarray:
    """bool [n]: a site within ±window of each position (sites sorted)."""
    low = np.searchsorted(sites, positions - window, side="left")
    high = np.searchsorted(sites, positions + window, side="right")
    return high > low


def main(run_dir: str, window: int = 5) -> None:
    root = shared_data() / "ecoli_k12"
    table = pd.read_csv(Path(run_dir) / "tracks" / "tss_context.tsv", sep="\t", keep_default_na=False)
    table = table[(table["chrom"] == CHROM) & (table["position"] - 1 >= START) & (table["position"] - 1 < END)]
    genome = Genome.open(root / "genome" / "NC_000913.3.fa", circular=[CHROM])
    header = ["class", "calls", *SETS.values()]
    rows, chance, confirmed = [], [], {}
    for key in SETS:
        sites = load_tss_set(key, genome, root)
        inside = (sites.pos >= START) & (sites.pos < END)
        by_strand = {s: np.sort(sites.pos[inside & (sites.strand == s)]) for s in "+-"}
        hit = np.zeros(len(table), dtype=bool)
        for s in "+-":
            rows_s = (table["strand"] == s).to_numpy()
            hit[rows_s] = near(table.loc[rows_s, "position"].to_numpy() - 1, by_strand[s], window)
        confirmed[key] = hit
        chance.append(f"{100 * inside.sum() * (2 * window + 1) / (2 * (END - START)):.1f} %")
    classes = [set(c.split(",")) for c in table["classes"]]
    for name in (*CLASSES, "all"):
        chosen = np.array([name == "all" or name in c for c in classes], dtype=bool)
        cells = [f"{100 * confirmed[k][chosen].mean():.1f} %" if chosen.any() else "-" for k in SETS]
        rows.append([name, f"{int(chosen.sum()):,}", *cells])
    rows.append(["a random position", "", *chance])
    print(f"Calls of {run_dir} in {CHROM}:{START + 1:,}-{END:,} with a TSS of each set within ±{window} nt, same strand\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5)
