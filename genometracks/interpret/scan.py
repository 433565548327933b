"""Genome scan with a PWM and exact p-values (FIMO-like).

Scores are log-odds in bits against an i.i.d. background. p-values come from the exact
distribution of the window score under that background, obtained by dynamic programming over
the PWM after rounding every matrix entry to a multiple of `resolution` bits (as FIMO does):
the p-value of a window is P(S_rounded >= its rounded score), exact for the rounded matrix.

Hits are windows [start, end) in 0-based forward coordinates; strand '-' means the motif reads
5'→3' on the reverse strand, i.e. the reverse complement of the forward window matches.
Windows containing N never hit. On circular contigs windows that would wrap past the end are
not scanned (a BED interval cannot wrap); the loss is at most K-1 windows per contig and strand.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from genometracks.genome.intervals import Interval
from genometracks.genome.sequence import N_TOKEN, Genome
from genometracks.interpret.motifs import UNIFORM, Motif, MotifError


def _background(background: np.ndarray | None) -> np.ndarray:
    bg = UNIFORM.copy() if background is None else np.asarray(background, dtype=np.float64)
    if bg.shape != (4,) or (bg <= 0).any():
        raise MotifError(f"background must be 4 positive frequencies (A, C, G, T), got {bg}")
    return bg / bg.sum()


def log_odds(motif: Motif, background: np.ndarray | None = None, pseudocount: float = 0.01) -> np.ndarray:
    """Log-odds matrix in bits [K, 4]: log2(p' / q), p' = (p + pseudocount · q) / (1 + pseudocount)
    (the pseudocount is a fraction of probability mass spread like the background q)."""
    bg = _background(background)
    if pseudocount < 0:
        raise MotifError(f"log_odds: pseudocount must be >= 0, got {pseudocount}")
    p = (motif.probabilities + pseudocount * bg) / (1.0 + pseudocount)
    with np.errstate(divide="ignore"):
        lo = np.log2(p / bg)
    if not np.isfinite(lo).all():
        raise MotifError(f"motif {motif.name!r} has zero probabilities; use pseudocount > 0")
    return lo


def _integer_matrix(lo: np.ndarray, resolution: float) -> np.ndarray:
    if not resolution > 0:
        raise MotifError(f"resolution must be > 0 bits, got {resolution}")
    return np.rint(lo / resolution).astype(np.int64)


def score_distribution(log_odds: np.ndarray, background: np.ndarray | None = None,
                       resolution: float = 0.001) -> tuple[np.ndarray, np.ndarray]:
    """Exact null distribution of the rounded window score.

    Returns (scores [M] in bits, ascending: every multiple of `resolution` between the minimum and
    maximum rounded score; pvalues [M] = P(S >= score) for a background i.i.d. window).
    """
    bg = _background(background)
    ints = _integer_matrix(np.asarray(log_odds, dtype=np.float64), resolution)
    low = ints.min(axis=1)
    shifted = ints - low[:, None]                              # >= 0 per column
    probs = np.zeros(int(shifted.max(axis=1).sum()) + 1)
    probs[0] = 1.0
    reach = 0
    for column in shifted:                                     # K steps; each vectorised over scores
        nxt = np.zeros_like(probs)
        for letter in range(4):
            s = column[letter]
            nxt[s:s + reach + 1] += bg[letter] * probs[:reach + 1]
        probs, reach = nxt, reach + int(column.max())
    tail = np.cumsum(probs[::-1])[::-1]                        # P(S >= score)
    scores = (np.arange(probs.size) + low.sum()) * resolution
    return scores, np.minimum(tail, 1.0)


def _window_sums(tokens: np.ndarray, matrix: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
    """Σ_m matrix[m, tokens[i + m]] for window starts i (default: all, [n - K + 1]); N adds 0."""
    k = matrix.shape[0]
    padded = np.concatenate([matrix, np.zeros((k, 1), dtype=matrix.dtype)], axis=1)
    if starts is None:
        starts = np.arange(tokens.size - k + 1)
        windows = [tokens[m:m + starts.size] for m in range(k)]  # views, no copy
    else:
        windows = [tokens[starts + m] for m in range(k)]
    total = np.zeros(starts.size, dtype=matrix.dtype)
    for m in range(k):                                         # K vectorised gathers
        total += padded[m, windows[m]]
    return total


def genome_background(genome: Genome, contigs: Iterable[str] | None = None) -> np.ndarray:
    """A, C, G, T frequencies of both strands together (so A = T and C = G)."""
    counts = np.zeros(5)
    for name in contigs or genome.contigs:
        counts += np.bincount(genome.tokens(name), minlength=5)[:5]
    at, cg = counts[0] + counts[3], counts[1] + counts[2]
    if at + cg == 0:
        raise MotifError("genome_background: the contigs hold no A/C/G/T")
    return np.array([at, cg, cg, at]) / (2 * (at + cg))


def scan_genome(genome: Genome, motif: Motif, p_threshold: float = 1e-4, background: np.ndarray | None = None,
                contigs: Iterable[str] | None = None, pseudocount: float = 0.01,
                resolution: float = 0.001) -> np.ndarray:
    """Both-strand PWM hits with p < p_threshold, sorted by (chrom, start, strand).

    background: None = the scanned contigs' own both-strand composition.
    Returns a structured array with fields chrom (str), start, end (int64, 0-based half-open),
    strand ('+'/'-'), score (log-odds bits, unrounded), p_value.
    """
    if not 0 < p_threshold <= 1:
        raise MotifError(f"p_threshold must be in (0, 1], got {p_threshold}")
    names = list(contigs) if contigs is not None else list(genome.contigs)
    bg = genome_background(genome, names) if background is None else _background(background)
    lo = log_odds(motif, bg, pseudocount)
    scores, pvalues = score_distribution(lo, bg, resolution)
    passing = np.flatnonzero(pvalues < p_threshold)
    low = int(round(scores[0] / resolution))
    min_int = low + int(passing[0]) if passing.size else None   # pvalues decrease with score
    k = motif.width
    parts = []
    for name in names:
        tokens = genome.tokens(name).astype(np.intp)
        if min_int is None or tokens.size < k:
            continue
        n_in_window = np.convolve((tokens == N_TOKEN).astype(np.int64), np.ones(k, dtype=np.int64), "valid")
        for strand, matrix in (("+", lo), ("-", lo[::-1, ::-1])):
            ints = _window_sums(tokens, _integer_matrix(matrix, resolution))
            starts = np.flatnonzero((ints >= min_int) & (n_in_window == 0))
            if starts.size == 0:
                continue
            real = _window_sums(tokens, matrix, starts)
            hits = np.empty(starts.size, dtype=_dtype(max(len(n) for n in names)))
            hits["chrom"], hits["start"], hits["end"], hits["strand"] = name, starts, starts + k, strand
            hits["score"], hits["p_value"] = real, pvalues[ints[starts] - low]
            parts.append(hits)
    out = np.concatenate(parts) if parts else np.empty(0, dtype=_dtype(max((len(n) for n in names), default=1)))
    return out[np.lexsort((out["strand"], out["start"], out["chrom"]))]


def _dtype(name_length: int) -> np.dtype:
    return np.dtype([("chrom", f"U{max(name_length, 1)}"), ("start", np.int64), ("end", np.int64),
                     ("strand", "U1"), ("score", np.float64), ("p_value", np.float64)])


def hits_to_intervals(hits: np.ndarray, name: str, score: str = "neglog10p") -> list[Interval]:
    """BED6-ready intervals named `name`; score = -log10(p) ('neglog10p') or log-odds bits ('log_odds')."""
    if score not in ("neglog10p", "log_odds"):
        raise MotifError(f"hits_to_intervals: score must be 'neglog10p' or 'log_odds', got {score!r}")
    values = -np.log10(np.maximum(hits["p_value"], 1e-300)) if score == "neglog10p" else hits["score"]
    return [Interval(str(c), int(s), int(e), str(st), name, float(v))
            for c, s, e, st, v in zip(hits["chrom"], hits["start"], hits["end"], hits["strand"], values)]
