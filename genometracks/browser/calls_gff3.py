"""DIR/tracks/tss_calls.gff3: a run's TSS calls as GFF3 for annotation pipelines and genome editors.

One `TSS` feature (Sequence Ontology SO:0000315) per call of tracks/tss_peaks.bed, at the +1
nucleotide (start = end, 1-based), score = the call's probability (from the strand's bigWig), and
where the earlier stages made them: `tss_class` (primary, secondary, internal, antisense, orphan;
inference.gene_context), `gene`, `locus_tag`, `utr_length` (nt), `internal_gene`, `antisense_gene`
(tracks/tss_context.tsv), `sigma` (the sigma-class CNN's call, tracks/tss_sigma.bb) and, for calls
with a σ70 promoter in tracks/sigma70_boxes.bb (interpret.sigma70_promoters), `sigma70_minus35`,
`sigma70_minus10` (the hexamers 5'→3' on the call's strand), `sigma70_spacer`, `sigma70_discriminator` (nt)
and `sigma70_q`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig

from genometracks.formats.bigbed_index import autosql_field_names
from genometracks.formats.bigwig import read_bigwig
from genometracks.formats.gff3 import write_point_gff3
from genometracks.io.rundir import RunDir

CONTEXT_ATTRIBUTES = ("tss_class", "gene", "locus_tag", "utr_length", "internal_gene", "antisense_gene")
SIGMA70_ATTRIBUTES = ("sigma70_minus35", "sigma70_minus10", "sigma70_spacer", "sigma70_discriminator", "sigma70_q")


def calls_gff3_path(run: RunDir) -> Path:
    return run.tracks / "tss_calls.gff3"


def _bigbed_fields(path: Path, wanted: tuple[str, ...]) -> pd.DataFrame:
    """chrom and the autoSql fields `wanted` (after chromStart, chromEnd) of every record of a bigBed, as
    strings; no rows where the file was not made."""
    rows = []
    if path.is_file():
        with pyBigWig.open(str(path)) as bb:
            fields = autosql_field_names(bb.SQL().decode(errors="replace"))
            at = [fields.index(f) - 3 for f in wanted]
            for chrom, size in bb.chroms().items():
                for _, _, rest in bb.entries(chrom, 0, size) or []:
                    values = rest.split("\t")
                    rows.append((chrom, *(values[i] for i in at)))
    return pd.DataFrame(rows, columns=["chrom", *wanted])


def _sigma_calls(path: Path) -> pd.DataFrame:
    """chrom, name, sigma of the sigma track's records (empty where it was not made)."""
    return _bigbed_fields(path, ("name", "sigma"))


def _sigma70_promoters(path: Path) -> pd.DataFrame:
    """chrom, name (the call) and SIGMA70_ATTRIBUTES of the σ70 boxes track's promoters (empty where it
    was not made), one row per call."""
    boxes = _bigbed_fields(path, ("name", "tss", "sequence", "spacer", "discriminator", "qValue"))
    if boxes.empty:
        return pd.DataFrame(columns=["chrom", "name", *SIGMA70_ATTRIBUTES])
    boxes = boxes.rename(columns={"name": "box", "tss": "name"})
    sequences = boxes.pivot_table(index=["chrom", "name"], columns="box", values="sequence", aggfunc="first")
    first = boxes.groupby(["chrom", "name"])[["spacer", "discriminator", "qValue"]].first()
    out = pd.concat([sequences.reindex(columns=["-35", "-10"]), first], axis=1).reset_index()
    out.columns = ["chrom", "name", *SIGMA70_ATTRIBUTES]
    out["sigma70_q"] = out["sigma70_q"].astype(float).map(lambda q: float(f"{q:.3g}"))
    return out


def _context(path: Path) -> pd.DataFrame | None:
    """tracks/tss_context.tsv keyed by chrom and name, its classes as lists; None where not made."""
    if not path.is_file():
        return None
    table = pd.read_csv(path, sep="\t", dtype={"chrom": str, "name": str}, keep_default_na=False)
    table["tss_class"] = table["classes"].str.split(",")
    table["utr_length"] = table["utr_length"].map(lambda n: "" if int(n) < 0 else int(n))
    return table[["chrom", "name", *CONTEXT_ATTRIBUTES]]


def write_calls_gff3(run: RunDir, chrom_sizes: dict[str, int]) -> Path | None:
    """Write DIR/tracks/tss_calls.gff3 from the run's calls (module docstring); None, and an earlier
    file removed, where the run has no calls."""
    out = calls_gff3_path(run)
    if not run.peaks_bed.is_file() or run.peaks_bed.stat().st_size == 0:
        out.unlink(missing_ok=True)
        return None
    calls = pd.read_csv(
        run.peaks_bed, sep="\t", header=None, names=["chrom", "start", "end", "name", "score", "strand"], dtype={"chrom": str, "name": str}
    )
    calls["pos"] = calls["start"].astype(np.int64)
    probability = np.zeros(len(calls))
    for (chrom, strand), rows in calls.groupby(["chrom", "strand"]).groups.items():
        values = read_bigwig(run.tss_bigwig(str(strand)), str(chrom))
        index = calls.index.get_indexer(rows)
        probability[index] = values[calls["pos"].to_numpy()[index]]
    calls["score"] = np.round(probability, 6)
    attributes: list[str] = []
    context = _context(RunDir(run.root).tracks / "tss_context.tsv")
    if context is not None:
        calls = calls.merge(context, on=["chrom", "name"], how="left", validate="one_to_one")
        attributes += list(CONTEXT_ATTRIBUTES)
    sigma = _sigma_calls(run.sigma_bigbed)
    if len(sigma):
        calls = calls.merge(sigma, on=["chrom", "name"], how="left", validate="one_to_one")
        attributes.append("sigma")
    promoters = _sigma70_promoters(run.track("sigma70_boxes.bb"))
    if len(promoters):
        calls = calls.merge(promoters, on=["chrom", "name"], how="left", validate="one_to_one")
        attributes += list(SIGMA70_ATTRIBUTES)
    calls[attributes] = calls[attributes].astype(object).where(calls[attributes].notna(), None)
    return write_point_gff3(out, calls, {c: chrom_sizes[c] for c in chrom_sizes}, "TSS", "genometracks", attributes)
