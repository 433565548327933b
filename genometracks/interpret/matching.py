"""Motif-to-motif similarity: column-wise Pearson correlation averaged over the aligned columns,
best over all offsets and both orientations, with a p-value from column-shuffled queries.

Alignment convention: `offset` is the reference column aligned with column 0 of the query as
compared (the query itself for orientation '+', its reverse complement for '-'); a negative
offset means the query overhangs the reference's left end. `overlap` = aligned columns.
A column with no variance (uniform) correlates 0 with everything.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genometracks.interpret.motifs import Motif, MotifError


@dataclass(frozen=True)
class Match:
    """Best alignment of a query against one reference motif."""
    ref: Motif
    score: float          # mean Pearson r over the aligned columns, in [-1, 1]
    offset: int           # reference column under query column 0 (see module docstring)
    orientation: str      # '+' query as is, '-' its reverse complement
    overlap: int          # number of aligned columns
    p_value: float        # (1 + #shuffles scoring >= score) / (1 + n_shuffles)


def _standardise(columns: np.ndarray) -> np.ndarray:
    """Centre each row [.., 4] and scale to unit norm; zero-variance rows stay 0."""
    centred = columns - columns.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(centred, axis=-1, keepdims=True)
    return np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 1e-12)


def _diagonal_means(corr: np.ndarray, min_overlap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """corr [S, Kq, Kr] → (mean over each alignment [S, n_off], offsets [n_off], overlaps [n_off])
    for the offsets with at least `min_overlap` aligned columns."""
    _, kq, kr = corr.shape
    offsets = np.arange(min_overlap - kq, kr - min_overlap + 1)
    cols = np.arange(kq)[:, None] + offsets[None, :]            # [Kq, n_off] ref column
    valid = (cols >= 0) & (cols < kr)
    gathered = corr[:, np.arange(kq)[:, None], np.clip(cols, 0, kr - 1)]  # [S, Kq, n_off]
    overlaps = valid.sum(axis=0)
    sums = (gathered * valid[None]).sum(axis=1)
    return sums / overlaps, offsets, overlaps


def _best(query_fwd: np.ndarray, query_rev: np.ndarray, ref: np.ndarray, min_overlap: int):
    """Best (score, orientation index, offset, overlap) per row of stacked standardised queries
    [S, Kq, 4] (forward and reverse complement) against a standardised reference [Kr, 4]."""
    means, offsets, overlaps = zip(*(_diagonal_means(q @ ref.T, min_overlap) for q in (query_fwd, query_rev)))
    both = np.concatenate(means, axis=1)                        # [S, 2 · n_off]
    arg = both.argmax(axis=1)
    n_off = len(offsets[0])
    return both[np.arange(len(arg)), arg], arg // n_off, offsets[0][arg % n_off], overlaps[0][arg % n_off]


def match(query: Motif, refs: Sequence[Motif], n_shuffles: int = 1000, min_overlap: int = 5,
          seed: int = 0) -> list[Match]:
    """Match `query` against every reference; best score first (ties: smaller p-value first).

    Each reference is aligned at every offset with overlap >= min(min_overlap, widths) in both
    orientations; the score is the mean column-wise Pearson r. The p-value compares it with the
    best score of `n_shuffles` column-permuted copies of the query (same permutations for every
    reference, drawn from `seed`); 0 shuffles gives p = nan.
    """
    if n_shuffles < 0:
        raise MotifError(f"match: n_shuffles must be >= 0, got {n_shuffles}")
    rng = np.random.default_rng(seed)
    kq = query.width
    perms = rng.permuted(np.tile(np.arange(kq), (n_shuffles, 1)), axis=1)
    order = np.concatenate([np.arange(kq)[None], perms])        # row 0 = the query itself
    fwd = _standardise(query.probabilities)[order]                # [1 + S, Kq, 4]
    # reverse complement of a permuted query: complement the letters, reverse the column order
    rev = _standardise(query.probabilities[:, ::-1])[order[:, ::-1]]
    results = []
    for ref in refs:
        overlap_min = min(min_overlap, kq, ref.width)
        score, orient, offset, overlap = _best(fwd, rev, _standardise(ref.probabilities), overlap_min)
        null = score[1:]
        p = (1 + np.count_nonzero(null >= score[0] - 1e-12)) / (1 + n_shuffles) if n_shuffles else np.nan
        results.append(Match(ref, float(score[0]), int(offset[0]), "+-"[int(orient[0])],
                             int(overlap[0]), float(p)))
    results.sort(key=lambda m: (-m.score, m.p_value if n_shuffles else 0.0))
    return results


def best_match(query: Motif, refs: Sequence[Motif], **kwargs) -> Match | None:
    """The top `match` result (None when `refs` is empty)."""
    found = match(query, refs, **kwargs)
    return found[0] if found else None


def match_label(found: Match | None) -> str:
    """Short text for tables and BED names: 'REF(alt)' or '' when nothing matched."""
    if found is None:
        return ""
    ref = found.ref
    return f"{ref.name}({ref.alt_name})" if ref.alt_name else ref.name
