"""The peaks stage's gene context of a run's TSS calls, beside the data set's own TSSs.

Writes, when the data set has a genome annotation (`data.annotation`, a GFF3):
- DIR/tracks/tss_context.tsv: one row per call: chrom, position (1-based +1 nucleotide, as in the
  call's name), strand, name, probability, classes (see `gene_context`), gene, locus_tag,
  utr_length (nt; -1 without a gene), internal_gene, antisense_gene;
- DIR/tracks/gene_tss.tsv: one row per gene: its primary and secondary TSS calls, 5'UTR length and the
  calls inside it on either strand (`gene_tss`);
- DIR/tracks/tss_context.json: the rules, the annotation and the calls per class, with the same for
  the data set's TSS labels (E. coli's curated set) where it has them;
- DIR/plots/tss_context.png: share of each class, and the 5'UTR lengths of primary TSSs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from genometracks.data.dataset import load_sites, open_genome
from genometracks.inference.gene_context import CLASSES, ContextRules, class_counts, classify_calls
from genometracks.inference.gene_tss import gene_tss_summary, gene_tss_table
from genometracks.io.atomic import write_text_atomic
from genometracks.io.figures import new_figure, save_figure
from genometracks.io.rundir import RunDir
from genometracks.labels.genes import GeneSet, read_genes

log = logging.getLogger(__name__)

TABLE_COLUMNS = (
    "chrom",
    "position",
    "strand",
    "name",
    "probability",
    "classes",
    "gene",
    "locus_tag",
    "utr_length",
    "internal_gene",
    "antisense_gene",
)


def context_paths(run: RunDir) -> dict[str, Path]:
    """The stage's files: table (TSV, per call), genes (TSV, per gene), summary (JSON), plot (PNG)."""
    return {
        "table": run.tracks / "tss_context.tsv",
        "genes": run.tracks / "gene_tss.tsv",
        "summary": run.tracks / "tss_context.json",
        "plot": run.plots / "tss_context.png",
    }


def calls_frame(bed: pd.DataFrame, values: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """BED6 calls (chrom, start, end, name, score, strand) → chrom, pos (0-based), strand, name and
    the call's probability read from the track `values` {strand: {contig: float [length]}}."""
    pos = bed["start"].to_numpy(np.int64)
    chrom, strand = bed["chrom"].to_numpy(object), bed["strand"].to_numpy(str)
    probability = np.zeros(len(pos), dtype=np.float64)
    for (contig, s), rows in pd.Series(np.arange(len(pos))).groupby([chrom, strand]).groups.items():
        probability[rows] = values[s][contig][pos[rows]]
    return pd.DataFrame({"chrom": chrom, "pos": pos, "strand": strand, "name": bed["name"].to_numpy(object), "probability": probability})


def reference_frame(cfg: DictConfig, contigs: dict[str, int]) -> tuple[pd.DataFrame | None, str | None]:
    """The data set's TSS labels as calls of equal probability (so each gene's primary TSS is its
    nearest), with the label set's name; (None, None) where the data set has no labels."""
    genome, _, tss_file = open_genome(cfg)
    label_set = str(cfg.get("labels") or cfg.data.labels)
    if label_set in ("planted", "custom") and tss_file is None:
        return None, None
    sites = load_sites(cfg, genome, label_set, tss_file)
    keep = np.isin(sites.chrom, list(contigs))
    frame = pd.DataFrame(
        {"chrom": sites.chrom[keep], "pos": sites.pos[keep], "strand": sites.strand[keep], "name": sites.name[keep], "probability": 0.0}
    )
    return frame, label_set


def _summary_of(table: pd.DataFrame) -> dict:
    """Counts per class and the median 5'UTR of the primary TSSs (nt)."""
    utr = table.loc[table["primary"], "utr_length"] if len(table) else pd.Series(dtype=float)
    return {**class_counts(table), "median_primary_utr": round(float(np.median(utr)), 1) if len(utr) else None}


def annotation_genes(cfg: DictConfig, contigs: dict[str, int], circular: frozenset[str]) -> GeneSet | None:
    """The genes of the data set's genome annotation (`data.annotation`, a GFF3) on `contigs`; None without one."""
    annotation = cfg.data.get("annotation")
    return read_genes(str(annotation), contigs, circular) if annotation else None


def write_call_context(
    cfg: DictConfig,
    bed: pd.DataFrame,
    values: dict[str, dict[str, np.ndarray]],
    genes: GeneSet | None,
    contigs: dict[str, int],
    circular: frozenset[str],
) -> tuple[dict, pd.DataFrame | None]:
    """The gene context files of the calls `bed` among `genes` (`annotation_genes`; module docstring):
    (summary, the classified calls in `bed`'s order); ({}, None), and earlier files removed, without genes."""
    run = RunDir.of_job(cfg)
    paths = context_paths(run)
    if genes is None:
        for path in paths.values():
            path.unlink(missing_ok=True)  # an earlier annotation's classes would describe other calls
        return {}, None
    settings = cfg.predict.peaks.gene_context
    rules = ContextRules(int(settings.max_utr), int(settings.antisense_flank))
    table = classify_calls(calls_frame(bed, values), genes, contigs, circular, rules)
    reference, label_set = reference_frame(cfg, contigs)
    reference_table = classify_calls(reference, genes, contigs, circular, rules) if reference is not None else None
    out = table.assign(position=table["pos"] + 1, probability=table["probability"].round(6))
    write_text_atomic(paths["table"], out[list(TABLE_COLUMNS)].to_csv(sep="\t", index=False))
    per_gene = gene_tss_table(table, genes, contigs, circular)
    write_text_atomic(paths["genes"], per_gene.to_csv(sep="\t", index=False))
    summary = {
        "annotation": genes.source,
        "genes": len(genes),
        "rules": {"max_utr": rules.max_utr, "antisense_flank": rules.antisense_flank},
        "calls": _summary_of(table),
        "per_gene": gene_tss_summary(per_gene),
        "reference": None
        if reference_table is None
        else {
            "labels": label_set,
            **_summary_of(reference_table),
            "per_gene": gene_tss_summary(gene_tss_table(reference_table, genes, contigs, circular)),
        },
    }
    write_text_atomic(paths["summary"], json.dumps(summary, indent=1) + "\n")
    plot_context(table, reference_table, label_set, rules, paths["plot"])
    files = {k: str(p.relative_to(run.root)) for k, p in paths.items()}
    return {**summary["calls"], "per_gene": summary["per_gene"], "files": files}, table


# the calls' bigBed fields after BED6 where they have a gene context (what a browser shows on a click)
CONTEXT_FIELDS = (
    ("string", "tss_class", "Gene context: primary, secondary, internal, antisense or orphan (several comma-separated)"),
    ("string", "gene", "Gene whose primary or secondary TSS this is (. if none)"),
    ("int", "utr_length", "5'UTR length to that gene's start, nt (-1 if none)"),
)


def with_context_fields(bed: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The BED6 calls with CONTEXT_FIELDS from `classify_calls`' table (same rows, same order)."""
    return bed.assign(
        tss_class=table["classes"].to_numpy(object),
        gene=np.where(table["gene"].to_numpy(object) == "", ".", table["gene"].to_numpy(object)),
        utr_length=table["utr_length"].to_numpy(np.int64),
    )


def plot_context(table: pd.DataFrame, reference: pd.DataFrame | None, label_set: str | None, rules: ContextRules, path: Path) -> Path:
    """PNG: the share of each class (calls, and the labels beside them), and a histogram of the primary
    TSSs' 5'UTR lengths (0..max_utr nt, 10-nt bins, each set as a share of its primary TSSs)."""
    fig = new_figure(10.5, 3.6, layout="constrained")
    shares, lengths = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    sets = [("TSS calls", table, "#7b1fa2")]
    if reference is not None:
        sets.append((f"{label_set} TSSs", reference, "#9e9e9e"))
    width = 0.8 / len(sets)
    bins = np.arange(0, rules.max_utr + 11, 10)
    for i, (label, frame, colour) in enumerate(sets):
        share = [100 * frame[c].mean() if len(frame) else 0.0 for c in CLASSES]
        offset = (i - (len(sets) - 1) / 2) * width
        shares.bar(np.arange(len(CLASSES)) + offset, share, width, color=colour, label=f"{label} (n = {len(frame):,})")
        utr = frame.loc[frame["primary"], "utr_length"].to_numpy() if len(frame) else np.array([])
        if utr.size:
            weights = np.full(utr.size, 100 / utr.size)
            lengths.hist(utr, bins=bins, weights=weights, histtype="step", lw=1.6, color=colour, label=f"{label} ({utr.size:,} primary)")
    shares.set_xticks(np.arange(len(CLASSES)), CLASSES)
    shares.set(ylabel="% of TSSs (a TSS may be in several classes)", title="TSSs by gene context")
    shares.legend(fontsize=8)
    lengths.set(
        xlabel="5'UTR length of primary TSSs, nt",
        ylabel="% of primary TSSs per 10 nt",
        title=f"5'UTR lengths (primary: most probable TSS <= {rules.max_utr} nt upstream)",
    )
    lengths.legend(fontsize=8)
    for ax in (shares, lengths):
        ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)
