"""Head motifs scored in the promoters of the TSS calls, with FIMO statistics and q-values.

A head reads its motif at a fixed offset from the TSS (`offset`: where the centre of its K-nt word
lies, 0 = the +1 nucleotide, negative = upstream, on the TSS's strand). For every TSS call (0-based
position t, strand s) and head, the windows whose centre lies within `slack` nt of the head's offset
are scored with FIMO's statistics (Grant et al. 2011), the motif read 5'→3' on the call's strand. The
(call, head) pair is one test, its best window the candidate hit:

- score: log2((p + 1e-4) / b) summed over the window (FIMO's log-odds with memelite's pseudocount) against
  a background b (`background`: uniform unless given; the motif-hit track gives the base composition of
  the calls' promoters, `promoter_background`, as FIMO's --bgfile would: E. coli promoters are 57 % A/T,
  and against a uniform background the heads' A/T-rich words came out 1.3x too significant there);
- p_window: P(score >= observed) for an i.i.d. window drawn from b, exact for the log-odds rounded to
  0.1-bit bins as FIMO does (the window's own score rounded the same way). Computed here: memelite 0.5.0
  looks a window's unrounded score up in the rounded table and gives p = 0 to a best word whose
  score rounds above the table's top bin (reproduced in tests/test_scan.py);
- p_value = 1 - (1 - p_window)^W, Šidák's correction for the W windows looked at (N-free and inside a
  linear contig; a circular contig wraps);
- q_value: Benjamini-Hochberg over every tested (call, head) pair, one family.

A motif is thus asked where the model says it belongs, not over millions of genome windows, where a
7-nt word can never be a discovery (4^-7 = 6.1e-5 against ~10^7 tests).

Hit windows are [start, end) in 0-based forward coordinates with the call's strand: on '-' the
reverse complement of the forward window reads the motif. `tss_offset` is the window centre's
position relative to the call (negative = upstream).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from genometracks.genome.sequence import N_TOKEN, Genome, complement
from genometracks.interpret.fdr import bh_qvalues
from genometracks.interpret.motifs import Motif, MotifError

COLUMNS = ("motif", "chrom", "start", "end", "strand", "score", "p_window", "windows", "p_value", "q_value", "tss", "tss_offset")
FIMO_PSEUDOCOUNT = 1e-4  # memelite's `eps`, added to each probability before the log
BIN_BITS = 0.1  # FIMO's score bin
UNIFORM = np.full(4, 0.25)
PROMOTER_SPAN = (-100, 20)  # `promoter_background`: relative positions [first, last) on the call's strand


@dataclass(frozen=True)
class AnchoredMotif:
    """A motif and where it is read: its centre `offset` nt from the TSS (0 = +1, negative upstream)."""

    motif: Motif
    offset: int


def one_hot(tokens: np.ndarray) -> np.ndarray:
    """int8 [..., 4, L] one-hot of tokens [..., L] (A, C, G, T = 0..3); N (4) is an all-zero column."""
    tokens = np.asarray(tokens)
    out = (tokens[..., None, :] == np.arange(4, dtype=tokens.dtype)[:, None]).astype(np.int8)
    return out if tokens.ndim > 1 else out[None]


def _background(background: np.ndarray | None) -> np.ndarray:
    """float64 [4] (A, C, G, T) base frequencies summing to 1; None = uniform."""
    if background is None:
        return UNIFORM
    b = np.asarray(background, dtype=np.float64)
    if b.shape != (4,) or not np.isfinite(b).all() or (b <= 0).any():
        raise MotifError(f"motif scan: background must be 4 positive frequencies (A, C, G, T), got {b.tolist()}")
    return b / b.sum()


def max_score(motif: Motif, background: np.ndarray | None = None) -> float:
    """The largest FIMO score (bits) any window can reach: the sum of each column's best log-odds."""
    return float(log_odds(motif, background).max(axis=1).sum())


def log_odds(motif: Motif, background: np.ndarray | None = None) -> np.ndarray:
    """float64 [K, 4]: FIMO's per-column log-odds in bits, log2((p + 1e-4) / b), b uniform by default."""
    return np.log2((motif.probabilities + FIMO_PSEUDOCOUNT) / _background(background))


def binned_survival(binned: np.ndarray, background: np.ndarray | None = None) -> tuple[int, np.ndarray]:
    """(lowest, sf) for integer log-odds bins [K, 4]: sf[i] = P(S >= lowest + i), S the binned score
    of an i.i.d. window drawn from `background` (uniform by default; convolved column by column)."""
    weight = _background(background)
    lowest, pmf = 0, np.ones(1)
    for column in np.asarray(binned, dtype=np.int64):
        lo = int(column.min())
        grown = np.zeros(pmf.size + int(column.max()) - lo)
        for value, w in zip(column, weight):
            grown[value - lo : value - lo + pmf.size] += w * pmf
        lowest, pmf = lowest + lo, grown
    return lowest, np.cumsum(pmf[::-1])[::-1]


def window_statistics(tokens: np.ndarray, motif: Motif, background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(score, p) float64 [n, L - K + 1] of every window of tokens [n, L] (FIMO's log-odds in bits against
    `background`, uniform by default, and its exact p-value of the binned score); a window holding an N
    gets NaN in both."""
    lo = log_odds(motif, background)
    width = lo.shape[0]
    binned = np.rint(lo / BIN_BITS).astype(np.int64)
    lowest, sf = binned_survival(binned, background)
    n_windows = tokens.shape[1] - width + 1
    letters = tokens[:, np.arange(n_windows)[:, None] + np.arange(width)[None, :]]  # [n, W, K]
    known = (letters < 4).all(axis=2)
    safe = np.where(letters < 4, letters, 0)
    column = np.arange(width)
    score = np.where(known, lo[column, safe].sum(axis=2), np.nan)
    p = np.where(known, sf[np.clip(binned[column, safe].sum(axis=2) - lowest, 0, sf.size - 1)], np.nan)
    return score, p


def stranded_tokens(genome: Genome, calls: pd.DataFrame, relative: np.ndarray) -> np.ndarray:
    """uint8 [n_calls, len(relative)]: the bases at `relative` positions (int, 0 = the call's base,
    negative = upstream on its strand) read 5'→3' on each call's strand. Positions beyond the end of
    a linear contig are N; a circular contig wraps."""
    out = np.full((len(calls), relative.size), N_TOKEN, dtype=np.uint8)
    for chrom, rows in calls.groupby("chrom", sort=False).indices.items():
        tokens, circular = genome.tokens(str(chrom)), genome.contigs[str(chrom)].circular
        sign = np.where(calls["strand"].to_numpy()[rows] == "-", -1, 1)
        index = calls["position"].to_numpy(np.int64)[rows, None] + sign[:, None] * relative[None, :]
        if circular:
            index = index % tokens.size
        inside = (index >= 0) & (index < tokens.size)
        picked = np.where(inside, tokens[np.clip(index, 0, max(tokens.size - 1, 0))], N_TOKEN)
        out[rows] = np.where(sign[:, None] < 0, complement(picked), picked)
    return out


def promoter_background(genome: Genome, calls: pd.DataFrame) -> np.ndarray:
    """float64 [4] (A, C, G, T): the base composition of the calls' promoters, PROMOTER_SPAN (100 nt
    upstream to 20 downstream of each call, on its strand; N and positions off a linear contig not
    counted). Uniform when there is no base to count."""
    tokens = stranded_tokens(genome, calls, np.arange(*PROMOTER_SPAN, dtype=np.int64)) if len(calls) else np.zeros(0, np.uint8)
    counts = np.bincount(tokens.ravel(), minlength=5)[:4].astype(np.float64)
    return counts / counts.sum() if counts.sum() > 0 else UNIFORM.copy()


def scan_head(
    genome: Genome, calls: pd.DataFrame, head: str, anchored: AnchoredMotif, slack: int, background: np.ndarray | None = None
) -> pd.DataFrame:
    """The best window of one head's motif per call: COLUMNS except q_value (calls with no N-free
    window are left out); log-odds and p-values against `background` (uniform by default)."""
    width = anchored.motif.probabilities.shape[0]
    left = width // 2  # a window centred at r covers r - left .. r - left + width - 1
    first = anchored.offset - slack - left
    relative = np.arange(first, first + 2 * slack + width, dtype=np.int64)
    tokens = stranded_tokens(genome, calls, relative)
    n_windows = 2 * slack + 1
    score, p = window_statistics(tokens, anchored.motif, background)
    clean = np.isfinite(p)  # [n_calls, n_windows]: N-free and inside the contig
    p = np.where(clean, p, np.inf)
    # best window: smallest p, then the one nearest the head's offset, then the upstream one
    window = np.broadcast_to(np.arange(n_windows), p.shape)
    best = np.lexsort((window, np.abs(window - slack), p), axis=1)[:, 0]
    rows = np.arange(len(calls))
    tested = clean.sum(axis=1)
    keep = tested > 0
    p_window = np.minimum(p[rows, best], 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # calls with no window: left out below
        sidak = -np.expm1(tested * np.log1p(-p_window))
    centre = anchored.offset - slack + best  # relative to the call
    strand = calls["strand"].to_numpy()
    position = calls["position"].to_numpy(np.int64)
    lo_rel, hi_rel = centre - left, centre - left + width - 1  # relative span on the call's strand
    start = np.where(strand == "-", position - hi_rel, position + lo_rel)
    frame = pd.DataFrame(
        {
            "motif": head,
            "chrom": calls["chrom"].to_numpy(),
            "start": start,
            "end": start + width,
            "strand": strand,
            "score": score[rows, best],
            "p_window": p_window,
            "windows": tested,
            "p_value": sidak,
            "tss": calls["name"].to_numpy(),
            "tss_offset": centre,
        }
    )[keep]
    sizes = frame["chrom"].map(genome.chrom_sizes()).to_numpy(np.int64)
    frame["start"] = frame["start"].to_numpy() % sizes  # a circular contig's window across the origin starts at its wrapped base
    frame["end"] = frame["start"] + width
    return frame


def scan_calls(
    genome: Genome, calls: pd.DataFrame, heads: Mapping[str, AnchoredMotif], slack: int, background: np.ndarray | None = None
) -> pd.DataFrame:
    """Every (call, head) test of the module docstring, sorted by (chrom, start, strand, motif), with
    Benjamini-Hochberg q-values over all of them. `calls`: chrom, position (0-based), strand, name;
    `background`: base frequencies of the null (uniform by default; see promoter_background)."""
    if int(slack) < 0:
        raise MotifError(f"interpret.hit_slack must be a whole number of nt >= 0, got {slack}")
    frames = [scan_head(genome, calls, head, anchored, int(slack), background) for head, anchored in heads.items()] if len(calls) else []
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("motif", "chrom", "strand", "tss") else float) for c in COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    out["q_value"] = bh_qvalues(out["p_value"].to_numpy())
    out = out[list(COLUMNS)]
    return out.sort_values(["chrom", "start", "strand", "motif"], kind="stable").reset_index(drop=True)
