"""The genome annotation's genes as a browser track: DIR/tracks/genes.bb (+ .ix/.ixx) and genes.bed.

Written by the peaks stage from the same GFF3 the calls' gene context is read from (`data.annotation`),
so the hub, the IGV session and the JBrowse view show each TSS call beside the genes it was classified
against. genes.bb is BED6+1: chrom, start, end (0-based half-open), name (the gene's Name, gene or
locus_tag), score 0, strand, locus_tag ('.' where the GFF3 has none); UCSC's position box, igv.js and
JBrowse find a gene by its name or locus tag, in any case. genes.bed is the same genes as a plain BED6
for IGV, which reads it whole and so finds a gene by name (IGV desktop 2.16 does not search a bigBed's
name index). A gene across a circular contig's origin (end > contig length in the GeneSet) becomes two
records, one at each end of the contig, with the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.formats.bigbed import BedSchema, remove_bed_outputs, sort_bed_records, write_bigbed
from genometracks.io.atomic import write_text_atomic
from genometracks.labels.genes import GeneSet

GENES_SCHEMA = BedSchema(
    "genes",
    "Genes of the genome annotation (GFF3 gene and pseudogene rows; CDS and RNA rows where a file has none)",
    (("string", "locus_tag", "Locus tag of the gene (. if the annotation gives none)"),),
    search=("name", "locus_tag"),
)


def gene_records(genes: GeneSet, chrom_sizes: Mapping[str, int]) -> pd.DataFrame:
    """BED6+1 records of `genes` (columns GENES_SCHEMA.columns), sorted as bigBed needs; a gene past its
    contig's end (across a circular contig's origin) is cut at the origin into two records."""
    length = np.array([chrom_sizes[c] for c in genes.chrom], dtype=np.int64)
    across = genes.end > length
    name = np.where(genes.name == "", genes.locus_tag, genes.name)
    name = np.where(name == "", ".", name)
    locus_tag = np.where(genes.locus_tag == "", ".", genes.locus_tag)
    columns = {"chrom": genes.chrom, "start": genes.start, "end": np.minimum(genes.end, length), "name": name}
    columns |= {"score": 0, "strand": genes.strand, "locus_tag": locus_tag}
    frame = pd.DataFrame(columns)
    wrapped = frame[across].assign(start=0, end=(genes.end - length)[across])  # the part past the origin
    frame = pd.concat([frame, wrapped], ignore_index=True)
    return sort_bed_records(frame)


def write_genes_track(tracks_dir: Path, genes: GeneSet | None, chrom_sizes: Mapping[str, int]) -> Path | None:
    """Write tracks_dir/genes.bb (with its trix search index) and genes.bed from `genes` (on the contigs of `chrom_sizes`,
    as `read_genes` gives them); with no genes (no annotation) remove an earlier run's files, return None."""
    prefix = Path(tracks_dir) / "genes"
    plain = prefix.with_name("genes.bed")
    if genes is None or len(genes) == 0:  # read_genes never gives no genes; a GeneSet built by hand may
        remove_bed_outputs(prefix)  # another annotation's genes would go on into the hub and the sessions
        plain.unlink(missing_ok=True)
        return None
    records = gene_records(genes, chrom_sizes)
    bigbed = write_bigbed(records, prefix.with_name("genes.bb"), GENES_SCHEMA, chrom_sizes)
    write_text_atomic(plain, records[list(GENES_SCHEMA.columns[:6])].to_csv(sep="\t", header=False, index=False))
    return bigbed
