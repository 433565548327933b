"""Motif-to-motif similarity with Tomtom statistics (memelite's Tomtom, Gupta et al. 2007).

`compare` aligns every query with every reference (all offsets, both orientations; Tomtom's
"complete" Euclidean column score) and returns Tomtom's p-value of the best alignment, the
E-value = p · number of references (Tomtom's definition, per query) and the Benjamini-Hochberg
q-value over the query x reference pairs of the queries that may be matched (`family`; default all).

Only queries with enough information belong in that family: Tomtom's p-values of a near-flat query
are far too small (a flat column sits close to the flat spacer columns of many references: 100 random
7-mer count matrices of 50 k-mers, ~0.3 bits, gave P(p < 0.001) = 0.066 against the 317 shared
references), and in one family with the informative queries they pull every q-value down (the
attention heads' by 3-5x; uninformative sigma-CNN kernels "matched" database motifs through them).
Their q-values are NaN.

Tomtom's null distribution of a query column is its score against every reference column, so
the p-values depend on the reference set; memelite warns below 25 references and `compare`
records that in `TomtomTable.note`.

Alignment convention: orientation '+' compares the query with the reference as is, '-' with the
reference's reverse complement; `offset` is the column of that (possibly reverse-complemented)
reference under query column 0 (negative: the query overhangs the reference's left end);
`overlap` = aligned columns.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from memelite import tomtom

from genometracks.interpret.fdr import bh_qvalues
from genometracks.interpret.motifs import Motif, MotifError

MIN_RELIABLE_TARGETS = 25  # memelite's own threshold for its warning


@dataclass(frozen=True)
class Match:
    """Best alignment of a query against one reference motif."""

    ref: Motif
    p_value: float  # Tomtom p-value of the best alignment
    e_value: float  # p · number of references
    q_value: float  # Benjamini-Hochberg over the family's queries x references; NaN outside it
    offset: int  # reference column under query column 0 (see module docstring)
    orientation: str  # '+' reference as is, '-' its reverse complement
    overlap: int  # number of aligned columns


@dataclass(frozen=True)
class TomtomTable:
    """All pairs: float64 [Q, R] p, e, q; int64 [Q, R] offset, overlap; str [Q, R] orientation."""

    queries: list[Motif]
    refs: list[Motif]
    p: np.ndarray
    e: np.ndarray
    q: np.ndarray
    offset: np.ndarray
    overlap: np.ndarray
    orientation: np.ndarray
    note: str

    def match(self, i: int, j: int) -> Match:
        """Query i against reference j."""
        return Match(
            self.refs[j],
            float(self.p[i, j]),
            float(self.e[i, j]),
            float(self.q[i, j]),
            int(self.offset[i, j]),
            str(self.orientation[i, j]),
            int(self.overlap[i, j]),
        )

    def frame(self) -> pd.DataFrame:
        """Long table, one row per (query, reference), query-major: query, reference, reference_alt,
        reference_source, p_value, e_value, q_value, offset, overlap, orientation."""
        nq, nr = self.p.shape
        return pd.DataFrame(
            {
                "query": np.repeat([m.name for m in self.queries], nr),
                "reference": np.tile([m.name for m in self.refs], nq),
                "reference_alt": np.tile([m.alt_name or "." for m in self.refs], nq),
                "reference_source": np.tile([m.source or "." for m in self.refs], nq),
                "p_value": self.p.ravel(),
                "e_value": self.e.ravel(),
                "q_value": self.q.ravel(),
                "offset": self.offset.ravel(),
                "overlap": self.overlap.ravel(),
                "orientation": self.orientation.ravel(),
            }
        )

    def best(self, i: int) -> Match | None:
        """Query i's reference of smallest p-value (ties: the first reference); None without references."""
        if not self.refs:
            return None
        return self.match(i, int(np.argmin(self.p[i])))


def _columns(motif: Motif) -> np.ndarray:
    """Tomtom's layout: float64 [4, K] (rows A, C, G, T), C-contiguous."""
    return np.ascontiguousarray(motif.probabilities.T, dtype=np.float64)


def compare(queries: Sequence[Motif], refs: Sequence[Motif], family: Sequence[bool] | None = None) -> TomtomTable:
    """Tomtom of every query against every reference (see the module docstring). family [Q]: the
    queries whose pairs form the Benjamini-Hochberg family (those that may be reported as matched:
    informative ones); the others get q = NaN. Default: every query."""
    queries, refs = list(queries), list(refs)
    shape = (len(queries), len(refs))
    member = np.ones(len(queries), dtype=bool) if family is None else np.asarray(family, dtype=bool)
    if member.shape != (len(queries),):
        raise MotifError(f"tomtom: family has {member.size} flags for {len(queries)} queries")
    if not queries or not refs:
        empty = np.zeros(shape)
        return TomtomTable(
            queries,
            refs,
            empty,
            empty,
            empty,
            empty.astype(np.int64),
            empty.astype(np.int64),
            np.full(shape, "."),
            "no queries" if not queries else "no reference motifs",
        )
    for m in queries + refs:
        if not np.isfinite(m.probabilities).all():
            raise MotifError(f"tomtom: motif {m.name!r} ({m.source}) has non-finite probabilities")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the few-targets warning: kept in `note` below
        p, _, offset, overlap, strand = tomtom([_columns(m) for m in queries], [_columns(m) for m in refs], n_jobs=-1)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    note = (
        ""
        if len(refs) >= MIN_RELIABLE_TARGETS
        else (
            f"{len(refs)} reference motifs (< {MIN_RELIABLE_TARGETS}): Tomtom's null is built from the reference "
            "columns, so p-values depend strongly on this small set"
        )
    )
    return TomtomTable(
        queries,
        refs,
        p,
        p * len(refs),
        bh_qvalues(np.where(member[:, None], p, np.nan)),
        np.rint(offset).astype(np.int64),
        np.rint(overlap).astype(np.int64),
        np.where(strand > 0.5, "-", "+"),
        note,
    )


def best_matches(
    queries: Sequence[Motif], refs: Sequence[Motif], family: Sequence[bool] | None = None
) -> tuple[list[Match | None], TomtomTable]:
    """(best match per query, the whole table); q-values over the `family` queries x references (compare)."""
    table = compare(queries, refs, family)
    return [table.best(i) for i in range(len(table.queries))], table


def match_label(found: Match | None) -> str:
    """Short text for tables and BED names: 'REF(alt)' or '' when nothing matched."""
    if found is None:
        return ""
    ref = found.ref
    return f"{ref.name}({ref.alt_name})" if ref.alt_name else ref.name
