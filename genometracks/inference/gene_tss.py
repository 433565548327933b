"""Per gene, the TSS calls that belong to it: the table a biologist filters by gene name.

From the calls classified by `gene_context.classify_calls` and the genes they were classified against:
one row per gene (genome order: contig as in the genome, then start), with its coordinates as the GFF3
gives them (1-based, closed), its primary TSS call (1-based position of the +1 nucleotide, probability,
5'UTR length in nt; empty and -1 where none), its secondary calls (1-based positions, comma-separated, the
nearest first) and how many calls lie inside it on its strand (internal) and on the other strand
(antisense, as the calls' `antisense_gene`), and its upstream neighbour: the next gene upstream in genome
order, with the nt between them (`upstream_gap`, negative where they overlap) when it lies on the same
strand, else none (-1 and ''; the gene then heads a directon, a run of same-strand genes, and needs a
promoter of its own). Genes a short gap behind a same-strand gene are mostly inside operons (Salgado et al.
2000, PNAS 97:6652: gaps under ~40 nt), so the share of genes with a primary call by upstream gap is a
label-free check of a TSS map.
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
    "upstream_gene",
    "upstream_gap",
)
# the classes of same-strand upstream gap, [low, high) nt, the summary counts genes with a primary call in, after
# the directon heads (Salgado et al. 2000)
GAP_CLASSES = (("gap >= 100", 100, np.inf), ("gap 40-99", 40, 100), ("gap < 40", -np.inf, 40))


def upstream_neighbours(genes: GeneSet, contigs: dict[str, int], circular: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per gene [n]: the GeneSet row of the next gene upstream on its contig in start order (the one before on '+',
    after on '-'; across the origin of a circular contig) where that gene is on the same strand, else -1; and
    the nt between them (start - end of the one before, negative for an overlap; -1 where no row)."""
    n = len(genes)
    row, gap = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    for contig in pd.unique(genes.chrom):
        idx = np.flatnonzero(genes.chrom == contig)
        if idx.size < 2:
            continue
        idx = idx[np.lexsort((genes.end[idx], genes.start[idx]))]
        length, round_ = int(contigs[contig]), contig in circular
        start, end, strand = genes.start[idx], genes.end[idx], genes.strand[idx]
        plus = strand == "+"
        before, after = np.roll(np.arange(idx.size), 1), np.roll(np.arange(idx.size), -1)
        other = np.where(plus, before, after)  # the upstream neighbour's position in idx
        # nt between: '+' from the one before's end to this start; '-' from this end to the next one's start
        between = np.where(plus, start - end[before], start[after] - end)
        wraps = np.where(plus, np.arange(idx.size) == 0, np.arange(idx.size) == idx.size - 1)
        between = np.where(wraps, between + length, between)
        same = (strand[other] == strand) & (round_ | ~wraps)
        row[idx] = np.where(same, idx[other], -1)
        gap[idx] = np.where(same, between, -1)
    return row, gap


def _label(genes: GeneSet) -> np.ndarray:
    """A gene's name, else its locus tag, else '.' (object [n]): never empty, so '' can mean no gene."""
    label = np.where(genes.name == "", genes.locus_tag, genes.name)
    return np.where(label == "", ".", label).astype(object)


def gene_tss_table(calls: pd.DataFrame, genes: GeneSet, contigs: dict[str, int], circular: frozenset[str] = frozenset()) -> pd.DataFrame:
    """calls: `classify_calls`' table of these `genes` → one row per gene (columns GENE_TSS_COLUMNS), in the
    order of `contigs` then start. A gene across a circular contig's origin keeps its GFF3 end (> length)."""
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

    upstream, gap = upstream_neighbours(genes, contigs, circular)

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
            "upstream_gene": np.where(upstream >= 0, _label(genes)[np.maximum(upstream, 0)] if n else "", ""),
            "upstream_gap": gap,
        }
    )
    rank = {c: i for i, c in enumerate(contigs)}
    order = np.lexsort((table["start"].to_numpy(), table["chrom"].map(rank).to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def gene_tss_summary(table: pd.DataFrame) -> dict:
    """Genes, genes with a primary TSS call (and their share), with a secondary one, median 5'UTR (nt), and per
    class of upstream gap (GAP_CLASSES) the genes and the share of them with a primary call."""
    has = table["primary_tss"] != ""
    utr = table.loc[has, "utr_length"]
    gap, head = table["upstream_gap"].to_numpy(np.int64), (table["upstream_gene"] == "").to_numpy(bool)

    def share(member: np.ndarray) -> dict:
        return {"genes": int(member.sum()), "share_with_primary_tss": round(float(has[member].mean()), 4) if member.any() else None}

    by_gap = {"directon head": share(head)} | {name: share(~head & (gap >= low) & (gap < high)) for name, low, high in GAP_CLASSES}
    return {
        "genes": len(table),
        "with_primary_tss": int(has.sum()),
        "share_with_primary_tss": round(float(has.mean()), 4) if len(table) else None,
        "with_secondary_tss": int((table["secondary_tss"] != "").sum()),
        "median_utr_length": round(float(np.median(utr)), 1) if len(utr) else None,
        "by_upstream_gap": by_gap,
    }
