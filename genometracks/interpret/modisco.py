"""TF-MoDISco (the `modisco` package, `modiscolite`) on DeepLIFT/SHAP contributions, patterns matched
with Tomtom (memelite) against reference motifs.

Input: the windows of `deeplift.deeplift_shap`, cut to TSS-relative columns [lo, hi] (0 = +1,
both ends included), as one-hot [n, K, 4] and hypothetical contributions [n, K, 4] (A, C, G, T,
read on the target's strand). MoDISco finds seqlets (high-contribution stretches), clusters them
and returns patterns: a PPM, mean contributions and the seqlets (example, start, end, reverse
complement or not) they were built from.

Each pattern is trimmed to the span of columns whose summed |mean contribution| reaches
`trim_fraction` of its largest column, then compared with Tomtom (both orientations) against the
references; E = p x number of references, q = Benjamini-Hochberg over all patterns x references.

Positions (0-based window columns → TSS-relative). Pattern column k of a seqlet [start, end) is
window column start + k, or end - 1 - k when MoDISco read the seqlet reverse-complemented. A
Tomtom match at offset o places the reference's first column at trimmed-pattern column -o (on the
pattern's strand when `match_strand` is '+', on its reverse complement when '-'). The match's
position from the TSS is the median over seqlets of the TSS-relative position of the box's
5'-most base on the target strand, and its orientation the majority orientation on that strand.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from memelite import tomtom

from genometracks.interpret.attribution import AttributionError
from genometracks.interpret.motifs import Motif


@dataclass
class Pattern:
    """One MoDISco pattern: name ('pos_0', 'neg_1', ...), sign (+1/-1), ppm float64 [L, 4],
    contrib float64 [L, 4] (mean contribution of the observed bases), hypothetical [L, 4],
    trimmed [start, end) columns, seqlets: int64 [m, 4] (example row, start, end, reverse 0/1)
    with start/end in the cut windows' columns."""

    name: str
    sign: int
    ppm: np.ndarray
    contrib: np.ndarray
    hypothetical: np.ndarray
    trimmed: tuple[int, int]
    seqlets: np.ndarray

    def motif(self) -> Motif:
        """The trimmed PPM as a Motif (nsites = seqlets)."""
        a, b = self.trimmed
        return Motif(
            f"modisco_{self.name}",
            self.ppm[a:b] + 1e-6,
            nsites=float(len(self.seqlets)),
            source="TF-MoDISco on DeepLIFT/SHAP",
            meta={"trim_offset": a},
        )


def cut(onehot: np.ndarray, hypothetical: np.ndarray, relative: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onehot, hypothetical, relative) restricted to TSS-relative columns lo..hi."""
    cols = np.flatnonzero((relative >= lo) & (relative <= hi))
    if cols.size < 10:
        raise AttributionError(
            f"interpret.modisco_window=[{lo}, {hi}] keeps {cols.size} window columns; MoDISco needs at least 10: widen it"
        )
    return onehot[:, cols], hypothetical[:, cols], relative[cols]


def _trim(contrib: np.ndarray, fraction: float) -> tuple[int, int]:
    score = np.abs(contrib.sum(axis=1))
    keep = np.flatnonzero(score >= fraction * score.max())
    return int(keep[0]), int(keep[-1]) + 1


def find_patterns(
    onehot: np.ndarray,
    hypothetical: np.ndarray,
    options: dict,
    trim_fraction: float,
) -> list[Pattern]:
    """MoDISco patterns (positive metacluster first) of onehot/hypothetical float32 [n, K, 4];
    `options` go to modiscolite.tfmodisco.TFMoDISco as keyword arguments."""
    from modiscolite.tfmodisco import TFMoDISco

    with contextlib.redirect_stdout(io.StringIO()):
        positive, negative = TFMoDISco(
            one_hot=onehot.astype(np.float32), hypothetical_contribs=hypothetical.astype(np.float32), verbose=False, **options
        )
    out = []
    for sign, tag, patterns in ((1, "pos", positive), (-1, "neg", negative)):
        for i, p in enumerate(patterns or []):
            seqlets = np.array([(s.example_idx, s.start, s.end, int(bool(s.is_revcomp))) for s in p.seqlets], dtype=np.int64).reshape(-1, 4)
            contrib = np.asarray(p.contrib_scores, dtype=np.float64)
            out.append(
                Pattern(
                    f"{tag}_{i}",
                    sign,
                    np.asarray(p.sequence, dtype=np.float64),
                    contrib,
                    np.asarray(p.hypothetical_contribs, dtype=np.float64),
                    _trim(contrib, trim_fraction),
                    seqlets,
                )
            )
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of a flat array of p-values."""
    order = np.argsort(p, kind="stable")
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1.0)
    return out


def box_position(pattern: Pattern, offset: int, strand: int, width: int, relative: np.ndarray) -> tuple[float, float]:
    """(median TSS-relative position of the matched box's 5'-most base on the target strand,
    fraction of seqlets where the box reads 5'→3' on the target strand); see the module docstring."""
    first = pattern.trimmed[0] - int(offset)  # box columns [first, first + width) of the pattern
    s = pattern.seqlets
    reverse = s[:, 3] == 1
    a = np.where(reverse, s[:, 2] - 1 - (first + width - 1), s[:, 1] + first)  # 5'-most window column
    inside = (a >= 0) & (a < relative.size)
    if not inside.any():
        return float("nan"), float("nan")
    forward = reverse == (int(strand) == 1)
    return float(np.median(relative[a[inside]])), float(forward[inside].mean())


MATCH_COLUMNS = [
    "pattern",
    "reference",
    "p_value",
    "e_value",
    "q_value",
    "offset",
    "match_strand",
    "overlap",
    "position_from_tss",
    "forward_fraction",
]


def match_patterns(patterns: list[Pattern], references: list[Motif], relative: np.ndarray) -> pd.DataFrame:
    """One row per pattern × reference: p, E, q (BH over the whole table), offset, strand, overlap,
    the box's TSS-relative position and orientation (see box_position). Sorted by pattern, then p."""
    if not patterns or not references:
        return pd.DataFrame(columns=MATCH_COLUMNS)
    queries = [p.motif().probabilities.T for p in patterns]
    targets = [m.probabilities.T for m in references]
    p_values, _, offsets, overlaps, strands = tomtom(queries, targets, n_jobs=1)
    rows = []
    for i, pattern in enumerate(patterns):
        for j, ref in enumerate(references):
            pos, fwd = box_position(pattern, int(offsets[i, j]), int(strands[i, j]), ref.width, relative)
            rows.append(
                {
                    "pattern": pattern.name,
                    "reference": ref.name,
                    "p_value": float(p_values[i, j]),
                    "offset": int(offsets[i, j]),
                    "match_strand": "+" if strands[i, j] == 0 else "-",
                    "overlap": int(overlaps[i, j]),
                    "position_from_tss": pos,
                    "forward_fraction": fwd,
                }
            )
    table = pd.DataFrame(rows)
    table["e_value"] = table["p_value"] * len(references)
    table["q_value"] = _bh(table["p_value"].to_numpy())
    order = {p.name: i for i, p in enumerate(patterns)}
    table = table.sort_values(["pattern", "p_value"], key=lambda c: c.map(order) if c.name == "pattern" else c, kind="stable")
    return table[MATCH_COLUMNS].reset_index(drop=True)


PATTERN_COLUMNS = [
    "pattern",
    "sign",
    "seqlets",
    "consensus",
    "width",
    "information",
    "position_from_tss",
    "best_match",
    "p_value",
    "e_value",
    "q_value",
    "match_position_from_tss",
]


def pattern_table(patterns: list[Pattern], matches: pd.DataFrame, relative: np.ndarray) -> pd.DataFrame:
    """One row per pattern (PATTERN_COLUMNS; no rows when there is none): sign, seqlets, trimmed
    consensus and width, information (bits), median
    TSS-relative start of the trimmed pattern, best match with its p, E, q and position."""
    rows = []
    for p in patterns:
        motif = p.motif()
        start, _ = box_position(p, 0, 0, motif.width, relative)
        best = matches[matches["pattern"] == p.name].head(1)
        row = {
            "pattern": p.name,
            "sign": p.sign,
            "seqlets": len(p.seqlets),
            "consensus": motif.consensus(),
            "width": motif.width,
            "information": round(motif.information_content()[1], 3),
            "position_from_tss": start,
            "best_match": ".",
            "p_value": np.nan,
            "e_value": np.nan,
            "q_value": np.nan,
            "match_position_from_tss": np.nan,
        }
        if len(best):
            b = best.iloc[0]
            row.update(
                best_match=b["reference"],
                p_value=b["p_value"],
                e_value=b["e_value"],
                q_value=b["q_value"],
                match_position_from_tss=b["position_from_tss"],
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=PATTERN_COLUMNS)
