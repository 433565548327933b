"""Sigma-class promoter windows: RegulonDB PromoterSet, iPromoter-2L FASTA, genomic negatives.

A window is read 5'→3' on the promoter's strand: `upstream` nt before +1, then `downstream` nt
from +1 on (+1 included). Column j is position j - upstream relative to +1 (j < upstream: -60..-1;
j >= upstream: +1, +2, ...). For a '+' TSS at 0-based forward coordinate p the -60..-1 window is
genome[p-60:p]; for '-' it is revcomp(genome[p+1:p+61]).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import N_TOKEN, Genome, complement, encode

SIGMA_CLASSES = ("sigma24", "sigma28", "sigma32", "sigma38", "sigma54", "sigma70")
NONPROMOTER = "nonpromoter"
_IPROMOTER_UPSTREAM, _IPROMOTER_LENGTH = 60, 81  # iPromoter-2L: -60..-1, then +1..+21 (+1 at index 60; no position 0)


class SigmaDataError(ValueError):
    """Bad promoter input; the message names the file, the record and the fix."""


@dataclass
class SigmaSet:
    """Labelled windows. tokens uint8 [n, L] (A,C,G,T,N = 0..4); label int64 [n] indexes `classes`."""

    tokens: np.ndarray
    label: np.ndarray
    classes: tuple[str, ...]
    upstream: int
    sites: SiteSet | None = None  # genomic origin of each row (None for FASTA benchmarks)

    def __len__(self) -> int:
        return len(self.label)

    def counts(self) -> dict[str, int]:
        """Rows per class name."""
        return {c: int((self.label == i).sum()) for i, c in enumerate(self.classes)}

    def subset(self, rows: np.ndarray) -> SigmaSet:
        """The windows at `rows` (int indices or a bool mask over windows), sites and labels alike."""
        sites = None if self.sites is None else self.sites.subset(rows)
        return SigmaSet(self.tokens[rows], self.label[rows], self.classes, self.upstream, sites)


def one_hot(tokens: np.ndarray) -> np.ndarray:
    """uint8 tokens [n, L] → float32 one-hot [n, 4, L] (rows A,C,G,T; N is all zeros)."""
    tokens = np.asarray(tokens)
    eye = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])
    return np.ascontiguousarray(eye[tokens].transpose(0, 2, 1))


def extract_windows(genome: Genome, sites: SiteSet, upstream: int = 60, downstream: int = 0) -> np.ndarray:
    """Tokens [n, upstream + downstream] around each site, 5'→3' on its strand (see module doc).

    Circular contigs wrap; on linear contigs a window past an end raises SigmaDataError.
    """
    if upstream < 0 or downstream < 0 or upstream + downstream == 0:
        raise SigmaDataError(f"window upstream={upstream}, downstream={downstream}: need >= 0 and a non-empty window")
    offsets = np.arange(-upstream, downstream, dtype=np.int64)
    out = np.empty((len(sites), len(offsets)), dtype=np.uint8)
    for chrom in np.unique(sites.chrom.astype(str)):
        rows = np.flatnonzero(sites.chrom.astype(str) == chrom)
        forward = genome.tokens(chrom)  # raises GenomeError for an unknown contig
        contig = genome.contigs[chrom]
        minus = sites.strand[rows] == "-"
        pos = sites.pos[rows][:, None]
        coord = np.where(minus[:, None], pos - offsets[None, :], pos + offsets[None, :])
        if contig.circular:
            coord %= contig.length
        else:
            bad = np.flatnonzero(((coord < 0) | (coord >= contig.length)).any(axis=1))
            if bad.size:
                i = rows[bad[0]]
                raise SigmaDataError(
                    f"{sites.source or 'sites'}: site {sites.name[i] or i} at {chrom}:{sites.pos[i]}"
                    f"({sites.strand[i]}) has a window past the end of linear contig {chrom} "
                    f"(length {contig.length}); mark the contig circular or drop the site"
                )
        bases = forward[coord]
        out[rows] = np.where(minus[:, None], complement(bases), bases)
    return out


def one_class_per_tss(
    pos: list[int], strand: list[str], sigma: list[str], keep: list[bool], classes: Sequence[str], factors: list[list[str]]
) -> np.ndarray:
    """bool [rows]: `keep`, less every row at a (+1, strand) that rows (kept or not; `factors`: every
    factor a row's sigma column names) name two or more of `classes` for, and less each kept row
    repeating an earlier kept row's (+1, strand, class)."""
    frame = pd.DataFrame({"pos": pos, "strand": strand, "sigma": sigma})
    named = pd.DataFrame({"pos": pos, "strand": strand, "factor": factors}).explode("factor")
    known = named[named["factor"].isin(list(classes))]
    n_classes = known.groupby(["pos", "strand"])["factor"].nunique()
    out = np.asarray(keep, dtype=bool) & ~frame.set_index(["pos", "strand"]).index.isin(n_classes[n_classes > 1].index)
    repeat = frame[out].duplicated(["pos", "strand", "sigma"]).to_numpy()
    out[np.flatnonzero(out)[repeat]] = False
    return out


def read_promoterset(
    path: str | Path, chrom: str, confidence: Iterable[str] = ("Strong", "Confirmed"), classes: Sequence[str] = SIGMA_CLASSES
) -> tuple[SiteSet, SiteSet]:
    """RegulonDB PromoterSet (tab-separated, `#` header; col 4 = 1-based +1) on contig `chrom`.

    Returns (labelled, every_tss): `labelled` keeps rows of the given confidence levels whose sigma
    column names exactly one factor among `classes` (meta['sigma'] = class name per row), one row per
    TSS, and leaves out every TSS that rows of any confidence assign to two or more classes (the
    file lists a promoter of two sigma factors as two rows at one +1; the sigma paper keeps promoters
    of one class only);
    `every_tss` is every row with a position (all confidences, any sigma) — what negatives avoid.
    """
    path = Path(path)
    if not path.is_file():
        raise SigmaDataError(f"{path}: PromoterSet file not found; set data.promoterset to the RegulonDB PromoterSet.txt")
    confidence = set(confidence)
    pos, strand, names, sigma, keep = [], [], [], [], []
    named: list[list[str]] = []  # every factor of each row's sigma column
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, 1):
            if line.startswith("#") or not line.strip():
                continue
            fields = line.rstrip("\n\r").split("\t")
            if len(fields) < 8:
                raise SigmaDataError(
                    f"{path}: line {lineno} has {len(fields)} tab-separated columns, expected 8 "
                    "(id, name, strand, TSS, sigma, sequence, evidence, confidence)"
                )
            if fields[3].strip() in ("", "0"):
                continue  # promoters without a mapped +1 (TSS empty or 0) carry no position
            if fields[2] not in ("forward", "reverse") or not fields[3].strip().isdigit():
                raise SigmaDataError(
                    f"{path}: line {lineno}: strand {fields[2]!r} / TSS {fields[3]!r} is not "
                    "'forward'|'reverse' and a 1-based position; is this a PromoterSet file?"
                )
            factors = [f.strip().lower() for f in fields[4].split(",") if f.strip()]
            label = factors[0] if len(factors) == 1 else ""
            pos.append(int(fields[3]) - 1)
            strand.append("+" if fields[2] == "forward" else "-")
            names.append(fields[0])
            sigma.append(label)
            named.append(factors)
            keep.append(fields[7].strip() in confidence and label in classes)
    if not pos:
        raise SigmaDataError(f"{path}: no promoter rows; is this a RegulonDB PromoterSet file?")
    every = SiteSet(np.full(len(pos), chrom, dtype=object), pos, strand, name=names, source=str(path))
    keep_mask = one_class_per_tss(pos, strand, sigma, keep, classes, named)
    labelled = every.subset(keep_mask)
    labelled.meta["sigma"] = np.array(sigma, dtype=object)[keep_mask]
    return labelled, every


def sample_negatives(genome: Genome, avoid: SiteSet, n: int, upstream: int, downstream: int, min_distance: int, seed: int) -> SiteSet:
    """`n` sites (uniform over contig positions × strands) farther than `min_distance` nt from every
    site of `avoid` (either strand), whose windows fit the contig and hold no N. Same seed, same sites."""
    chroms, starts, allowed = [], [], []
    avoid_chrom = avoid.chrom.astype(str)
    for name, contig in genome.contigs.items():
        ok = np.ones(contig.length, dtype=bool)
        hits = avoid.pos[avoid_chrom == name]
        if hits.size:
            shifts = (-contig.length, 0, contig.length) if contig.circular else (0,)  # wrap round the origin
            lo = np.concatenate([hits - min_distance + k for k in shifts]).clip(0, contig.length)
            hi = np.concatenate([hits + min_distance + 1 + k for k in shifts]).clip(0, contig.length)
            diff = np.zeros(contig.length + 1, dtype=np.int64)
            np.add.at(diff, lo, 1)
            np.add.at(diff, hi, -1)
            ok &= np.cumsum(diff[:-1]) == 0
        if not contig.circular:  # the window must fit on both strands
            reach = max(upstream, downstream)
            ok[:reach] = False
            ok[contig.length - reach :] = False
        chroms.append(name)
        starts.append(sum(len(a) for a in allowed))
        allowed.append(np.flatnonzero(ok))
    pool = np.concatenate(allowed) if allowed else np.zeros(0, dtype=np.int64)
    total = 2 * len(pool)
    if total < n:
        raise SigmaDataError(
            f"only {total} genome positions lie {min_distance} nt away from every annotated TSS, "
            f"{n} negatives requested; lower data.negatives.min_distance or data.negatives.ratio"
        )
    rng = np.random.default_rng(seed)
    draw = rng.choice(total, size=min(total, int(n * 1.1) + 10), replace=False)
    slot, is_minus = draw % len(pool), draw >= len(pool)
    which = np.searchsorted(np.array(starts), slot, side="right") - 1
    sites = SiteSet(np.array(chroms, dtype=object)[which], pool[slot], np.where(is_minus, "-", "+"), source="negatives")
    clean = ~(extract_windows(genome, sites, upstream, downstream) == N_TOKEN).any(axis=1)
    if clean.sum() < n:
        raise SigmaDataError(f"too few N-free negative windows ({int(clean.sum())} < {n}); lower data.negatives.ratio")
    return sites.subset(np.flatnonzero(clean)[:n])


def regulondb_set(
    genome: Genome,
    promoterset: str | Path,
    chrom: str,
    upstream: int = 60,
    downstream: int = 0,
    confidence: Iterable[str] = ("Strong", "Confirmed"),
    classes: Sequence[str] = SIGMA_CLASSES,
    negative_ratio: float = 0.0,
    min_distance: int = 200,
    seed: int = 0,
) -> SigmaSet:
    """Six-class (+ optional `nonpromoter`) windows re-extracted from `genome` at the PromoterSet +1.

    negative_ratio × (number of promoters) genomic negatives are added as class `nonpromoter`.
    """
    labelled, every = read_promoterset(promoterset, chrom, confidence, classes)
    present = tuple(c for c in classes if (labelled.meta["sigma"] == c).any())
    missing = sorted(set(classes) - set(present))
    if missing:
        raise SigmaDataError(
            f"{promoterset}: no rows of class {missing} at confidence {sorted(confidence)}; "
            "drop them from data.classes or widen data.confidence"
        )
    label = np.array([present.index(s) for s in labelled.meta["sigma"]], dtype=np.int64)
    sites, names = labelled, present
    n_neg = int(round(negative_ratio * len(labelled)))
    if n_neg:
        neg = sample_negatives(genome, every, n_neg, upstream, downstream, min_distance, seed)
        sites = SiteSet.concat([labelled, neg], source=str(promoterset))
        label = np.concatenate([label, np.full(n_neg, len(present), dtype=np.int64)])
        names = present + (NONPROMOTER,)
    return SigmaSet(extract_windows(genome, sites, upstream, downstream), label, names, upstream, sites)


def ipromoter_set(
    folder: str | Path, upstream: int = 60, downstream: int = 0, classes: Sequence[str] = SIGMA_CLASSES, nonpromoter: bool = True
) -> SigmaSet:
    """iPromoter-2L benchmark: `<class>.fasta` (+ `nonPromoter.fasta`), 81-nt records, +1 at index 60."""
    folder = Path(folder)
    if upstream > _IPROMOTER_UPSTREAM or downstream > _IPROMOTER_LENGTH - _IPROMOTER_UPSTREAM:
        raise SigmaDataError(
            f"{folder}: iPromoter-2L records cover -60..+21; window -{upstream}..+{downstream} "
            "does not fit — lower data.upstream / data.downstream"
        )
    files = [(c, folder / f"{c}.fasta") for c in classes]
    if nonpromoter:
        files.append((NONPROMOTER, folder / "nonPromoter.fasta"))
    tokens, labels = [], []
    for index, (_name, path) in enumerate(files):
        seqs = _read_fasta(path)
        bad = [i for i, s in enumerate(seqs) if len(s) != _IPROMOTER_LENGTH]
        if bad:
            raise SigmaDataError(
                f"{path}: record {bad[0] + 1} is {len(seqs[bad[0]])} nt, expected "
                f"{_IPROMOTER_LENGTH} (-60..+21 with +1 at index 60); is this the iPromoter-2L set?"
            )
        arr = encode("".join(seqs), where=str(path)).reshape(len(seqs), _IPROMOTER_LENGTH)
        tokens.append(arr[:, _IPROMOTER_UPSTREAM - upstream : _IPROMOTER_UPSTREAM + downstream])
        labels.append(np.full(len(seqs), index, dtype=np.int64))
    return SigmaSet(np.concatenate(tokens), np.concatenate(labels), tuple(c for c, _ in files), upstream)


def _read_fasta(path: Path) -> list[str]:
    if not path.is_file():
        raise SigmaDataError(f"{path}: FASTA not found; set data.ipromoter_dir to the iPromoter-2L folder")
    seqs: list[str] = []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line.startswith(">"):
                seqs.append("")
            elif line:
                if not seqs:
                    raise SigmaDataError(f"{path}: sequence before the first '>' header; is this a FASTA file?")
                seqs[-1] += line
    if not seqs:
        raise SigmaDataError(f"{path}: no FASTA records")
    return seqs


# default planted motifs of `synthetic_set`: one distinct 6-mer per class at a distinct column
SYNTHETIC_MOTIFS = {
    "sigma24": ("GAACTT", 2),
    "sigma28": ("TAAAGT", 6),
    "sigma32": ("CCCGAA", 10),
    "sigma38": ("CTATAC", 14),
    "sigma54": ("TGGCAC", 18),
    "sigma70": ("TATAAT", 22),
}


def synthetic_set(
    n_per_class: int = 40, length: int = 30, motifs: dict[str, tuple[str, int]] | None = None, n_nonpromoter: int = 0, seed: int = 0
) -> SigmaSet:
    """Uniform random windows (upstream = length, so the window is -length..-1) with one planted
    motif per class: motifs[class] = (letters, column). Non-promoters carry no motif."""
    motifs = dict(SYNTHETIC_MOTIFS if motifs is None else motifs)
    rng = np.random.default_rng(seed)
    classes = tuple(motifs) + ((NONPROMOTER,) if n_nonpromoter else ())
    counts = [n_per_class] * len(motifs) + ([n_nonpromoter] if n_nonpromoter else [])
    label = np.repeat(np.arange(len(classes), dtype=np.int64), counts)
    tokens = rng.integers(0, 4, size=(len(label), length)).astype(np.uint8)
    for index, (letters, column) in enumerate(motifs.values()):
        if column < 0 or column + len(letters) > length:
            raise SigmaDataError(f"synthetic motif {letters!r} at column {column} does not fit a {length}-nt window")
        tokens[label == index, column : column + len(letters)] = encode(letters)
    return SigmaSet(tokens, label, classes, upstream=length)


def load_sigma_set(cfg, seed: int = 0) -> SigmaSet:
    """The data set `data=sigma_promoters` describes (a dict or DictConfig): source regulondb |
    ipromoter2l | synthetic; classes, window (upstream/downstream), negatives (ratio, min_distance, seed)."""
    source, classes = cfg.get("source"), tuple(cfg.get("classes", SIGMA_CLASSES))
    upstream, downstream = int(cfg.get("upstream", 60)), int(cfg.get("downstream", 0))
    neg = cfg.get("negatives") or {}
    ratio, neg_seed = float(neg.get("ratio", 0.0)), neg.get("seed")
    neg_seed = seed if neg_seed is None else int(neg_seed)
    if source == "regulondb":
        genome = Genome.open(cfg.get("fasta"), circular=list(cfg.get("circular") or []))
        chrom = cfg.get("chrom") or next(iter(genome.contigs))
        return regulondb_set(
            genome,
            cfg.get("promoterset"),
            chrom,
            upstream,
            downstream,
            tuple(cfg.get("confidence", ("Strong", "Confirmed"))),
            classes,
            ratio,
            int(neg.get("min_distance", 200)),
            neg_seed,
        )
    if source == "ipromoter2l":
        return ipromoter_set(cfg.get("ipromoter_dir"), upstream, downstream, classes, nonpromoter=ratio > 0)
    if source == "synthetic":
        unknown = sorted(set(classes) - set(SYNTHETIC_MOTIFS))
        if unknown or downstream:
            raise SigmaDataError(
                f"data.source=synthetic: classes must come from {list(SYNTHETIC_MOTIFS)} "
                f"(got unknown {unknown}) and data.downstream must be 0"
            )
        n = int(cfg.get("n_per_class", 40))
        return synthetic_set(n, upstream, {c: SYNTHETIC_MOTIFS[c] for c in classes}, int(round(ratio * n * len(classes))), neg_seed)
    raise SigmaDataError(f"data.source={source!r}: use regulondb, ipromoter2l or synthetic")
