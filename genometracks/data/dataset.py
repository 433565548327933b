"""From a `data=` config to what training and prediction need: genome, TSS sites, splits, labels."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from genometracks.data.streams import Splits, make_splits
from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import Genome
from genometracks.io.run_config import ConfigError
from genometracks.labels import annotations
from genometracks.labels.synthetic import SyntheticSpec, write_synthetic


@dataclass
class Dataset:
    """A genome with one TSS label set and its train/validation/test splits."""

    genome: Genome
    sites: SiteSet
    label_set: str
    splits: Splits
    shift: int
    fasta: Path


def _plain(node) -> object:
    if isinstance(node, DictConfig) or OmegaConf.is_list(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def synthetic_files(data_cfg: DictConfig, cache_root: str | Path) -> tuple[Path, Path]:
    """Generate (once, cached by the spec's hash) the synthetic genome FASTA and its TSS BED."""
    spec_dict = _plain(data_cfg.generator)
    if "spacer" in spec_dict:
        spec_dict["spacer"] = tuple(spec_dict["spacer"])
    key = hashlib.sha1(json.dumps(spec_dict, sort_keys=True).encode()).hexdigest()[:12]
    out_dir = Path(cache_root).expanduser() / "synthetic" / key
    fasta, bed = out_dir / "synthetic.fa", out_dir / "synthetic_tss.bed"
    if not (fasta.exists() and bed.exists()):
        out_dir.mkdir(parents=True, exist_ok=True)
        fasta, bed = write_synthetic(SyntheticSpec(**spec_dict), out_dir)
    return Path(fasta), Path(bed)


def generates_genome(data: DictConfig) -> bool:
    """Whether the data set's genome is generated: data.fasta null (data=synthetic) and data.generator
    set. A FASTA, given or still to be given (`???`), wins, so that an experiment's generator settings
    (experiment=smoke data=custom data.fasta=G.fa) do not replace the user's genome."""
    return not OmegaConf.is_missing(data, "fasta") and data.get("fasta") is None and data.get("generator") is not None


def open_genome(cfg: DictConfig) -> tuple[Genome, Path, Path | None]:
    """(genome, fasta path, TSS file or None) for the configured data set."""
    data = cfg.data
    tss = None
    if generates_genome(data):  # a generated genome (data=synthetic)
        fasta, tss = synthetic_files(data, cfg.paths.cache)
        circular = data.circular
        if circular is None:
            first = next(iter(Genome.open(fasta).contigs))
            circular = [first]
    else:
        if data.fasta in (None, "???"):
            raise ConfigError("data.fasta is not set; pass data.fasta=PATH/genome.fa")
        fasta = Path(str(data.fasta)).expanduser()
        circular = data.circular or []
        if data.get("tss"):
            tss = Path(str(data.tss)).expanduser()
    genome = Genome.open(fasta, circular=list(circular), circular_tags=bool(data.get("circular_tags", True)))
    return genome, fasta, tss


def load_sites(cfg: DictConfig, genome: Genome, label_set: str, tss_file: Path | None) -> SiteSet:
    """One TSS set on the genome's contig names: a shared E. coli set, or the data set's own file."""
    if label_set in ("planted", "custom"):
        if tss_file is None:
            raise ConfigError(f"labels={label_set} needs data.tss=PATH.bed")
        return annotations.load_tss_file(tss_file, genome)
    if not cfg.data.get("catalogue"):
        raise ConfigError(f"labels={label_set} is an E. coli set; with data={cfg.data.name} use labels={cfg.data.labels}")
    curation = _plain(cfg.data.get("curation")) or {}
    return annotations.load_tss_set(label_set, genome, Path(cfg.paths.shared_data), curation=curation)


def load_dataset(cfg: DictConfig, label_set: str | None = None) -> Dataset:
    """Genome, the chosen TSS set (default `data.labels`) and the splits."""
    if int(cfg.data.shift) < 0:
        raise ConfigError(f"data.shift={cfg.data.shift} must be 0 or more (nt from a TSS's +1 to the output that labels it)")
    genome, fasta, tss = open_genome(cfg)
    label_set = label_set or cfg.get("labels") or cfg.data.labels
    sites = load_sites(cfg, genome, label_set, tss)
    splits = make_splits(genome, _plain(cfg.data.get("splits")))
    return Dataset(genome, sites, label_set, splits, int(cfg.data.shift), fasta)


def labelled_output_positions(genome, sites: SiteSet, shift: int) -> np.ndarray:
    """Forward 0-based coordinate [n] of the output labelled for each TSS (`shift` nt downstream of its
    +1 on its strand, as `build_labels` places it; wrapped on circular contigs, -1 past a linear end)."""
    lengths = np.array([genome.contigs[c].length for c in sites.chrom], dtype=np.int64)
    circular = np.array([genome.contigs[c].circular for c in sites.chrom], dtype=bool)
    out = np.where(sites.strand == "+", sites.pos + shift, sites.pos - shift).astype(np.int64)
    wrapped = np.mod(out, np.maximum(lengths, 1))
    return np.where(circular, wrapped, np.where((out >= 0) & (out < lengths), out, -1))


def split_positive_counts(dataset: Dataset, sites: SiteSet) -> dict[str, dict[str, int]]:
    """TSS counts per split and strand: the TSSs whose +1 lies in the split and that have an output
    (`labelled_output_positions`; none within `shift` nt of a linear contig's 3' end on its strand),
    which is what training and evaluation score (`streams.labelled_outputs`)."""
    where = labelled_output_positions(dataset.genome, sites, dataset.shift) if len(sites) else np.zeros(0, dtype=np.int64)
    counts: dict[str, dict[str, int]] = {}
    for split, regions in dataset.splits.items():
        per_strand = {"+": 0, "-": 0}
        for region in regions:
            inside = (sites.chrom == region.chrom) & (sites.pos >= region.start) & (sites.pos < region.end) & (where >= 0)
            for strand in per_strand:
                per_strand[strand] += int(np.count_nonzero(inside & (sites.strand == strand)))
        counts[split] = per_strand
    return counts
