"""Sigma-class track: classify the window upstream of each TSS peak call with the six-class sigma CNN
→ `tracks/tss_sigma.bb`, BED9+7 (chrom, start, end, name, score, strand, thickStart, thickEnd,
itemRgb = class colour, sigma = predicted class, then one probability per class), with an autoSql.

Peaks are 1-nt BED6 records (0-based start = the +1 nucleotide, as `genometracks peaks` writes them);
a wider record is read at its 5' end (start on '+', end - 1 on '-'). Coordinates: 0-based, half-open.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.formats.bigbed import BedSchema, write_bigbed
from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import Genome
from genometracks.io.rundir import RunDir
from genometracks.sigma.data import extract_windows, one_hot
from genometracks.sigma.model import SigmaCNN, load_model, predict_proba, with_prior

# Okabe–Ito colour-blind-safe palette, one colour per class
SIGMA_COLOURS = {
    "sigma24": (230, 159, 0),
    "sigma28": (86, 180, 233),
    "sigma32": (0, 158, 115),
    "sigma38": (204, 121, 167),
    "sigma54": (0, 114, 178),
    "sigma70": (213, 94, 0),
}


class SigmaTrackError(ValueError):
    """Bad peak input or track request; the message names the file, the record and the fix."""


def read_peaks(path: str | Path) -> SiteSet:
    """BED6 (plain or gzip/bgzip) → SiteSet of +1 positions (see module doc); names from column 4."""
    path = Path(path)
    if not path.is_file():
        raise SigmaTrackError(f"{path}: peak BED not found; run `genometracks peaks` first (tracks/tss_peaks.bed.gz)")
    opener = gzip.open if path.suffix in (".gz", ".bgz") else open
    with opener(path, "rt") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle if line.strip() and not line.startswith(("#", "track", "browser"))]
    bad = next(
        (
            i
            for i, r in enumerate(rows)
            if len(r) < 6 or r[5] not in ("+", "-") or not (r[1].isdigit() and r[2].isdigit() and int(r[2]) > int(r[1]))
        ),
        None,
    )
    if bad is not None:
        shown = " ".join(rows[bad][:6])
        raise SigmaTrackError(
            f"{path}: record {bad + 1} ({shown!r}) is not BED6 with 0 <= start < end and strand + or -; peaks need a strand"
        )
    start = np.array([int(r[1]) for r in rows], dtype=np.int64)
    end = np.array([int(r[2]) for r in rows], dtype=np.int64)
    strand = np.array([r[5] for r in rows])
    return SiteSet(
        np.array([r[0] for r in rows], dtype=object),
        np.where(strand == "+", start, end - 1),
        strand,
        name=np.array([r[3] for r in rows], dtype=object),
        source=str(path),
    )


def check_contigs(genome: Genome, sites: SiteSet) -> None:
    """SigmaTrackError naming the peaks file when a site lies on a contig the genome lacks."""
    unknown = sorted({str(c) for c in sites.chrom} - set(genome.contigs))
    if unknown:
        raise SigmaTrackError(
            f"{sites.source}: peaks on contigs {unknown[:5]} that the genome {genome.path} lacks; use the FASTA the peaks were called on"
        )


def windows_fit(genome: Genome, sites: SiteSet, upstream: int, downstream: int) -> np.ndarray:
    """bool [n]: the site's window lies inside its contig (always True on circular contigs)."""
    check_contigs(genome, sites)
    chrom = sites.chrom.astype(str)
    length = np.array([genome.contigs[c].length for c in chrom], dtype=np.int64)
    circular = np.array([genome.contigs[c].circular for c in chrom], dtype=bool)
    plus = sites.strand == "+"
    lo = np.where(plus, sites.pos - upstream, sites.pos - downstream + 1)
    hi = np.where(plus, sites.pos + downstream - 1, sites.pos + upstream)
    return circular | ((lo >= 0) & (hi < length))


def classify_sites(model: SigmaCNN, upstream: int, genome: Genome, sites: SiteSet) -> np.ndarray:
    """Class probabilities float64 [n, n_classes] of each site's window (upstream nt before +1,
    then model length - upstream nt from +1 on), at the training set's class shares when the model
    stores them (`model.prior`: trained with balanced class weights)."""
    check_contigs(genome, sites)
    downstream = model.config["length"] - upstream
    probs = predict_proba(model, one_hot(extract_windows(genome, sites, upstream, downstream)))
    return with_prior(probs, getattr(model, "prior", None))


def sigma_records(sites: SiteSet, probs: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """BED9+7 records sorted by chrom (byte order) and start: score = round(1000 · top probability)."""
    top = probs.argmax(axis=1)
    called = np.array(classes, dtype=object)[top]
    colour = np.array([",".join(map(str, SIGMA_COLOURS.get(c, (0, 0, 0)))) for c in classes], dtype=object)[top]
    names = np.where(sites.name.astype(str) != "", sites.name.astype(str), [f"TSS_{p + 1}{s}" for p, s in zip(sites.pos, sites.strand)])
    frame = pd.DataFrame(
        {
            "chrom": sites.chrom.astype(str),
            "start": sites.pos,
            "end": sites.pos + 1,
            "name": names,
            "score": np.rint(1000 * probs.max(axis=1)).astype(np.int64),
            "strand": sites.strand,
            "thickStart": sites.pos,
            "thickEnd": sites.pos + 1,
            "itemRgb": colour,
            "sigma": called,
        }
    )
    for c, name in enumerate(classes):
        frame[f"p_{name}"] = probs[:, c]
    keys = np.array([c.encode() for c in frame["chrom"]], dtype="S")
    return frame.iloc[np.lexsort((frame["strand"].to_numpy(), frame["start"].to_numpy(), keys))].reset_index(drop=True)


def sigma_schema(classes: Sequence[str]) -> BedSchema:
    """BED9+M schema of the sigma track: standard BED9, the predicted class, one probability per class."""
    return BedSchema(
        "tss_sigma",
        "TSS peak calls with their predicted sigma-factor class",
        (
            ("string", "sigma", "predicted sigma-factor class"),
            *(("float", f"p_{c}", f"probability of {c} (at the training set's class shares)") for c in classes),
        ),
        standard=9,
        search=("name", "sigma"),
    )


def write_sigma_bigbed(records: pd.DataFrame, path: str | Path, chrom_sizes: Mapping[str, int], classes: Sequence[str]) -> Path:
    """Write records (from `sigma_records`) as bigBed 9 + (`formats.bigbed.write_bigbed`), atomically."""
    path = Path(path)
    if records.empty:
        raise SigmaTrackError(f"{path}: no TSS peaks to classify; lower predict.peaks.threshold")
    bad = np.flatnonzero(
        ~records["chrom"].isin(list(chrom_sizes)).to_numpy()
        | (records["end"].to_numpy() > records["chrom"].map(chrom_sizes).fillna(0).to_numpy())
    )
    if bad.size:
        row = records.iloc[bad[0]]
        raise SigmaTrackError(
            f"{path}: record {bad[0]} ({row['chrom']}:{row['start']}) lies outside the genome "
            f"{dict(list(chrom_sizes.items())[:3])}; use the genome the peaks were called on"
        )
    write_bigbed(records, path, sigma_schema(classes), chrom_sizes)
    return path


def sigma_track(model_path: str | Path, genome: Genome, peaks: SiteSet | str | Path, out_path: str | Path) -> dict:
    """Classify every peak whose window fits its contig; write `out_path` (.bb). Returns a summary."""
    model, classes, upstream = load_model(model_path)
    sites = peaks if isinstance(peaks, SiteSet) else read_peaks(peaks)
    fits = windows_fit(genome, sites, upstream, model.config["length"] - upstream)
    sites = sites.subset(np.flatnonzero(fits))
    probs = classify_sites(model, upstream, genome, sites)
    records = sigma_records(sites, probs, classes)
    path = write_sigma_bigbed(records, out_path, genome.chrom_sizes(), classes)
    counts = records["sigma"].value_counts().reindex(classes, fill_value=0)
    return {
        "bigbed": str(path),
        "peaks": int(len(records)),
        "skipped_at_contig_ends": int((~fits).sum()),
        "per_class": {c: int(n) for c, n in counts.items()},
    }


def sigma_track_command(cfg) -> dict:
    """Config entry: classify DIR/tracks/tss_peaks.bed.gz (`genometracks peaks`) with the model at
    cfg.sigma_model (models/sigma_cnn.pt of a `train experiment=sigma_cnn` run) on cfg.data.fasta
    → DIR/tracks/tss_sigma.bb, DIR = cfg.run_dir."""
    model_path = cfg.get("sigma_model")
    if not model_path:
        raise SigmaTrackError(
            "sigma_model is not set; pass sigma_model=RUN/models/sigma_cnn.pt from `genometracks train experiment=sigma_cnn`"
        )
    run = RunDir(Path(cfg.run_dir))
    circular, tags = list(cfg.data.get("circular") or []), bool(cfg.data.get("circular_tags", True))
    genome = Genome.open(cfg.data.fasta, circular=circular, circular_tags=tags)
    return sigma_track(model_path, genome, run.peaks_bed_gz, run.sigma_bigbed)
