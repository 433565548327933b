"""Benjamini-Hochberg q-values, shared by the motif comparison (Tomtom) and the genome scan (FIMO)."""

from __future__ import annotations

import numpy as np

from genometracks.interpret.motifs import MotifError


def bh_qvalues(p_values: np.ndarray, n_tests: int | None = None) -> np.ndarray:
    """Benjamini-Hochberg q-values (step-up adjusted p-values) of `p_values` (any shape).

    q_(i) = min over j >= i of p_(j) · m / j, capped at 1, where p_(1) <= p_(2) <= ... are the given
    p-values sorted and m = `n_tests` (default: their number). Give a larger m when only the smallest
    p-values of m tests are at hand (a scan reports windows below a threshold t only): a q-value below
    t is then exact, because every untested term p_(j) · m / j with p_(j) >= t is >= t; one at or above
    t is an upper bound of the exact value. NaN p-values stay NaN and do not count.
    """
    p = np.asarray(p_values, dtype=np.float64)
    flat = p.ravel()
    ok = np.flatnonzero(np.isfinite(flat))
    m = ok.size if n_tests is None else int(n_tests)
    if m < ok.size:
        raise MotifError(f"bh_qvalues: n_tests={m} is smaller than the {ok.size} p-values given")
    if ((flat[ok] < 0) | (flat[ok] > 1)).any():
        raise MotifError("bh_qvalues: p-values must lie in [0, 1]")
    out = np.full(flat.shape, np.nan)
    order = ok[np.argsort(flat[ok], kind="stable")]
    ranked = flat[order] * m / np.arange(1, order.size + 1)
    out[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return out.reshape(p.shape)
