"""Genes of a genome annotation (GFF3, gz ok), for placing TSS calls in their gene context.

`read_genes` returns a `GeneSet`: 0-based half-open [start, end) forward coordinates per gene, its
strand, a display name and its locus tag, on the genome's contig names. A gene written across a
circular contig's origin (GFF3's end > contig length) keeps end > length; `GeneSet.five_prime` is
the gene's first base on its own strand (start on '+', end - 1 on '-', modulo the length).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd

from genometracks.labels.annotations import AnnotationError, _intervals, _read_rows, normalise_chrom

GENE_FEATURES = ("gene", "pseudogene")  # RefSeq, Bakta, NCBI's PGAP
# where a GFF3 has no gene rows (Prokka writes its features without them): the features that are the genes,
# RNA genes too (an rRNA operon's promoters are among a genome's strongest TSSs)
GENE_PRODUCTS = ("CDS", "rRNA", "tRNA", "tmRNA", "ncRNA")


@dataclass(frozen=True)
class GeneSet:
    """Genes as parallel arrays [n]: contig (object), start/end (int64, 0-based half-open), strand
    ('<U1'), name and locus_tag (object, '' where the GFF has none); `source` names the file."""

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    strand: np.ndarray
    name: np.ndarray
    locus_tag: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.start)

    def five_prime(self, lengths: np.ndarray) -> np.ndarray:
        """First base of each gene on its own strand, 0-based forward coordinate [n] (`lengths` [n] of
        each gene's contig: a gene across the origin wraps)."""
        return np.where(self.strand == "+", self.start, self.end - 1) % lengths


def _attribute(attrs: pd.Series, key: str) -> pd.Series:
    """The value of GFF3 attribute `key` per row (percent-decoded), NaN where absent."""
    return attrs.str.extract(rf"(?:^|;)\s*{key}=([^;]*)")[0].map(lambda v: unquote(v) if isinstance(v, str) else v)


def read_genes(gff: str | Path, contigs: dict[str, int], circular: frozenset[str] = frozenset()) -> GeneSet:
    """Gene rows (types GENE_FEATURES; GENE_PRODUCTS where the file has none) of a GFF3 as a `GeneSet` on the
    genome's contig names (`contigs`: name → length; aliases resolved as for TSS files). A record
    with start > end, a bad strand or past its contig's end (another assembly's annotation) raises
    AnnotationError naming the file, the line and the fix; a circular contig's gene may run past the
    end by less than one length (GFF3 writes a gene across the origin so)."""
    path = Path(gff)
    cols, lines = _read_rows(path, min_cols=9)
    types = cols[2]
    keep = np.flatnonzero(np.isin(types, GENE_FEATURES))
    if keep.size == 0:
        keep = np.flatnonzero(np.isin(types, GENE_PRODUCTS))
    if keep.size == 0:
        raise AnnotationError(
            f"{path}: no gene, pseudogene, CDS or RNA gene rows (types: {sorted(set(types))[:8]}); "
            "give a GFF3 genome annotation (RefSeq, Prokka, Bakta) or set data.annotation=null"
        )
    cols, lines = {k: v[keep] for k, v in cols.items()}, lines[keep]
    start, end, strand = _intervals(cols, (3, 4, 6), 1, "GFF is 1-based, need 1 <= start <= end", path, lines)
    chrom = normalise_chrom(cols[0], list(contigs), str(path), lines)
    length = np.array([contigs[c] for c in chrom], dtype=np.int64)
    round_ = np.array([c in circular for c in chrom], dtype=bool)
    past = np.flatnonzero((start > length) | ((end > length) & ~round_) | (end - start + 1 > length))
    if past.size:
        i = int(past[0])
        raise AnnotationError(
            f"{path}, line {lines[i]}: {cols[2][i]} {cols[0][i]}:{start[i]}-{end[i]} ends past {chrom[i]} "
            f"({length[i]:,} nt; {past.size} records do); give the annotation of this genome's assembly"
        )
    attrs = pd.Series(cols[8], dtype=str)
    locus_tag = _attribute(attrs, "locus_tag").astype(object)
    name = _attribute(attrs, "Name").astype(object)
    for fallback in (_attribute(attrs, "gene"), locus_tag, _attribute(attrs, "ID")):
        name = name.fillna(fallback.astype(object))
    return GeneSet(
        chrom=chrom,
        start=start - 1,
        end=end,
        strand=strand,
        name=name.fillna("").to_numpy(object),
        locus_tag=locus_tag.fillna("").to_numpy(object),
        source=str(path),
    )
