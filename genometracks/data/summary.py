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
        entry["purine_share"] = purine_shares(genome, sites)
        warn_if_off_by_one(entry["purine_share"], len(sites), name, tss_file if name == dataset.label_set else None)
        summary["label_sets"][name] = entry
    return summary


def purine_shares(genome, sites) -> dict[str, float | None]:
    """Share of TSSs whose base is a purine (A/G, read on the TSS's strand) at -1, +1 (the TSS) and +2:
    bacterial TSSs start on a purine about 80 % of the time, so a file written 1-based where 0-based was
    meant (or the reverse) shows it at -1 or +2 instead. Circular contigs wrap; bases past a linear end
    are left out. None for a set without TSSs."""
    import numpy as np

    counts = {"-1": [0, 0], "+1": [0, 0], "+2": [0, 0]}
    chrom, pos, minus = sites.chrom.astype(str), np.asarray(sites.pos, dtype=np.int64), np.asarray(sites.strand).astype(str) == "-"
    for name, contig in genome.contigs.items():
        here = chrom == name
        if not here.any():
            continue
        forward = genome.tokens(name)
        for label, step in (("-1", -1), ("+1", 0), ("+2", 1)):
            at = pos[here] + np.where(minus[here], -step, step)  # along the TSS's own strand
            if contig.circular:
                at %= contig.length
            inside = (at >= 0) & (at < contig.length)
            base = forward[at[inside]]
            # a purine on '-' is a pyrimidine (C=1, T=3) on the forward strand
            purine = np.where(minus[here][inside], np.isin(base, (1, 3)), np.isin(base, (0, 2)))
            counts[label][0] += int(purine.sum())
            counts[label][1] += int(inside.sum())
    return {label: round(hit / total, 3) if total else None for label, (hit, total) in counts.items()}


def warn_if_off_by_one(shares: dict[str, float | None], n: int, name: str, path: Path | None) -> None:
    """One warning when at least 100 TSSs start on a purine less often at +1 than one base away by 20
    points: the file's coordinates are probably off by one (BED starts are 0-based: start = +1 - 1)."""
    import logging

    at, before, after = shares.get("+1"), shares.get("-1"), shares.get("+2")
    if n < 100 or at is None or before is None or after is None:
        return
    best, where = max((before, "-1"), (after, "+2"))
    if best >= at + 0.2:
        logging.getLogger(__name__).warning(
            "%s: %.0f %% of TSSs start on a purine (A/G) at +1 but %.0f %% at %s: its positions look off by one "
            "(BED starts are 0-based, start = +1 position - 1; GFF is 1-based)",
            path or name,
            100 * at,
            100 * best,
            where,
        )


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
