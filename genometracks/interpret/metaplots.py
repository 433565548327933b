"""Metaplots (TSS paper Figure 4): median model output around site sets, sense and antisense,
and medians over coding vs non-coding positions.

Tracks are forward-strand per-base probabilities {contig: {'+': [n], '-': [n]}} (value at x =
P(TSS at x on that strand), as `predict_genome` writes them). For a site at forward position p
on strand s, relative position r (5'→3' on s; 0 = the site, -10 = 10 nt upstream) is forward
p + r on '+' and p - r on '-'. Sense reads the track of s, antisense the other strand's, at the
same bases. Circular contigs wrap; positions off a linear contig are NaN (left out of medians).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genometracks.genome.intervals import Interval, SiteSet
from genometracks.genome.sequence import Genome
from genometracks.io.figures import new_figure, save_figure
from genometracks.labels.annotations import normalise_chrom

Tracks = dict[str, dict[str, np.ndarray]]
OTHER = {"+": "-", "-": "+"}


class MetaplotError(ValueError):
    """Bad metaplot input; the message names the file or record and the fix."""


def site_windows(tracks: Tracks, genome: Genome, sites: SiteSet, flank: int) -> tuple[np.ndarray, np.ndarray]:
    """(sense, antisense) float64 [n_sites, 2 * flank + 1], columns r = -flank..flank (see module doc)."""
    rel = np.arange(-int(flank), int(flank) + 1)
    sense = np.full((len(sites), rel.size), np.nan)
    antisense = np.full_like(sense, np.nan)
    chrom = sites.chrom.astype(str)
    for contig in np.unique(chrom):
        if contig not in tracks or contig not in genome.contigs:
            raise MetaplotError(
                f"{sites.source or 'sites'}: contig {contig!r} has no track (tracks: {list(tracks)[:5]}); use sites on the predicted genome"
            )
        n, circular = genome.contigs[contig].length, genome.contigs[contig].circular
        for strand in "+-":
            rows = np.flatnonzero((chrom == contig) & (sites.strand == strand))
            if rows.size == 0:
                continue
            forward = sites.pos[rows, None] + (rel if strand == "+" else -rel)[None, :]
            inside = np.ones(forward.shape, bool) if circular else (forward >= 0) & (forward < n)
            index = forward % n
            for out, which in ((sense, strand), (antisense, OTHER[strand])):
                values = tracks[contig][which][index].astype(np.float64)
                out[rows] = np.where(inside, values, np.nan)
    return sense, antisense


def sites_in(sites: SiteSet, regions: list[Interval]) -> SiteSet:
    """The sites whose position lies in one of the forward regions (any strand)."""
    keep = np.zeros(len(sites), dtype=bool)
    chrom = sites.chrom.astype(str)
    for r in regions:
        keep |= (chrom == r.chrom) & (sites.pos >= r.start) & (sites.pos < r.end)
    return sites.subset(keep)


def metaplot_table(tracks: Tracks, genome: Genome, site_sets: dict[str, SiteSet], flank: int):
    """Long table: set, position (relative, nt), sense_median, antisense_median, n_sites (sites with a
    value at that position)."""
    import pandas as pd

    frames = []
    rel = np.arange(-int(flank), int(flank) + 1)
    for name, sites in site_sets.items():
        sense, antisense = site_windows(tracks, genome, sites, flank)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
                frames.append(
                    pd.DataFrame(
                        {
                            "set": name,
                            "position": rel,
                            "sense_median": np.nanmedian(sense, axis=0),
                            "antisense_median": np.nanmedian(antisense, axis=0),
                            "n_sites": np.isfinite(sense).sum(axis=0),
                        }
                    )
                )
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["set", "position", "sense_median", "antisense_median", "n_sites"])
    )


def read_cds(gff: str | Path, genome: Genome) -> dict[str, dict[str, np.ndarray]]:
    """CDS coverage {contig: {'+': bool [n], '-': bool [n]}} (forward coordinates) from a GFF3
    (gz ok, 1-based closed); contig names are matched to the genome's (aliases allowed)."""
    import pandas as pd

    path = Path(gff)
    if not path.is_file():
        raise MetaplotError(f"{path}: GFF not found; set interpret.gff=PATH (RefSeq GFF3 with CDS features)")
    frame = pd.read_csv(
        path,
        sep="\t",
        comment="#",
        header=None,
        usecols=[0, 2, 3, 4, 6],
        dtype=str,
        names=["seqid", "type", "start", "end", "strand"],
        quoting=3,
    )
    frame["line"] = np.arange(len(frame)) + 1
    cds = frame[frame["type"] == "CDS"]
    if cds.empty:
        raise MetaplotError(
            f"{path}: no CDS rows (feature types: {sorted(frame['type'].dropna().unique())[:8]}); pass a GFF3 with CDS features"
        )
    start = pd.to_numeric(cds["start"], errors="coerce").to_numpy()
    end = pd.to_numeric(cds["end"], errors="coerce").to_numpy()
    bad = np.flatnonzero(~np.isfinite(start) | ~np.isfinite(end) | (start < 1) | (end < start) | ~cds["strand"].isin(["+", "-"]).to_numpy())
    if bad.size:
        row = cds.iloc[bad[0]]
        raise MetaplotError(
            f"{path}: CDS record {row['seqid']}:{row['start']}-{row['end']} "
            f"{row['strand']}: need 1 <= start <= end and strand +/-; fix the record"
        )
    chrom = normalise_chrom(cds["seqid"].to_numpy(object), genome.contigs, str(path))
    lengths = np.array([genome.contigs[c].length for c in chrom], dtype=np.int64)
    circular = np.array([genome.contigs[c].circular for c in chrom], dtype=bool)
    # GFF3 writes a CDS across a circle's origin with end > length (wrapped below); anything else past the end is wrong
    past = np.flatnonzero((start > lengths) | ((end > lengths) & ~circular) | (end > 2 * lengths))
    if past.size:  # another assembly's annotation (a shorter contig, another version)
        row = cds.iloc[past[0]]
        raise MetaplotError(
            f"{path}: CDS record {row['seqid']}:{row['start']}-{row['end']} ends past the end of "
            f"{chrom[past[0]]} ({lengths[past[0]]:,} nt); {past.size} CDS do: give the GFF of this genome's assembly"
        )
    cover = {c: {s: np.zeros(g.length + 1, dtype=np.int32) for s in "+-"} for c, g in genome.contigs.items()}
    for contig in np.unique(chrom):
        n = genome.contigs[contig].length
        for strand in "+-":
            sel = (chrom == contig) & (cds["strand"].to_numpy() == strand)
            lo, hi = start[sel].astype(np.int64) - 1, end[sel].astype(np.int64)
            np.add.at(cover[contig][strand], lo, 1)
            np.add.at(cover[contig][strand], np.minimum(hi, n), -1)
            over = hi > n  # across the origin: [0, hi - n) as well
            np.add.at(cover[contig][strand], np.zeros(int(over.sum()), dtype=np.int64), 1)
            np.add.at(cover[contig][strand], hi[over] - n, -1)
    return {c: {s: np.cumsum(v[s])[:-1] > 0 for s in "+-"} for c, v in cover.items()}


def coding_medians(tracks: Tracks, coding: dict[str, dict[str, np.ndarray]], regions: list[Interval]) -> dict:
    """Median (and count) of the output over positions of `regions`, both strands, in three classes:
    coding (a CDS on the same strand), antisense_coding (a CDS only on the other strand), non_coding."""
    parts: dict[str, list[np.ndarray]] = {"coding": [], "antisense_coding": [], "non_coding": []}
    for r in regions:
        for strand in "+-":
            values = tracks[r.chrom][strand][r.start : r.end].astype(np.float64)
            same = coding[r.chrom][strand][r.start : r.end]
            other = coding[r.chrom][OTHER[strand]][r.start : r.end]
            parts["coding"].append(values[same])
            parts["antisense_coding"].append(values[~same & other])
            parts["non_coding"].append(values[~same & ~other])
    out = {}
    for name, chunks in parts.items():
        values = np.concatenate(chunks) if chunks else np.zeros(0)
        values = values[np.isfinite(values)]
        out[name] = {
            "median": float(np.median(values)) if values.size else None,
            "mean": float(values.mean()) if values.size else None,
            "positions": int(values.size),
        }
    return out


def plot_metaplots(table, path, notes: dict[str, str] | None = None) -> None:
    """PNG: one panel per site set, sense (solid) and antisense (dashed) median output."""
    names = list(dict.fromkeys(table["set"]))
    if not names:
        raise MetaplotError("no site set to plot: every set was skipped " + str(notes or {}))
    fig = new_figure(5.0 * len(names), 3.2)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        part = table[table["set"] == name]
        n = int(part["n_sites"].max()) if len(part) else 0
        ax.plot(part["position"], part["sense_median"], color="tab:red", linewidth=1, label="sense")
        ax.plot(part["position"], part["antisense_median"], color="tab:blue", linewidth=1, linestyle="--", label="antisense")
        ax.axvline(0, color="grey", linewidth=0.5)
        ax.set_title(f"{name} (n = {n})", fontsize=9)
        ax.set_xlabel("position relative to the site (nt)")
        ax.set_ylabel("median TSS probability")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100, tight=False)
