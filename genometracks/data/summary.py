"""The data commands: `genometracks data summary` and `genometracks labels`."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from genometracks.data.dataset import Dataset, generates_genome, load_dataset, load_sites, open_genome, split_positive_counts
from genometracks.data.streams import positions_per_split
from genometracks.formats.bigbed import write_bed_gz
from genometracks.io.atomic import write_text_atomic
from genometracks.io.run_config import ConfigError
from genometracks.labels.annotations import sites_to_bed_lines
from genometracks.labels.curation import write_overlap_report


def summarise_data(cfg: DictConfig) -> dict:
    """Contigs and lengths, positions per split (both strands), positives per set / split / strand."""
    dataset = load_dataset(cfg)
    genome = dataset.genome
    summary = {
        "data": cfg.data.name,
        "fasta": str(dataset.fasta),
        "contigs": {n: {"length": c.length, "circular": c.circular} for n, c in genome.contigs.items()},
        "total_length": genome.total_length,
        "shift": dataset.shift,
        "splits": {name: [f"{r.chrom}:{r.start}-{r.end}" for r in regions] for name, regions in dataset.splits.items()},
        "positions_per_split": positions_per_split(dataset.splits),
        "label_sets": {},
    }
    tss_file = Path(str(cfg.data.tss)) if cfg.data.get("tss") else None
    if generates_genome(cfg.data):  # the generated genome's planted TSSs
        tss_file = open_genome(cfg)[2]
    for name in cfg.data.label_sets:
        sites = dataset.sites if name == dataset.label_set else load_sites(cfg, genome, name, tss_file)
        entry = {"total": len(sites), "per_split": split_positive_counts(dataset, sites)}
        if "liftover" in sites.meta:
            entry["liftover"] = sites.meta["liftover"]
        summary["label_sets"][name] = entry
    return summary


def data_summary(cfg: DictConfig) -> dict:
    """Print the data summary as JSON on stdout."""
    summary = summarise_data(cfg)
    print(json.dumps(summary, indent=2, default=str))
    return summary


def write_labels(cfg: DictConfig) -> Path:
    """Write one TSS set (`labels=<set>`, lifted or curated) as sorted BED6 to `out=PATH.bed`
    (`PATH.bed.gz`: bgzip-compressed, with a tabix index beside it)."""
    if not cfg.get("out"):
        raise ConfigError("genometracks labels needs out=PATH.bed")
    dataset = load_dataset(cfg, label_set=cfg.get("labels"))
    out = Path(str(cfg.out))
    lines = sites_to_bed_lines(dataset.sites.sorted())
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    if out.suffix == ".gz":
        write_bed_gz(text, out)
    else:
        write_text_atomic(out, text)
    meta = {"labels": dataset.label_set, "records": len(dataset.sites), "out": str(out)}
    if dataset.label_set == "curated":
        base = out.name.removesuffix(".gz").removesuffix(".bed")
        meta["overlap_report"] = str(write_curation_overlap(cfg, dataset, out.with_name(base + "_overlap")))
    meta.update(dataset.sites.meta.get("liftover", {}) and {"liftover": dataset.sites.meta["liftover"]})
    print(json.dumps(meta, default=str))
    return out


def write_curation_overlap(cfg: DictConfig, dataset: Dataset, out_dir: Path) -> Path:
    """The TSS paper's Figure 2 for the curated set's sources: pairwise shared counts within the
    window and the distribution of shifts (overlap.tsv, shifts.tsv, overlap.png in `out_dir`)."""
    sources = list(cfg.data.curation.priority)
    sets = {name: load_sites(cfg, dataset.genome, name, None) for name in sources}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_overlap_report(sets, out_dir)
    return out_dir
