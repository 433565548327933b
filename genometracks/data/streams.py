"""Labels, splits and segment streams: how a genome becomes [B, L] batches for a recurrent model.

`Interval`s and splits use 0-based half-open forward coordinates; labels, stream positions, batches
(format: docs/CONTRACTS.md) and scatter outputs use strand-local ones (on '-', local i = forward n-1-i).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from genometracks.genome.intervals import Interval, SiteSet
from genometracks.genome.sequence import N_TOKEN, Genome

SPLIT_NAMES = ("train", "validation", "test")


class StreamError(ValueError):
    """Bad labels, splits or stream settings; the message names the record and the fix."""


def _minus(strand) -> np.ndarray:
    """Bool (array) that is True where `strand` is '-' (or 1); raises on anything but '+'/'-'/0/1."""
    s = np.asarray(strand)
    allowed = ("+", "-") if s.dtype.kind in "USO" else (0, 1)
    if not np.isin(s, allowed).all():
        raise StreamError(f"strand must be '+' or '-' (or index 0 / 1), got {s!r}")
    return s == allowed[1]


def to_forward(contig_len, strand, local_index):
    """Strand-local index (5'→3' on `strand`) → 0-based forward coordinate; vectorised, broadcasts."""
    idx = np.asarray(local_index, dtype=np.int64)
    out = np.where(_minus(strand), np.asarray(contig_len, dtype=np.int64) - 1 - idx, idx)
    return out if out.ndim else int(out)


def to_local(contig_len, strand, forward_index):
    """Forward coordinate → strand-local index (the same reflection as `to_forward`)."""
    return to_forward(contig_len, strand, forward_index)


def build_labels(genome: Genome, sites: SiteSet, shift: int = 20) -> dict[tuple[str, str], np.ndarray]:
    """uint8 [n] per (contig, strand), strand-local: labels[i] = 1 iff a TSS (+1) sits at local i - shift.

    On circular contigs i - shift wraps; on linear contigs a TSS within `shift` nt of the strand's
    3' end has no output position and is dropped, and outputs i < shift are 0.
    """
    if int(shift) != shift or shift < 0:
        raise StreamError(f"shift={shift!r} must be a non-negative integer (nt downstream of the TSS)")
    labels = {(c, s): np.zeros(contig.length, dtype=np.uint8) for c, contig in genome.contigs.items() for s in "+-"}
    where = sites.source or "TSS sites"
    chrom = sites.chrom.astype(str)
    known = np.isin(chrom, list(genome.contigs))
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise StreamError(
            f"{where}: record {i} is on contig {str(chrom[i])!r}, which is not in {genome.path} "
            f"(contigs: {list(genome.contigs)[:10]}); fix the chromosome names or lift the sites over"
        )
    names, inverse = np.unique(chrom, return_inverse=True)
    lengths = np.array([genome.contigs[c].length for c in names], dtype=np.int64)[inverse]
    off = (sites.pos < 0) | (sites.pos >= lengths)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise StreamError(
            f"{where}: record {i} ({chrom[i]}:{sites.pos[i]} {sites.strand[i]}) lies outside "
            f"the contig (length {lengths[i]}, 0-based positions); check the assembly version"
        )
    for k, name in enumerate(names):
        n, circular = genome.contigs[name].length, genome.contigs[name].circular
        for strand in "+-":
            sel = (inverse == k) & (sites.strand == strand)
            idx = to_local(n, strand, sites.pos[sel]) + shift
            idx = idx % n if circular else idx[idx < n]
            labels[(name, strand)][idx] = 1
    return labels


def stack_labels(sets: Sequence[dict[tuple[str, str], np.ndarray]]) -> dict[tuple[str, str], np.ndarray]:
    """Several `build_labels` outputs as one: uint8 [n, len(sets)] per (contig, strand), set 0 the
    primary one (batches give it as `labels` [B, L], the others as `aux_labels` [B, L, sets - 1])."""
    if not sets:
        raise StreamError("stack_labels needs at least one label set")
    keys = list(sets[0])
    for k, other in enumerate(sets[1:], start=1):
        if list(other) != keys or any(other[key].shape != sets[0][key].shape for key in keys):
            raise StreamError(f"label set {k} covers other contigs or lengths than set 0; build every set on the same genome")
    return {key: np.stack([np.asarray(labels[key]) for labels in sets], axis=1) for key in keys}


def spread_labels(
    labels: dict[tuple[str, str], np.ndarray], genome: Genome, width: int, decay: float = 0.5
) -> dict[tuple[str, str], np.ndarray]:
    """Soft training targets: float32 [n] (or [n, sets], each set on its own) per (contig, strand),
    strand-local like `labels`, where a base d <= `width` nt from a labelled base gets decay**d (the
    nearest label wins; labelled bases keep 1).

    TSS maps of the same promoters disagree by a base or two between experiments; spreading the target
    teaches the model to rank the neighbours of a mapped TSS high too. Wraps on circular contigs; on
    linear contigs nothing spreads past an end."""
    if int(width) != width or width < 0:
        raise StreamError(f"target spread {width!r} must be a non-negative integer (nt either side of a TSS)")
    if not 0.0 < float(decay) <= 1.0:
        raise StreamError(f"target spread decay {decay!r} must be in (0, 1] (the target d nt away is decay**d)")
    out = {}
    for (name, strand), lab in labels.items():
        hard = np.asarray(lab, dtype=np.float32)
        soft = hard.copy()
        circular = genome.contigs[name].circular
        for d in range(1, int(width) + 1):
            value = np.float32(decay**d)
            for moved in (shift_along(hard, d, circular), shift_along(hard, -d, circular)):
                np.maximum(soft, moved * value, out=soft)
        out[(name, strand)] = soft
    return out


def shift_along(x: np.ndarray, by: int, circular: bool) -> np.ndarray:
    """A copy of strand-local x [n] (or [n, ...], moved along its first axis) moved `by` places
    towards higher indices (by < 0: lower), wrapping on a circular contig, zero-filled where nothing
    moves in on a linear one."""
    if circular:
        return np.roll(x, by, axis=0)
    y = np.zeros_like(x)
    n, by = x.shape[0], int(by)
    if by >= 0:
        y[min(by, n) :] = x[: max(n - by, 0)]
    else:
        y[: max(n + by, 0)] = x[min(-by, n) :]
    return y


@dataclass
class Splits:
    """Split name → forward regions (strand '.': both strands of a region are in the same split)."""

    regions: dict[str, list[Interval]]

    def __getitem__(self, name: str) -> list[Interval]:
        if name not in self.regions:
            raise StreamError(f"unknown split {name!r}; available: {list(self.regions)}")
        return self.regions[name]

    def items(self):
        return self.regions.items()


def _parse_entry(genome: Genome, split: str, k: int, entry) -> Interval:
    """One `[contig, start, end]` split entry → Interval, validated."""
    where = f"split {split!r} entry {k} ({entry!r})"
    fix = "give [contig, start, end], 0-based half-open forward coordinates with 0 <= start < end <= length"
    if isinstance(entry, str) or not isinstance(entry, Sequence) or len(entry) != 3:
        raise StreamError(f"{where}: not a [contig, start, end] triple; {fix}")
    chrom, start, end = entry
    if chrom not in genome.contigs:
        raise StreamError(f"{where}: contig {chrom!r} is not in {genome.path} (contigs: {list(genome.contigs)[:10]}); {fix}")
    start_i, end_i = (int(x) if isinstance(x, (int, np.integer)) else None for x in (start, end))
    if start_i is None or end_i is None:
        raise StreamError(f"{where}: start/end are not integers; {fix}")
    n = genome.contigs[chrom].length
    if not 0 <= start_i < end_i <= n:
        raise StreamError(
            f"{where}: [{start_i}, {end_i}) is outside {chrom} (length {n}) or empty; "
            f"{fix} (split a region that wraps over the origin into two entries)"
        )
    return Interval(str(chrom), start_i, end_i, ".", split)


def _check_disjoint(genome: Genome, intervals: list[Interval]) -> None:
    ivs = _sorted(genome, intervals)
    for a, b in zip(ivs, ivs[1:]):
        if a.chrom == b.chrom and b.start < a.end:
            raise StreamError(
                f"split regions overlap: {a.name} {a.chrom}:{a.start}-{a.end} and "
                f"{b.name} {b.chrom}:{b.start}-{b.end}; every position must be in one split only"
            )


def _sorted(genome: Genome, intervals: list[Interval]) -> list[Interval]:
    order = {c: i for i, c in enumerate(genome.contigs)}
    return sorted(intervals, key=lambda iv: (order[iv.chrom], iv.start))


def make_splits(genome: Genome, split_cfg: Mapping | None = None) -> Splits:
    """Train/validation/test regions from `{"test": [[contig, start, end], ...], "validation": [...]}`.

    Training is everything not in test or validation (unless "train" is given explicitly); on a
    circular contig it is one run over the origin. Without any interval (None or empty), each
    contig is cut 70/20/10 along its forward coordinates: train first, then validation, then test.
    """
    split_cfg = dict(split_cfg or {})
    unknown = set(split_cfg) - set(SPLIT_NAMES)
    if unknown:
        raise StreamError(f"unknown split name(s) {sorted(unknown)} in the splits config; use {list(SPLIT_NAMES)}")
    given = {
        name: [_parse_entry(genome, name, k, e) for k, e in enumerate(split_cfg.get(name) or [])]
        for name in SPLIT_NAMES
        if name in split_cfg
    }
    if not any(given.values()):
        return _default_splits(genome)
    _check_disjoint(genome, [iv for ivs in given.values() for iv in ivs])
    if "train" not in given:
        given["train"] = _complement(genome, [iv for ivs in given.values() for iv in ivs])
    return Splits({name: _sorted(genome, given.get(name, [])) for name in SPLIT_NAMES})


def _complement(genome: Genome, taken: list[Interval]) -> list[Interval]:
    """Forward intervals of each contig not covered by `taken` (disjoint), as 'train' regions."""
    rest, ivs = [], _sorted(genome, taken)
    for name, contig in genome.contigs.items():
        edges = [0] + [x for iv in ivs if iv.chrom == name for x in (iv.start, iv.end)] + [contig.length]
        rest += [Interval(name, a, b, ".", "train") for a, b in zip(edges[::2], edges[1::2]) if b > a]
    return rest


def _default_splits(genome: Genome) -> Splits:
    """70/20/10 train/validation/test along each contig (forward coordinates, in that order)."""
    regions: dict[str, list[Interval]] = {name: [] for name in SPLIT_NAMES}
    for name, contig in genome.contigs.items():
        n = contig.length
        cuts = [0, n * 7 // 10, n * 9 // 10, n]
        for split, start, end in zip(SPLIT_NAMES, cuts[:-1], cuts[1:]):
            if end > start:
                regions[split].append(Interval(name, start, end, ".", split))
    return Splits(regions)


def positions_per_split(splits: Splits) -> dict[str, int]:
    """Scored positions per split, both strands counted (a stranded region counts once)."""
    return {name: sum(len(iv) * (2 if iv.strand == "." else 1) for iv in regions) for name, regions in splits.items()}


def labelled_outputs(genome: Genome, regions: list[Interval], shift: int) -> list[Interval]:
    """The output positions (forward coordinates, stranded) that label the TSSs of `regions` (forward
    TSS coordinates; both strands, or the interval's own): TSS t's output lies `shift` nt downstream on
    its strand (t + shift on '+', t - shift on '-', as `build_labels` places it), so a split scores
    exactly the TSSs inside it. Wrapped over a circular contig's origin; cut at a linear contig's ends,
    where a TSS within `shift` nt of its strand's 3' end has no output."""
    out = []
    for iv in regions:
        n, circular = genome.contigs[iv.chrom].length, genome.contigs[iv.chrom].circular
        for strand in "+-" if iv.strand == "." else iv.strand:
            lo = iv.start + (shift if strand == "+" else -shift)
            hi = lo + len(iv)
            if circular:
                start = lo % n
                spans = [(start, start + len(iv))] if start + len(iv) <= n else [(start, n), (0, start + len(iv) - n)]
            else:
                spans = [(max(lo, 0), min(hi, n))]
            out += [Interval(iv.chrom, a, b, strand, iv.name) for a, b in spans if b > a]
    return out


def _pieces(genome: Genome, regions: list[Interval]) -> list[tuple[int, int, int, int]]:
    """(contig index, strand index, local start, local end) runs in stream order, merged and validated.

    Order: contig order, '+' then '-', local start. Touching runs merge; on a circular contig a run
    ending at n and one starting at 0 merge into one run over the origin (end may exceed n).
    """
    names = list(genome.contigs)
    index = {name: i for i, name in enumerate(names)}  # a dict: drafts have thousands of contigs
    runs: dict[tuple[int, int], list[list[int]]] = {}
    for k, iv in enumerate(regions):
        if iv.chrom not in genome.contigs:
            raise StreamError(
                f"region {k} ({iv.chrom}:{iv.start}-{iv.end}): contig {iv.chrom!r} is not in {genome.path}; use one of {names[:10]}"
            )
        n = genome.contigs[iv.chrom].length
        if iv.end > n:
            raise StreamError(f"region {k} ({iv.chrom}:{iv.start}-{iv.end}) ends past the contig (length {n})")
        for s, strand in enumerate("+-"):
            if len(iv) and iv.strand in (".", strand):
                lo = iv.start if strand == "+" else n - iv.end
                runs.setdefault((index[iv.chrom], s), []).append([lo, lo + len(iv)])
    pieces = []
    for (c, s), spans in sorted(runs.items()):
        spans.sort()
        merged = [spans[0]]
        for lo, hi in spans[1:]:
            if lo < merged[-1][1]:
                raise StreamError(
                    f"regions overlap on {names[c]} strand {'+-'[s]} (strand-local "
                    f"[{lo}, {hi}) and {merged[-1]}); each position must be scored once"
                )
            if lo == merged[-1][1]:
                merged[-1][1] = hi
            else:
                merged.append([lo, hi])
        n = genome.contigs[names[c]].length
        if genome.contigs[names[c]].circular and len(merged) > 1 and merged[0][0] == 0 and merged[-1][1] == n:
            merged[-1][1] = n + merged.pop(0)[1]
        pieces += [(c, s, lo, hi) for lo, hi in merged]
    return pieces


def to_forward_tracks(out: dict[tuple[str, str], np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Strand-local arrays → {contig: {'+': arr, '-': arr}} in forward coordinates ('-' reversed);
    a strand missing from `out` comes back NaN-filled."""
    tracks: dict[str, dict[str, np.ndarray]] = {}
    for (name, strand), arr in out.items():
        tracks.setdefault(name, {})[strand] = np.ascontiguousarray(arr if strand == "+" else arr[::-1])
    for per in tracks.values():
        n = next(iter(per.values())).size
        for strand in "+-":
            per.setdefault(strand, np.full(n, np.nan, dtype=np.float32))
    return tracks


class SegmentStreams:
    """B parallel contiguous streams over a set of regions (both strands), yielding batch dicts.

    The split's strand-local runs are laid end to end and cut into `n_streams * world_size`
    near-equal parts; rank r takes parts [r*B, (r+1)*B). Each part becomes one chunk per run it
    touches: `burn_in` nt of upstream sequence (mask False; wraps on circular contigs, truncated at a
    linear contig's 5' end), then its scored positions, then continuing sequence up to a multiple of
    `seg_len`. A chunk's first segment has reset=True. Padding rows (streams that ran out) have
    reset=True, mask False, tokens N. With `seed` set, the cut points rotate by a seeded offset in
    [0, seg_len) per epoch (`set_epoch`); `len()` stays the same.
    """

    def __init__(
        self,
        genome: Genome,
        labels: dict[tuple[str, str], np.ndarray] | None,
        regions: list[Interval],
        n_streams: int,
        seg_len: int,
        lookahead: int = 0,
        burn_in: int = 0,
        rank: int = 0,
        world_size: int = 1,
        seed: int | None = None,
        epoch: int = 0,
    ) -> None:
        for key, value, low in (
            ("n_streams", n_streams, 1),
            ("seg_len", seg_len, 1),
            ("lookahead", lookahead, 0),
            ("burn_in", burn_in, 0),
            ("world_size", world_size, 1),
        ):
            if int(value) != value or value < low:
                raise StreamError(f"{key}={value!r} must be an integer >= {low}")
        if not 0 <= rank < world_size:
            raise StreamError(f"rank={rank} must be in [0, world_size={world_size})")
        self.contig_names = list(genome.contigs)
        self.contig_lengths = [c.length for c in genome.contigs.values()]
        self.B, self.L, self.H, self.burn_in = int(n_streams), int(seg_len), int(lookahead), int(burn_in)
        self.rank, self.world_size, self.seed = int(rank), int(world_size), seed
        pieces = _pieces(genome, list(regions))
        if not pieces:
            raise StreamError("no positions to stream: the region list is empty (is this split empty?)")
        self._flat_arrays(genome, labels or {}, sorted({(c, s) for c, s, _, _ in pieces}))
        table = np.array(pieces, dtype=np.int64)
        slot_of = {key: k for k, key in enumerate(self._slot_keys)}
        self._p_slot = np.array([slot_of[(c, s)] for c, s, _, _ in pieces], dtype=np.int64)
        self._p_lo, self._p_len = table[:, 2], table[:, 3] - table[:, 2]
        self._p_goff = np.concatenate([[0], np.cumsum(self._p_len)[:-1]])
        self.total = int(self._p_len.sum())  # scored positions over all ranks
        self._n_batches = self._schedule(0)
        self.offset = 0
        if seed is not None:  # room for rotated cuts: a part may gain one chunk, lose burn-in truncation
            self._n_batches += 2 * (-(-self.burn_in // self.L) + 2)
            self.set_epoch(epoch)

    def _flat_arrays(self, genome: Genome, labels: dict, keys: list[tuple[int, int]]) -> None:
        """Concatenate the used (contig, strand) tokens/labels into flat arrays (+ one N sentinel)."""
        toks, labs, offs = [], [], [0]
        for c, s in keys:
            name, strand = self.contig_names[c], "+-"[s]
            tok = genome.tokens(name, strand)
            lab = labels.get((name, strand))
            lab = np.zeros(tok.size, np.uint8) if lab is None else np.asarray(lab)
            if lab.ndim not in (1, 2) or lab.shape[0] != tok.size or (labs and lab.shape[1:] != labs[0].shape[1:]):
                raise StreamError(
                    f"labels[({name!r}, {strand!r})] has shape {lab.shape}, the contig has "
                    f"{tok.size} nt; rebuild the labels with build_labels on this genome "
                    "(or stack_labels for several sets: [n, sets] on every contig and strand)"
                )
            soft = np.issubdtype(lab.dtype, np.floating)  # spread_labels' soft targets stay float
            toks, labs, offs = toks + [tok], labs + [lab.astype(np.float32 if soft else np.uint8)], offs + [offs[-1] + tok.size]
        self._tok = np.concatenate(toks + [np.array([N_TOKEN], np.uint8)])
        self._lab = np.concatenate(labs + [np.zeros((1, *labs[0].shape[1:]) if labs else 1, labs[0].dtype if labs else np.uint8)])
        self._sentinel = offs[-1]
        self._slot_keys = keys
        self._slot_off = np.array(offs[:-1], dtype=np.int64)
        contigs = [genome.contigs[self.contig_names[c]] for c, _ in keys]
        self._slot_len = np.array([c.length for c in contigs], dtype=np.int64)
        self._slot_circ = np.array([c.circular for c in contigs])
        self._slot_contig, self._slot_strand = np.array(keys, dtype=np.int64).T

    def _chunks(self, offset: int) -> list[tuple[int, int, int, int, int]]:
        """(global stream, slot, first token, scored lo, scored hi) per chunk, local coordinates."""
        G, T = self.B * self.world_size, self.total
        cuts = np.arange(G + 1, dtype=np.int64) * T // G + offset
        starts = np.concatenate([self._p_goff, self._p_goff + T])
        ends = starts + np.concatenate([self._p_len, self._p_len])
        chunks = []
        for g in range(G):
            a, b = int(cuts[g]), int(cuts[g + 1])
            if a == b:
                continue
            for i in range(int(np.searchsorted(ends, a, "right")), int(np.searchsorted(starts, b, "left"))):
                p = i % len(self._p_len)
                lo = int(self._p_lo[p] + max(a, starts[i]) - starts[i])
                hi = int(self._p_lo[p] + min(b, ends[i]) - starts[i])
                first = lo - self.burn_in if self._slot_circ[self._p_slot[p]] else max(lo - self.burn_in, 0)
                chunks.append((g, int(self._p_slot[p]), first, lo, hi))
        return chunks

    def _schedule(self, offset: int, n_rows: int = 0) -> int:
        """Lay out this rank's rows for cut `offset` in arrays [max(n_rows, needed), B]; returns the
        rows needed by the longest stream over all ranks (so every rank yields as many batches)."""
        chunks, G = self._chunks(offset), self.B * self.world_size
        ks = [-(-(hi - first) // self.L) for _, _, first, _, hi in chunks]  # segments per chunk
        n_batches = int(np.bincount([c[0] for c in chunks], weights=ks, minlength=G).max())
        shape = (max(n_batches, n_rows), self.B)
        self._slot = np.full(shape, -1, np.int64)
        self._start, self._lo, self._hi = (np.zeros(shape, np.int64) for _ in range(3))
        self._reset = np.ones(shape, bool)
        filled = np.zeros(G, dtype=np.int64)
        for (g, slot, first, lo, hi), k in zip(chunks, ks):
            if self.rank * self.B <= g < (self.rank + 1) * self.B:
                t, b = slice(filled[g], filled[g] + k), g - self.rank * self.B
                self._slot[t, b], self._lo[t, b], self._hi[t, b] = slot, lo, hi
                self._start[t, b] = first + self.L * np.arange(k)
                self._reset[t, b] = np.arange(k) == 0
            filled[g] += k
        return n_batches

    def set_epoch(self, epoch: int) -> None:
        """Re-cut for `epoch` (only with `seed`): a seeded offset in [0, seg_len), same on every rank."""
        if self.seed is None:
            return
        offset = int(np.random.default_rng([int(self.seed), int(epoch)]).integers(0, min(self.L, self.total)))
        if self._schedule(offset, self._n_batches) > self._n_batches:  # slack too small: stay exact
            offset = 0
            self._schedule(0, self._n_batches)
        self.offset = offset

    def __len__(self) -> int:
        return self._n_batches

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return (self.batch(t) for t in range(len(self)))

    def batch(self, t: int) -> dict[str, torch.Tensor]:
        """Batch `t` of the epoch (see docs/CONTRACTS.md), built with array ops over [B, L+H]."""
        slot, start, lo, hi = self._slot[t], self._start[t], self._lo[t], self._hi[t]
        pad = slot < 0
        s = np.where(pad, 0, slot)
        n, circ = self._slot_len[s][:, None], self._slot_circ[s][:, None]
        pos = start[:, None] + np.arange(self.L + self.H)[None, :]
        valid = (circ | ((pos >= 0) & (pos < n))) & ~pad[:, None]
        flat = np.where(valid, self._slot_off[s][:, None] + np.where(circ, pos % n, pos), self._sentinel)
        scored = pos[:, : self.L]
        labels = self._lab[flat[:, : self.L]].astype(np.float32)  # [B, L] or [B, L, sets]
        out = {
            "tokens": torch.from_numpy(self._tok[flat].astype(np.int64)),
            "labels": torch.from_numpy(np.ascontiguousarray(labels[..., 0] if labels.ndim == 3 else labels)),
            "mask": torch.from_numpy((scored >= lo[:, None]) & (scored < hi[:, None])),
            "reset": torch.from_numpy(self._reset[t].copy()),
            "contig": torch.from_numpy(np.where(pad, 0, self._slot_contig[s])),
            "strand": torch.from_numpy(np.where(pad, 0, self._slot_strand[s])),
            "start": torch.from_numpy(start.copy()),
        }
        if labels.ndim == 3:  # auxiliary label sets (stack_labels): [B, L, sets - 1]
            out["aux_labels"] = torch.from_numpy(np.ascontiguousarray(labels[..., 1:]))
        return out

    def scatter(self, values, batch: dict, out: dict[tuple[str, str], np.ndarray]) -> dict:
        """Write `values` [B, L] at the batch's scored positions into out[(contig, strand)] (float32 [n],
        strand-local; created NaN-filled when missing). Returns `out`."""
        vals = _numpy(values)
        mask = _numpy(batch["mask"]).astype(bool)
        if vals.shape != mask.shape:
            raise StreamError(f"scatter: values have shape {vals.shape}, the batch mask {mask.shape}; pass [B, L]")
        rows, cols = np.nonzero(mask)
        pos = _numpy(batch["start"])[rows] + cols
        key = _numpy(batch["contig"])[rows] * 2 + _numpy(batch["strand"])[rows]
        for k in np.unique(key):
            sel = key == k
            name, strand = self.contig_names[k // 2], "+-"[k % 2]
            n = self.contig_lengths[k // 2]
            arr = out.setdefault((name, strand), np.full(n, np.nan, dtype=np.float32))
            if arr.shape != (n,):
                raise StreamError(f"scatter: out[({name!r}, {strand!r})] has shape {arr.shape}; expected ({n},)")
            arr[pos[sel] % n] = vals[rows[sel], cols[sel]]
        return out

    to_forward_tracks = staticmethod(to_forward_tracks)


def _numpy(x) -> np.ndarray:
    """Tensor (any device; bfloat16/half become float32) or array-like → numpy array."""
    if isinstance(x, torch.Tensor):
        return (x.detach().cpu().float() if x.dtype in (torch.bfloat16, torch.float16) else x.detach().cpu()).numpy()
    return np.asarray(x)
