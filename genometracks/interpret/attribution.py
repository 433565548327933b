"""Gradient x input attributions of predicted TSSs (DeepLIFT/SHAP: deeplift.py, same windows).

A target is a TSS (+1 at forward position p on strand s). Its output sits at strand-local index
i = local(p) + shift; that output depends on tokens [i - context, i + lookahead] only (and on
where the stream was reset), so one window of exactly those tokens, nothing upstream of it, gives
the streamed output exactly. Window column j is strand-local position i - context + j, i.e.
j - context + shift nt from the TSS (0 = +1). Windows that would leave a linear contig are skipped.

gradient x input[j] = d logit / d x[j, a] at the base a present (one-hot x, 5 letters with N).

Grad-CAM was dropped (see the README, Interpretation): its channel weights average the gradient
over window columns, so the map is a fixed channel mix of the last block's input, ReLU-clipped;
on the E. coli run it was non-zero at 4,586 of the 76,592 bases the attribution windows cover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genometracks.data.streams import to_local
from genometracks.genome.intervals import Interval, SiteSet
from genometracks.genome.sequence import Genome
from genometracks.inference.peaks import call_peaks
from genometracks.interpret.head_motifs import window_tokens
from genometracks.interpret.optimize import frozen, onehot_logits


class AttributionError(ValueError):
    """Bad attribution input; the message names the input and the fix."""


def top_predicted_tss(
    track_values: dict[str, dict[str, np.ndarray]],
    n_top: int,
    min_distance: int = 10,
    regions: list[Interval] | None = None,
    circular: frozenset[str] = frozenset(),
) -> SiteSet:
    """The n_top highest local maxima (at least min_distance nt apart per strand; the contigs named in
    `circular` taken as circles) of forward-strand probability tracks {contig: {'+': [n], '-': [n]}},
    inside `regions` when given; score = probability."""
    chrom, pos, strand, score = [], [], [], []
    for contig, per in track_values.items():
        allowed = None
        if regions:
            allowed = np.zeros(per["+"].size, dtype=bool)
            for r in regions:
                if r.chrom == contig:
                    allowed[r.start : r.end] = True
        for s in "+-":
            values = np.nan_to_num(per[s].astype(np.float64), nan=-np.inf)
            peaks = call_peaks(values, -np.inf, min_distance, contig in circular, s)
            if allowed is not None:
                peaks = peaks[allowed[peaks]]
            chrom += [contig] * peaks.size
            pos.append(peaks)
            strand += [s] * peaks.size
            score.append(values[peaks])
    if not chrom:
        raise AttributionError(
            "no predicted TSS to attribute: the tracks (or the chosen regions) are empty; check interpret.attribution_regions"
        )
    pos, score = np.concatenate(pos), np.concatenate(score)
    order = np.lexsort((pos, -score))[:n_top]
    names = [f"{chrom[i]}:{pos[i] + 1}{strand[i]}" for i in order]
    return SiteSet(
        np.array(chrom, dtype=object)[order],
        pos[order],
        np.array(strand)[order],
        score[order],
        np.array(names, dtype=object),
        source="top predicted TSSs",
    )


@dataclass
class Attributions:
    """Per target (rows) and window column: contribution float32 [n, S] (gradient x input, or
    DeepLIFT/SHAP's on the observed base), tokens uint8 [n, S]; sites: the targets kept (SiteSet, n rows);
    first_local int64 [n]: strand-local index of window column 0; context: window column of the output."""

    sites: SiteSet
    contribution: np.ndarray
    tokens: np.ndarray
    first_local: np.ndarray
    context: int
    shift: int
    skipped: int

    def relative_positions(self) -> np.ndarray:
        """int64 [S]: window columns relative to the TSS (0 = +1)."""
        return np.arange(self.contribution.shape[1]) - self.context + self.shift

    def subset(self, rows: np.ndarray) -> Attributions:
        """The targets `rows` (bool mask or int indices), in that order."""
        return Attributions(
            self.sites.subset(rows),
            self.contribution[rows],
            self.tokens[rows],
            self.first_local[rows],
            self.context,
            self.shift,
            self.skipped,
        )


def target_windows(model, genome: Genome, sites: SiteSet, shift: int) -> tuple[SiteSet, np.ndarray, np.ndarray, int]:
    """(targets kept, tokens uint8 [n, S], first_local int64 [n], skipped): the window of each target
    (see the module docstring); windows leaving a linear contig are skipped."""
    context, width = model.context, model.context + 1 + model.lookahead
    keys = [(str(c), str(s)) for c, s in zip(sites.chrom, sites.strand)]
    slots = sorted(set(keys))
    slot = np.array([slots.index(k) for k in keys], dtype=np.int64)
    lengths = np.array([genome.contigs[c].length for c, _ in keys], dtype=np.int64)
    circular = np.array([genome.contigs[c].circular for c, _ in keys], dtype=bool)
    first = to_local(lengths, sites.strand, sites.pos) + shift - context if len(sites) else np.zeros(0, np.int64)
    keep = circular | ((first >= 0) & (first + width <= lengths))
    sites, slot, first = sites.subset(keep), slot[keep], np.asarray(first)[keep]
    tokens = window_tokens(genome, slots, slot, first, width)
    return sites, tokens, first.astype(np.int64), int((~keep).sum())


def attribute(model, genome: Genome, sites: SiteSet, shift: int, batch_size: int = 16, progress: bool = True) -> Attributions:
    """Gradient x input of each target's logit (see the module docstring)."""
    from tqdm.auto import tqdm

    context = model.context
    sites, tokens, first, skipped = target_windows(model, genome, sites, shift)
    contribution = np.zeros(tokens.shape, dtype=np.float32)
    with frozen(model), torch.enable_grad():
        for lo in tqdm(range(0, len(tokens), batch_size), desc="attribution", disable=not progress, mininterval=2.0):
            x = torch.nn.functional.one_hot(torch.from_numpy(tokens[lo : lo + batch_size].astype(np.int64)), 5)
            x = x.to(model.embed.weight.dtype).requires_grad_(True)
            logit = onehot_logits(model, x)[:, context]
            (grad_x,) = torch.autograd.grad(logit.sum(), [x])
            contribution[lo : lo + len(x)] = (grad_x * x).sum(-1).detach().float().numpy()
    return Attributions(sites, contribution, tokens, first, context, int(shift), skipped)


def genome_track(genome: Genome, attributions: Attributions, values: np.ndarray) -> dict[str, np.ndarray]:
    """Forward-strand per-base float32 track {contig: [n]} (0-based): the sum over targets of `values`
    [n_t, S] (contributions) at the bases their window columns read; 0 elsewhere."""
    out = {name: np.zeros(c.length, dtype=np.float64) for name, c in genome.contigs.items()}
    s = attributions.sites
    cols = np.arange(values.shape[1])
    for contig in np.unique(s.chrom.astype(str)):
        n = genome.contigs[contig].length
        for strand in "+-":
            rows = np.flatnonzero((s.chrom.astype(str) == contig) & (s.strand == strand))
            if rows.size == 0:
                continue
            local = attributions.first_local[rows, None] + cols[None, :]
            inside = (local >= 0) & (local < n) if not genome.contigs[contig].circular else np.ones(local.shape, bool)
            forward = local % n if strand == "+" else n - 1 - local % n
            np.add.at(out[contig], forward[inside], values[rows][inside].astype(np.float64))
    return {k: v.astype(np.float32) for k, v in out.items()}


def aggregate_matrix(attributions: Attributions, lo: int = -60, hi: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(matrix float64 [K, 4], relative positions int64 [K]) for TSS-relative positions lo..hi: the mean
    over targets of gradient x input put on the letter present (N columns add nothing)."""
    rel = attributions.relative_positions()
    cols = np.flatnonzero((rel >= lo) & (rel <= hi))
    if cols.size == 0 or len(attributions.tokens) == 0:
        raise AttributionError(
            f"aggregate logo: no window column in [{lo}, {hi}] or no targets; widen interpret.attribution_logo or predict some TSSs first"
        )
    tokens = attributions.tokens[:, cols]
    onehot = np.eye(5)[tokens][..., :4]  # [n, K, 4]
    matrix = (onehot * attributions.contribution[:, cols, None]).mean(axis=0)
    return matrix, rel[cols]
