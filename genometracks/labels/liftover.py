"""Liftover of point sites from an old assembly onto a new one (e.g. U00096.2 → NC_000913.3).

The two assemblies differ by a few indels, so old → new is a piecewise-constant offset. An
`OffsetMap` is inferred from anchors present in both assemblies (genes with the same locus tag and
length, or flanking sequences found exactly in the new genome); no breakpoint is hard-coded.
All coordinates are 0-based forward-strand; anchor intervals are half-open [start, end).
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import complement, encode


class LiftoverError(ValueError):
    """Bad liftover input; the message names the file or set, the record and the fix."""


def take_sites(sites: SiteSet, idx: np.ndarray) -> SiteSet:
    """`sites.subset(idx)` that also subsets the per-site arrays kept in `meta` (length n)."""
    n = len(sites)
    out = sites.subset(idx)
    out.meta = {k: (v[idx] if isinstance(v, np.ndarray) and v.ndim == 1 and len(v) == n else v) for k, v in sites.meta.items()}
    return out


@dataclass(frozen=True)
class OffsetMap:
    """Old → new coordinates: segment i covers old [lo[i], hi[i]) and adds offset[i] (nt).

    Neighbouring segments have different offsets; between them, old [hi[i], lo[i+1]) is ambiguous
    (the indel lies somewhere inside it) and maps to nothing. Before the first segment and after
    the last one the end offsets extend, but only within [trusted_from, trusted_to): an anchor
    discarded beyond an end segment with another offset means an indel may lie there. Arrays are
    int64 [k], sorted by `lo`.
    """

    lo: np.ndarray
    hi: np.ndarray
    offset: np.ndarray
    trusted_from: int | None = None  # old positions below it map to nothing (None: no limit)
    trusted_to: int | None = None  # old positions at or above it map to nothing (None: no limit)

    def __post_init__(self) -> None:
        for name in ("lo", "hi", "offset"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        if not (len(self.lo) == len(self.hi) == len(self.offset) > 0):
            raise LiftoverError("OffsetMap needs lo, hi, offset of one non-zero length")
        if (np.diff(self.lo) <= 0).any() or (self.hi < self.lo).any() or (self.hi[:-1] > self.lo[1:]).any():
            raise LiftoverError("OffsetMap segments must be sorted, non-overlapping, with lo <= hi")

    @classmethod
    def from_anchors(
        cls, old_start: np.ndarray, old_end: np.ndarray, new_start: np.ndarray, min_run: int = 2, source: str = "anchors"
    ) -> OffsetMap:
        """Infer the map from anchors (old [start, end) at new_start, all 0-based, [m] each).

        Anchors are sorted by old start; runs of consecutive anchors with one offset form a segment.
        Runs shorter than `min_run` anchors (e.g. a re-annotated gene) are discarded as outliers
        unless every run is that short. A discarded anchor beyond the last segment (before the first)
        with another offset than that segment's may mark an indel there: positions past the segment's
        last anchor (before its first) then map to nothing instead of taking an offset that may be wrong.
        """
        old_start, old_end, new_start = (np.asarray(a, dtype=np.int64) for a in (old_start, old_end, new_start))
        if old_start.size == 0:
            raise LiftoverError(
                f"{source}: no anchors shared by both assemblies; check that both "
                "annotations use the same gene identifiers (locus tags / b-numbers)"
            )
        order = np.argsort(old_start, kind="stable")
        old_start, old_end, off = old_start[order], old_end[order], (new_start - old_start)[order]
        every = (old_start, old_end, off)
        for _ in range(2):  # drop short runs, then re-merge runs that became neighbours
            run_id = np.concatenate([[0], np.cumsum(off[1:] != off[:-1])])
            run_len = np.bincount(run_id)
            keep = run_len[run_id] >= min_run
            if keep.all() or not keep.any():
                break
            old_start, old_end, off = old_start[keep], old_end[keep], off[keep]
        run_id = np.concatenate([[0], np.cumsum(off[1:] != off[:-1])])
        first = np.flatnonzero(np.r_[True, run_id[1:] != run_id[:-1]])
        lo = old_start[first]
        hi = np.maximum.reduceat(old_end, first)
        hi = np.minimum(hi, np.r_[lo[1:], np.iinfo(np.int64).max])  # overlapping genes: no gap
        offsets = off[first]
        all_start, all_end, all_off = every
        after = (all_start >= hi[-1]) & (all_off != offsets[-1])
        before = (all_end <= lo[0]) & (all_off != offsets[0])
        return cls(lo, hi, offsets, trusted_from=int(lo[0]) if before.any() else None, trusted_to=int(hi[-1]) if after.any() else None)

    @property
    def breakpoints(self) -> list[tuple[int, int, int, int]]:
        """(gap_start, gap_end, offset_before, offset_after) per breakpoint, old 0-based [start, end)."""
        return [(int(self.hi[i]), int(self.lo[i + 1]), int(self.offset[i]), int(self.offset[i + 1])) for i in range(len(self.lo) - 1)]

    def map(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Old positions [n] → (new positions [n] int64, ok bool [n]); ok False = ambiguous gap."""
        pos = np.asarray(pos, dtype=np.int64)
        k = np.clip(np.searchsorted(self.lo, pos, side="right") - 1, 0, len(self.lo) - 1)
        last = len(self.lo) - 1
        ok = (pos < self.hi[k]) | (k == last) | (pos < self.lo[0])
        if self.trusted_from is not None:
            ok &= pos >= self.trusted_from
        if self.trusted_to is not None:
            ok &= pos < self.trusted_to
        return pos + self.offset[k], ok


def read_gene_anchors(path: str | Path, feature: str) -> dict[str, tuple[int, int]]:
    """Locus tag → (start, end) 0-based half-open, for `feature` rows of a GTF/GFF3 (gz ok).

    The key is `locus_tag` if present, else the first `gene_id`. Tags seen twice are left out
    (split or duplicated genes make poor anchors).
    """
    path = Path(path)
    if not path.is_file():
        raise LiftoverError(f"{path}: gene annotation not found; liftover anchors need it (check data_root)")
    opener = gzip.open if path.suffix == ".gz" else open
    tag_re = re.compile(r'locus_tag[= ]"?([^;"\s]+)|gene_id[= ]"?([^;"\s]+)')
    found: dict[str, tuple[int, int]] = {}
    seen_twice: set[str] = set()
    with opener(path, "rt") as handle:
        for number, line in enumerate(handle, 1):
            if line.startswith("##FASTA"):
                break
            fields = line.rstrip("\n").split("\t")
            if line.startswith("#") or len(fields) < 9 or fields[2] != feature:
                continue
            match = tag_re.search(fields[8])
            if not match:
                continue
            tag = next(m for m in match.groups() if m)
            try:
                interval = (int(fields[3]) - 1, int(fields[4]))
            except ValueError:
                raise LiftoverError(
                    f"{path}, line {number}: start/end {fields[3]!r}/{fields[4]!r} are not integers; fix the GFF/GTF columns 4-5"
                ) from None
            if tag in found:
                seen_twice.add(tag)
            found[tag] = interval
    if not found:
        raise LiftoverError(f"{path}: no {feature!r} rows with a locus_tag or gene_id; pass the right feature type or another annotation")
    return {k: v for k, v in found.items() if k not in seen_twice}


def gene_offset_map(
    old_annotation: str | Path, new_annotation: str | Path, old_feature: str = "CDS", new_feature: str = "gene", min_run: int = 2
) -> OffsetMap:
    """OffsetMap anchored on genes with the same locus tag and the same length in both annotations."""
    old = read_gene_anchors(old_annotation, old_feature)
    new = read_gene_anchors(new_annotation, new_feature)
    shared = [t for t in old if t in new and old[t][1] - old[t][0] == new[t][1] - new[t][0]]
    arr_old = np.array([old[t] for t in shared], dtype=np.int64).reshape(-1, 2)
    arr_new = np.array([new[t][0] for t in shared], dtype=np.int64)
    return OffsetMap.from_anchors(arr_old[:, 0], arr_old[:, 1], arr_new, min_run=min_run, source=f"{old_annotation} vs {new_annotation}")


def _kmer_codes(tokens: np.ndarray, k: int) -> np.ndarray:
    """2-bit codes of every k-mer (k <= 32) starting at 0..n-k; windows with N get code -1 (max)."""
    n = len(tokens) - k + 1
    codes = np.zeros(max(n, 0), dtype=np.uint64)
    for j in range(k):
        codes = (codes << np.uint64(2)) | (tokens[j : j + n] & 3).astype(np.uint64)
    has_n = np.convolve((tokens == 4).astype(np.int32), np.ones(k, dtype=np.int32), "valid") > 0
    codes[has_n] = np.iinfo(np.uint64).max
    return codes


def locate_flanks(
    tokens: np.ndarray, flanks: np.ndarray, strand: np.ndarray, plus1: np.ndarray, expected: np.ndarray, max_shift: int = 5000
) -> np.ndarray:
    """New +1 positions [n] of records whose flank occurs exactly once within ±max_shift nt of
    `expected` (0-based forward); -1 where it is absent, ambiguous or not plain ACGT.

    tokens: forward-strand genome tokens [L]; flanks: str [n] read 5'→3' on each record's strand;
    plus1: index of the +1 nucleotide inside each flank [n].
    """
    n = len(flanks)
    result = np.full(n, -1, dtype=np.int64)
    lengths = np.array([len(f) for f in flanks], dtype=np.int64)
    if n == 0 or lengths.min() < 12:
        return result
    k = int(min(32, lengths.min()))
    codes = _kmer_codes(tokens, k)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    for length in np.unique(lengths):  # one vectorised pass per flank length
        rows = np.flatnonzero(lengths == length)
        fwd = encode("".join(flanks[rows]), where="flank sequences").reshape(len(rows), length)
        minus = strand[rows] == "-"
        fwd[minus] = complement(fwd[minus, ::-1])  # [r, length], forward strand
        valid = (fwd < 4).all(axis=1)
        q = np.zeros(len(rows), dtype=np.uint64)
        for j in range(k):
            q = (q << np.uint64(2)) | (fwd[:, j] & 3).astype(np.uint64)
        left = np.searchsorted(sorted_codes, q, "left")
        right = np.searchsorted(sorted_codes, q, "right")
        hits = right - left
        owner = np.repeat(np.arange(len(rows)), hits)
        first_hit = np.repeat(left - np.concatenate([[0], np.cumsum(hits)[:-1]]), hits)
        starts = order[first_hit + np.arange(hits.sum())]
        local = np.where(strand[rows[owner]] == "+", plus1[rows[owner]], length - 1 - plus1[rows[owner]])
        cand = starts + local
        inside = (np.abs(cand - expected[rows[owner]]) <= max_shift) & (starts + length <= len(tokens))
        window = starts[inside][:, None] + np.arange(length)[None, :]
        full = (tokens[window] == fwd[owner[inside]]).all(axis=1)
        owner_ok, cand_ok = owner[inside][full], cand[inside][full]
        count = np.bincount(owner_ok, minlength=len(rows))
        unique = (count == 1) & valid
        pick = np.zeros(len(rows), dtype=np.int64)
        pick[owner_ok] = cand_ok
        result[rows[unique]] = pick[unique]
    return result


def lift_sites(
    sites: SiteSet,
    offset_map: OffsetMap,
    target_chrom: str,
    target_length: int | None = None,
    tokens: np.ndarray | None = None,
    max_shift: int = 5000,
) -> SiteSet:
    """Lift `sites` (one old contig) onto `target_chrom`; drops records in ambiguous gaps.

    Where `tokens` (forward tokens of the target contig) are given and the set carries
    meta['flank'] (str [n], 5'→3' on the record's strand) and meta['flank_plus1'] (int [n]),
    records found uniquely by their flank take that position (sequence anchoring, which also
    rescues ambiguous-gap records); the rest fall back to the offset map.
    meta['liftover'] = {'lifted', 'dropped', 'dropped_ambiguous', 'dropped_outside', 'by_sequence',
    'sequence_disagrees', 'breakpoints'}.
    """
    new_pos, ok = offset_map.map(sites.pos)
    by_sequence = disagree = 0
    if tokens is not None and "flank" in sites.meta and "flank_plus1" in sites.meta:
        located = locate_flanks(tokens, sites.meta["flank"], sites.strand, np.asarray(sites.meta["flank_plus1"]), new_pos, max_shift)
        found = located >= 0
        disagree = int((found & ok & (located != new_pos)).sum())
        by_sequence = int(found.sum())
        new_pos = np.where(found, located, new_pos)
        ok = ok | found
    ambiguous = int((~ok).sum())
    inside = (new_pos >= 0) & ((new_pos < target_length) if target_length is not None else True)
    outside = int((ok & ~inside).sum())
    keep = np.flatnonzero(ok & inside)
    out = take_sites(sites, keep)
    out.pos = new_pos[keep]
    out.chrom = np.full(len(keep), target_chrom, dtype=object)
    out.meta["liftover"] = {
        "lifted": int(len(keep)),
        "dropped": int(len(sites) - len(keep)),
        "dropped_ambiguous": ambiguous,
        "dropped_outside": outside,
        "by_sequence": by_sequence,
        "sequence_disagrees": disagree,
        "breakpoints": offset_map.breakpoints,
        "target": target_chrom,
    }
    return out
