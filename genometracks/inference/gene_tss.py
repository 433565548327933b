"""Per gene, the TSS calls that belong to it: the table a biologist filters by gene name.

From the calls classified by `gene_context.classify_calls` and the genes they were classified against:
one row per gene (genome order: contig as in the genome, then start), with its coordinates as the GFF3
gives them (1-based, closed), its primary TSS call (1-based position of the +1 nucleotide, probability,
5'UTR length in nt; empty and -1 where none), its secondary calls (1-based positions, comma-separated, the
nearest first) and how many calls lie inside it on its strand (internal) and on the other strand
(antisense, as the calls' `antisense_gene`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genometracks.labels.genes import GeneSet

GENE_TSS_COLUMNS = (
    "chrom",
    "start",
    "end",
    "strand",
    "gene",
    "locus_tag",
    "primary_tss",
    "primary_probability",
    "utr_length",
    "secondary_tss",
    "internal_calls",
    "antisense_calls",
)


def gene_tss_table(calls: pd.DataFrame, genes: GeneSet, contig_order: list[str]) -> pd.DataFrame:
    """calls: `classify_calls`' table of these `genes` → one row per gene (columns GENE_TSS_COLUMNS), in the
    order of `contig_order` then start. A gene across a circular contig's origin keeps its GFF3 end (> length)."""
    n = len(genes)
    position = calls["pos"].to_numpy(np.int64) + 1
    gene_row = calls["gene_row"].to_numpy(np.int64)
    primary = calls["primary"].to_numpy(bool)
    primary_tss = np.full(n, -1, dtype=np.int64)
    probability = np.full(n, np.nan)
    utr = np.full(n, -1, dtype=np.int64)
    rows = np.flatnonzero(primary)
    primary_tss[gene_row[rows]] = position[rows]
    probability[gene_row[rows]] = calls["probability"].to_numpy(float)[rows]
    utr[gene_row[rows]] = calls["utr_length"].to_numpy(np.int64)[rows]
    secondary = np.full(n, "", dtype=object)
    rows = np.flatnonzero(calls["secondary"].to_numpy(bool))
    if rows.size:
        frame = pd.DataFrame({"gene": gene_row[rows], "utr": calls["utr_length"].to_numpy(np.int64)[rows], "pos": position[rows]})
        joined = frame.sort_values(["gene", "utr", "pos"]).groupby("gene")["pos"].agg(lambda p: ",".join(map(str, p)))
        secondary[joined.index.to_numpy()] = joined.to_numpy(object)

    def counts(column: str) -> np.ndarray:
        index = calls[column].to_numpy(np.int64)
        return np.bincount(index[index >= 0], minlength=n)

    table = pd.DataFrame(
        {
            "chrom": genes.chrom,
            "start": genes.start + 1,
            "end": genes.end,
            "strand": genes.strand,
            "gene": genes.name,
            "locus_tag": genes.locus_tag,
            "primary_tss": np.where(primary_tss >= 0, primary_tss.astype(str), ""),
            "primary_probability": np.round(probability, 6),
            "utr_length": utr,
            "secondary_tss": secondary,
            "internal_calls": counts("internal_row"),
            "antisense_calls": counts("antisense_row"),
        }
    )
    rank = {c: i for i, c in enumerate(contig_order)}
    order = np.lexsort((table["start"].to_numpy(), table["chrom"].map(rank).to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def gene_tss_summary(table: pd.DataFrame) -> dict:
    """Genes, genes with a primary TSS call (and their share), with a secondary one, median 5'UTR (nt)."""
    has = table["primary_tss"] != ""
    utr = table.loc[has, "utr_length"]
    return {
        "genes": len(table),
        "with_primary_tss": int(has.sum()),
        "share_with_primary_tss": round(float(has.mean()), 4) if len(table) else None,
        "with_secondary_tss": int((table["secondary_tss"] != "").sum()),
        "median_utr_length": round(float(np.median(utr)), 1) if len(utr) else None,
    }
