"""TSS calls in their gene context: primary, secondary, internal, antisense or orphan.

The classes of dRNA-seq TSS maps (Sharma et al. 2010, Nature 464:250; TSSpredator, Dugar et al.
2013), with TSSpredator's default distances. For a TSS at 0-based forward coordinate p on strand s
and genes [start, end) whose first base on their own strand is `five` (start on '+', end - 1 on '-'):

- upstream of a gene: a gene on s whose first base lies 0..`max_utr` nt downstream of p (the 5'UTR
  length; 0 is a leaderless mRNA). The nearest such gene is the TSS's gene; of the TSSs with the same
  gene, the most probable is **primary** (ties: the shorter UTR, then the 5'-most), the others
  **secondary**;
- **internal**: inside a gene on s, after its first base;
- **antisense**: inside a gene on the other strand or within `antisense_flank` nt of its ends (its
  antisense gene: one whose body holds the TSS where there is one, else one whose flanks do);
- **orphan**: none of these.
A TSS may be several at once (primary for one gene and internal to the one before, say). Distances
run across the origin of circular contigs. Vectorised over all calls of a contig and strand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from genometracks.labels.genes import GeneSet

CLASSES = ("primary", "secondary", "internal", "antisense", "orphan")
OTHER_STRAND = {"+": "-", "-": "+"}


@dataclass(frozen=True)
class ContextRules:
    """Distances in nt: the longest 5'UTR of a primary/secondary TSS, and how far beyond a gene's ends
    on the other strand a TSS still counts as antisense (TSSpredator's defaults: 300 and 100)."""

    max_utr: int = 300
    antisense_flank: int = 100

    def __post_init__(self) -> None:
        if self.max_utr < 0 or self.antisense_flank < 0:
            raise ValueError(f"max_utr and antisense_flank must be >= 0 nt; got {self.max_utr}, {self.antisense_flank}")


def _with_copies(lo: np.ndarray, hi: np.ndarray, length: int, circular: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intervals [lo, hi) [n] and, on a circular contig, their copies one length before and after
    (so that a query in [0, length) finds those across the origin); returns (lo, hi, original index)."""
    index = np.arange(len(lo))
    if not circular:
        return lo, hi, index
    shifts = np.array([-length, 0, length], dtype=np.int64)[:, None]
    return (lo[None, :] + shifts).ravel(), (hi[None, :] + shifts).ravel(), np.tile(index, 3)


def covering(lo: np.ndarray, hi: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each query position [q], the index of an interval [lo, hi) that contains it (of those
    that do, the one reaching furthest), else -1: the running maximum of `hi` over intervals sorted
    by `lo`, read at the last interval starting at or before the query."""
    if not len(lo):
        return np.full(len(queries), -1, dtype=np.int64)
    order = np.argsort(lo, kind="stable")
    lo_sorted, hi_sorted = lo[order], hi[order]
    reach = np.maximum.accumulate(hi_sorted)
    holder = np.maximum.accumulate(np.where(hi_sorted == reach, np.arange(len(order)), 0))  # where `reach` was set
    j = np.searchsorted(lo_sorted, queries, side="right") - 1
    found = (j >= 0) & (reach[np.maximum(j, 0)] > queries)
    return np.where(found, order[holder[np.maximum(j, 0)]], -1)


def nearest_downstream_start(five: np.ndarray, strand: str, queries: np.ndarray, max_utr: int) -> tuple[np.ndarray, np.ndarray]:
    """For TSSs at `queries` [q] on `strand`, the index into `five` [n] (first bases of the genes on
    the same strand, with circular copies) of the nearest one 0..max_utr nt downstream, else -1;
    and that distance (the 5'UTR length, -1 where none)."""
    if not len(five):
        return np.full(len(queries), -1, dtype=np.int64), np.full(len(queries), -1, dtype=np.int64)
    order = np.argsort(five, kind="stable")
    sorted_five = five[order]
    if strand == "+":  # the smallest first base >= p
        j = np.searchsorted(sorted_five, queries, side="left")
        ok = j < len(order)
        distance = np.where(ok, sorted_five[np.minimum(j, len(order) - 1)] - queries, -1)
    else:  # the largest first base <= p
        j = np.searchsorted(sorted_five, queries, side="right") - 1
        ok = j >= 0
        distance = np.where(ok, queries - sorted_five[np.maximum(j, 0)], -1)
    ok &= (distance >= 0) & (distance <= max_utr)
    return np.where(ok, order[np.clip(j, 0, len(order) - 1)], -1), np.where(ok, distance, -1)


def classify_calls(
    calls: pd.DataFrame, genes: GeneSet, contigs: dict[str, int], circular: frozenset[str], rules: ContextRules = ContextRules()
) -> pd.DataFrame:
    """calls: chrom, pos (0-based +1 nucleotide), strand, probability [n] → the same rows with
    primary, secondary, internal, antisense, orphan (bool), classes ('primary,internal'; the order of
    CLASSES), gene, locus_tag, utr_length (nt; -1 without a gene), internal_gene, antisense_gene, and those
    three genes as GeneSet rows (gene_row, internal_row, antisense_row; -1 for none)."""
    n = len(calls)
    out = calls.reset_index(drop=True).copy()
    gene_of = np.full(n, -1, dtype=np.int64)
    utr = np.full(n, -1, dtype=np.int64)
    internal_of = np.full(n, -1, dtype=np.int64)
    antisense_of = np.full(n, -1, dtype=np.int64)
    chrom, pos, strand = out["chrom"].to_numpy(object), out["pos"].to_numpy(np.int64), out["strand"].to_numpy(str)
    for contig in pd.unique(chrom):
        length, round_ = int(contigs[contig]), contig in circular
        on_contig = genes.chrom == contig
        for s in "+-":
            rows = np.flatnonzero((chrom == contig) & (strand == s))
            if not rows.size:
                continue
            p = pos[rows]
            sense = np.flatnonzero(on_contig & (genes.strand == s))
            first = genes.start[sense] if s == "+" else genes.end[sense] - 1
            five, _, index = _with_copies(first, first + 1, length, round_)
            found, distance = nearest_downstream_start(five, s, p, rules.max_utr)
            gene_of[rows] = _gene_rows(sense, index, found)
            utr[rows] = distance
            # inside a sense gene, after its first base: (start, end) on '+', [start, end - 1) on '-'
            lo, hi = (genes.start[sense] + 1, genes.end[sense]) if s == "+" else (genes.start[sense], genes.end[sense] - 1)
            lo, hi, index = _with_copies(lo, hi, length, round_)
            inside = covering(lo, hi, p)
            internal_of[rows] = _gene_rows(sense, index, inside)
            # antisense: the other strand's gene whose body holds p, else one whose flanks do
            anti = np.flatnonzero(on_contig & (genes.strand == OTHER_STRAND[s]))
            flank = rules.antisense_flank
            lo, hi, index = _with_copies(genes.start[anti], genes.end[anti], length, round_)
            body = _gene_rows(anti, index, covering(lo, hi, p))
            lo, hi, index = _with_copies(genes.start[anti] - flank, genes.end[anti] + flank, length, round_)
            antisense_of[rows] = np.where(body >= 0, body, _gene_rows(anti, index, covering(lo, hi, p)))
    upstream = gene_of >= 0
    primary = np.zeros(n, dtype=bool)
    if upstream.any():  # per gene, the most probable TSS; ties: shorter UTR, then 5'-most on its strand
        rows = np.flatnonzero(upstream)
        five_most = np.where(strand[rows] == "+", pos[rows], -pos[rows])
        order = rows[np.lexsort((five_most, utr[rows], -out["probability"].to_numpy(float)[rows], gene_of[rows]))]
        first_of_gene = np.r_[True, gene_of[order][1:] != gene_of[order][:-1]]
        primary[order[first_of_gene]] = True
    out["primary"], out["secondary"] = primary, upstream & ~primary
    out["internal"], out["antisense"] = internal_of >= 0, antisense_of >= 0
    out["orphan"] = ~(upstream | out["internal"].to_numpy() | out["antisense"].to_numpy())
    flags = out[list(CLASSES)].to_numpy(bool)
    out["classes"] = [",".join(c for c, f in zip(CLASSES, row) if f) for row in flags]
    out["gene"] = _names(genes.name, gene_of)
    out["locus_tag"] = _names(genes.locus_tag, gene_of)
    out["utr_length"] = utr
    out["internal_gene"] = _names(genes.name, internal_of)
    out["antisense_gene"] = _names(genes.name, antisense_of)
    # the same genes as rows of the GeneSet (-1: none): names need not be unique
    out["gene_row"], out["internal_row"], out["antisense_row"] = gene_of, internal_of, antisense_of
    return out


def _gene_rows(genes: np.ndarray, index: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Rows of the GeneSet [q] from `found` (indices into the intervals with circular copies, -1 for
    none): `index` maps a copy to its interval, `genes` an interval to its GeneSet row."""
    if not len(index):
        return np.full(len(found), -1, dtype=np.int64)
    return np.where(found >= 0, genes[index[np.maximum(found, 0)]], -1)


def _names(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[index] where index >= 0, '' elsewhere (object [n])."""
    picked = np.asarray(values, dtype=object)[np.maximum(index, 0)] if len(values) else np.full(len(index), "", dtype=object)
    return np.where(index >= 0, picked, "")


def class_counts(table: pd.DataFrame) -> dict[str, int]:
    """Calls per class (a call counts in each of its classes) and in all."""
    counts = {c: int(table[c].sum()) for c in CLASSES} if len(table) else dict.fromkeys(CLASSES, 0)
    return {**counts, "calls": len(table)}
