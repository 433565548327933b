"""A random genome with planted promoters (-35 box, spacer, -10 box, TSS) on both strands.

Layout on the promoter's strand (positions relative to the TSS, +1 = TSS, no 0): the -10 box ends
`tss_offset` nt before +1 (offset 7, box length 6: the box is -12..-7); the -35 box ends `spacer`
nt before the -10 box starts. Coordinates returned are 0-based forward coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import decode, encode, reverse_complement
from genometracks.io.atomic import write_text_atomic


class SyntheticError(ValueError):
    """A synthetic-genome spec that cannot work; the message names the field and the fix."""


@dataclass
class SyntheticSpec:
    """What to generate. length: nt per contig; density: promoters per nt per strand;
    circular: the first contig is circular; mutation_rate: chance that a box nt is changed."""

    length: int = 200_000
    n_contigs: int = 2
    circular: bool = True
    density: float = 1e-3
    minus35: str = "TTGACA"
    minus10: str = "TATAAT"
    spacer: tuple[int, int] = (15, 19)
    tss_offset: int = 7
    gc: float = 0.5
    seed: int = 0
    mutation_rate: float = 0.0
    prefix: str = "syn"

    def __post_init__(self) -> None:
        self.spacer = tuple(int(x) for x in self.spacer)  # type: ignore[assignment]
        self.minus35, self.minus10 = self.minus35.upper(), self.minus10.upper()
        checks = [
            ("length", self.length >= 1, "a positive number of nt per contig"),
            ("n_contigs", self.n_contigs >= 1, "at least 1"),
            ("density", self.density >= 0, "promoters per nt per strand, >= 0 (e.g. 0.001)"),
            ("minus35", bool(self.minus35) and set(self.minus35) <= set("ACGT"), "a non-empty ACGT motif"),
            ("minus10", bool(self.minus10) and set(self.minus10) <= set("ACGT"), "a non-empty ACGT motif"),
            ("spacer", len(self.spacer) == 2 and 0 <= self.spacer[0] <= self.spacer[1], "[min, max] with 0 <= min <= max"),
            ("tss_offset", self.tss_offset >= 1, "nt from the -10 box's last base to +1, >= 1"),
            ("gc", 0 <= self.gc <= 1, "a GC fraction in [0, 1]"),
            ("mutation_rate", 0 <= self.mutation_rate <= 1, "a probability in [0, 1]"),
        ]
        for name, ok, fix in checks:
            if not ok:
                raise SyntheticError(f"synthetic spec: {name}={getattr(self, name)!r} is invalid; use {fix}")

    @property
    def contig_names(self) -> list[str]:
        return [f"{self.prefix}{i + 1}" for i in range(self.n_contigs)]

    @property
    def circular_contigs(self) -> list[str]:
        return self.contig_names[:1] if self.circular else []

    @property
    def footprint(self) -> int:
        """nt reserved per promoter: -35 box + longest spacer + -10 box + offset to +1 (inclusive)."""
        return len(self.minus35) + self.spacer[1] + len(self.minus10) + self.tss_offset


def make_synthetic(spec: SyntheticSpec) -> tuple[dict[str, str], SiteSet, dict[str, np.ndarray]]:
    """(sequences, TSS sites, planted boxes). Boxes: arrays [K] per key — chrom, strand, tss,
    minus35_start, minus10_start (forward 0-based leftmost base), spacer, minus35_seq, minus10_seq
    (as read 5'→3' on the promoter's strand, after mutation). Deterministic for `spec.seed`."""
    rng = np.random.default_rng(spec.seed)
    m35, m10 = encode(spec.minus35), encode(spec.minus10)
    l35, l10, F = len(m35), len(m10), spec.footprint
    probs = np.array([1 - spec.gc, spec.gc, spec.gc, 1 - spec.gc]) / 2
    sequences: dict[str, str] = {}
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("chrom", "strand", "tss", "minus35_start", "minus10_start", "spacer", "minus35_seq", "minus10_seq")
    }
    for name in spec.contig_names:
        n = spec.length
        seq = rng.choice(4, size=n, p=probs).astype(np.uint8)
        per_strand = int(round(spec.density * n))
        K = 2 * per_strand
        free = n - K * F
        if free < 0:
            raise SyntheticError(
                f"synthetic spec: density={spec.density} needs {K} promoters of {F} nt on a "
                f"{n}-nt contig; lower the density or raise the length"
            )
        slot = np.sort(rng.integers(0, free + 1, size=K)) + np.arange(K) * F  # disjoint [slot, slot+F)
        minus = rng.permutation(np.repeat([False, True], per_strand))
        spacer = rng.integers(spec.spacer[0], spec.spacer[1] + 1, size=K)
        # '+': -35 box at the slot start; '-': the mirror image, -35 box at the slot end.
        b35 = np.where(minus, slot + F - l35, slot)
        b10 = np.where(minus, slot + F - l35 - spacer - l10, slot + l35 + spacer)
        tss = np.where(minus, b10 - spec.tss_offset, b10 + l10 - 1 + spec.tss_offset)
        seqs = {}
        for key, start, motif in (("minus35", b35, m35), ("minus10", b10, m10)):
            letters = np.where(minus[:, None], reverse_complement(motif)[None, :], motif[None, :])
            hit = rng.random(letters.shape) < spec.mutation_rate
            letters = np.where(hit, (letters + rng.integers(1, 4, size=letters.shape)) % 4, letters)
            seq[start[:, None] + np.arange(len(motif))[None, :]] = letters
            on_strand = np.where(minus[:, None], (3 - letters)[:, ::-1], letters)
            seqs[key] = np.array([decode(row) for row in on_strand], dtype=object)
        order = np.argsort(tss, kind="stable")
        for key, value in (
            ("chrom", np.full(K, name, dtype=object)),
            ("strand", np.where(minus, "-", "+")),
            ("tss", tss),
            ("minus35_start", b35),
            ("minus10_start", b10),
            ("spacer", spacer),
            ("minus35_seq", seqs["minus35"]),
            ("minus10_seq", seqs["minus10"]),
        ):
            parts[key].append(np.asarray(value)[order])
        sequences[name] = decode(seq)
    boxes = {k: np.concatenate(v) for k, v in parts.items()}
    names = np.array([f"{c}_P{i + 1}" for i, c in enumerate(boxes["chrom"])], dtype=object)
    sites = SiteSet(boxes["chrom"], boxes["tss"], boxes["strand"], np.zeros(len(names)), names, source=f"synthetic(seed={spec.seed})")
    return sequences, sites, boxes


def write_synthetic(spec: SyntheticSpec, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `synthetic.fa` (80-nt lines) and `synthetic_tss.bed` (BED6 of TSS +1 positions) into
    `out_dir`, atomically; the bytes are the same for the same spec."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sequences, sites, _ = make_synthetic(spec)
    fasta = "".join(f">{name}\n" + "".join(s[i : i + 80] + "\n" for i in range(0, len(s), 80)) for name, s in sequences.items())
    bed = "".join(f"{c}\t{p}\t{p + 1}\t{n}\t0\t{s}\n" for c, p, n, s in zip(sites.chrom, sites.pos.tolist(), sites.name, sites.strand))
    fasta_path, bed_path = out / "synthetic.fa", out / "synthetic_tss.bed"
    write_text_atomic(fasta_path, fasta)
    write_text_atomic(bed_path, bed)
    return fasta_path, bed_path
