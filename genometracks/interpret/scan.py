"""Genome scan of PWMs with FIMO statistics (memelite's FIMO, Grant et al. 2011) and q-values.

Scores are FIMO's log-odds in bits, log2((p + 1e-4) / 0.25) summed over the window (memelite's
pseudocount and its uniform background). p-values are FIMO's: P(window score >= observed) for a
uniform i.i.d. window, exact for the PWM rounded to 0.1-bit bins. q-values are Benjamini-Hochberg
over every test of the scan: all motifs x all N-free windows x both strands (one family, as one
FIMO run). Only windows with p < p_threshold are reported, so a q-value below p_threshold is exact
and one at or above it is an upper bound (`genometracks.interpret.fdr.bh_qvalues`).

Hits are windows [start, end) in 0-based forward coordinates; strand '-' means the motif reads
5'→3' on the reverse strand, i.e. the reverse complement of the forward window matches.
Windows containing N are not tests and never hit. On circular contigs windows that would wrap past
the end are not scanned (a BED interval cannot wrap); at most K-1 windows per contig and strand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from memelite import fimo

from genometracks.genome.sequence import N_TOKEN, Genome
from genometracks.interpret.fdr import bh_qvalues
from genometracks.interpret.motifs import Motif, MotifError

COLUMNS = ("motif", "chrom", "start", "end", "strand", "score", "p_value", "q_value")
FIMO_PSEUDOCOUNT = 1e-4  # memelite's `eps`, added to each probability before the log


def one_hot(tokens: np.ndarray) -> np.ndarray:
    """int8 [1, 4, L] one-hot of tokens [L] (A, C, G, T = 0..3); N (4) is an all-zero column."""
    tokens = np.asarray(tokens)
    out = np.zeros((1, 4, tokens.size), dtype=np.int8)
    known = np.flatnonzero(tokens < 4)
    out[0, tokens[known], known] = 1
    return out


def n_free_windows(tokens: np.ndarray, width: int) -> np.ndarray:
    """bool [L - width + 1]: window starts whose `width` bases hold no N (empty when L < width)."""
    if tokens.size < width:
        return np.zeros(0, dtype=bool)
    is_n = np.concatenate([[0], np.cumsum(np.asarray(tokens) == N_TOKEN)])
    return (is_n[width:] - is_n[:-width]) == 0


def max_score(motif: Motif) -> float:
    """The largest FIMO score (bits) any window can reach: the sum of each column's best log-odds."""
    return float(np.log2((motif.probabilities + FIMO_PSEUDOCOUNT) / 0.25).max(axis=1).sum())


def scan_genome(
    genome: Genome, motifs: Mapping[str, Motif], p_threshold: float = 1e-4, contigs: Iterable[str] | None = None, progress: bool = False
) -> tuple[pd.DataFrame, int]:
    """(Both-strand FIMO hits with p < p_threshold of every motif, the number of tests).

    Returns a DataFrame with COLUMNS, sorted by (chrom, start, strand, motif): motif (the key in
    `motifs`), chrom, start, end (int64, 0-based half-open, forward strand), strand ('+'/'-'), score
    (FIMO log-odds bits), p_value, q_value (Benjamini-Hochberg over all tests, see module docstring).
    """
    if not 0 < p_threshold <= 1:
        raise MotifError(f"interpret.scan_pvalue must be in (0, 1], got {p_threshold}")
    names = list(contigs) if contigs is not None else list(genome.contigs)
    pwms = {str(k): np.ascontiguousarray(m.probabilities.T, dtype=np.float64) for k, m in motifs.items()}
    frames, n_tests = [], 0
    for contig in names:
        tokens = genome.tokens(contig)
        ok = {k: n_free_windows(tokens, pwm.shape[1]) for k, pwm in pwms.items()}
        n_tests += 2 * sum(int(v.sum()) for v in ok.values())
        if not pwms or not any(v.any() for v in ok.values()):
            continue
        found = fimo(pwms, one_hot(tokens), threshold=p_threshold, reverse_complement=True, verbose=progress)
        for name, hits in zip(pwms, found):
            if hits.empty:
                continue
            start = hits["start"].to_numpy(np.int64)
            keep = ok[name][start]
            frames.append(
                pd.DataFrame(
                    {
                        "motif": name,
                        "chrom": contig,
                        "start": start[keep],
                        "end": hits["end"].to_numpy(np.int64)[keep],
                        "strand": hits["strand"].to_numpy(str)[keep],
                        "score": hits["score"].to_numpy(np.float64)[keep],
                        "p_value": hits["p-value"].to_numpy(np.float64)[keep],
                    }
                )
            )
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("motif", "chrom", "strand") else float) for c in COLUMNS}), n_tests
    out = pd.concat(frames, ignore_index=True)
    out["q_value"] = bh_qvalues(out["p_value"].to_numpy(), n_tests)
    return out.sort_values(["chrom", "start", "strand", "motif"], kind="stable").reset_index(drop=True), n_tests
