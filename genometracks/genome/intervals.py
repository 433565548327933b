"""Strand-aware point sites and intervals, 0-based half-open forward-strand coordinates.

`SiteSet` holds TSS sets as parallel numpy arrays (vectorised readers, liftover, labels);
`Interval` is the one small type for split regions and BED-like records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STRANDS = ("+", "-")


@dataclass(frozen=True)
class Interval:
    """[start, end) on `chrom`, 0-based; strand '+', '-' or '.'."""

    chrom: str
    start: int
    end: int
    strand: str = "."
    name: str = ""
    score: float = 0.0

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"bad interval {self.chrom}:{self.start}-{self.end} (need 0 <= start <= end)")
        if self.strand not in ("+", "-", "."):
            raise ValueError(f"bad strand {self.strand!r} for {self.chrom}:{self.start}-{self.end}")

    def __len__(self) -> int:
        return self.end - self.start


@dataclass
class SiteSet:
    """Point sites (e.g. TSSs). `pos` is the 0-based forward coordinate of +1; strand is '+' or '-'.

    Arrays all have shape [n]. `name` and `score` are optional per-site payloads.
    """

    chrom: np.ndarray
    pos: np.ndarray
    strand: np.ndarray
    score: np.ndarray = None  # type: ignore[assignment]
    name: np.ndarray = None  # type: ignore[assignment]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.chrom = np.asarray(self.chrom, dtype=object)
        self.pos = np.asarray(self.pos, dtype=np.int64)
        self.strand = np.asarray(self.strand, dtype="<U1")
        n = len(self.pos)
        self.score = np.zeros(n) if self.score is None else np.asarray(self.score, dtype=np.float64)
        self.name = np.array([""] * n, dtype=object) if self.name is None else np.asarray(self.name, dtype=object)
        if not (len(self.chrom) == n == len(self.strand) == len(self.score) == len(self.name)):
            raise ValueError(f"{self.source}: SiteSet arrays differ in length")
        bad = ~np.isin(self.strand, STRANDS)
        if bad.any():
            raise ValueError(f"{self.source}: record {int(np.flatnonzero(bad)[0])} has strand {self.strand[bad][0]!r}; use '+' or '-'")

    def __len__(self) -> int:
        return len(self.pos)

    def subset(self, mask: np.ndarray) -> SiteSet:
        """Sites where `mask` (bool [n] or index array) selects; per-site arrays in `meta`
        (numpy arrays of length n, e.g. sigma, line) are subset alike."""
        n = len(self.pos)
        meta = {k: (v[mask] if isinstance(v, np.ndarray) and v.shape[:1] == (n,) else v) for k, v in self.meta.items()}
        return SiteSet(self.chrom[mask], self.pos[mask], self.strand[mask], self.score[mask], self.name[mask], self.source, meta)

    def sorted(self) -> SiteSet:
        """Sorted by (chrom, pos, strand)."""
        order = np.lexsort((self.strand, self.pos, self.chrom.astype(str)))
        return self.subset(order)

    @staticmethod
    def concat(sets: list[SiteSet], source: str = "") -> SiteSet:
        """All sites of `sets` in one SiteSet (order kept, not sorted); `source` names it."""
        return SiteSet(
            np.concatenate([s.chrom for s in sets]),
            np.concatenate([s.pos for s in sets]),
            np.concatenate([s.strand for s in sets]),
            np.concatenate([s.score for s in sets]),
            np.concatenate([s.name for s in sets]),
            source,
        )
