"""Attention heads on the test split (TSS paper): sampled queries, their attention, and the statistics
of each head (profiles by offset, correlation with the output, head-by-head correlation). The motifs
read from these samples are `head_motifs`', their figures `head_plots`'.

Offsets. The output at strand-local index i answers "TSS at i - shift"; its attention to the key
o positions upstream (key at i - o, o = 0..W-1) therefore looks at the base
offset_from_tss = shift - o nt from the TSS: 0 is the +1 nucleotide, -10 the base 10 nt upstream
(promoter position -10), positive values lie downstream.

Sampling. About `fraction` of the scored positions at random plus the `n_extreme` highest and
lowest by model output (a position may be in several groups: `group` holds bit flags). The
attention of those queries only is kept: float16 [n, n_layer, n_head, W] (2 bytes per value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genometracks.data.streams import SegmentStreams
from genometracks.genome.intervals import Interval
from genometracks.genome.sequence import Genome
from genometracks.io.malloc import HeapCap

SAMPLE_RANDOM, SAMPLE_TOP, SAMPLE_BOTTOM = 1, 2, 4
Key = tuple[str, str]  # (contig, strand)


class InterpretError(ValueError):
    """Bad interpretation input; the message names the input and the fix."""


def offset_from_tss(window: int, shift: int) -> np.ndarray:
    """int64 [W]: position relative to the TSS (0 = +1, negative = upstream) of upstream offset o = 0..W-1."""
    return int(shift) - np.arange(int(window), dtype=np.int64)


def head_id(layer: int, head: int) -> str:
    """'L{layer}H{head}', both 0-based (model.blocks[layer], head index within the block)."""
    return f"L{layer}H{head}"


@dataclass
class HeadSamples:
    """Sampled queries: attention float16 [n, n_layer, n_head, W] by upstream offset, output (logit)
    float64 [n], slot int64 [n] (index into keys), local int64 [n] (strand-local output index),
    group uint8 [n] (SAMPLE_* bit flags); top_attention: the SAMPLE_TOP samples' attention in float32
    [n_top, n_layer, n_head, W] (rows in sample order), which `head_motifs` ranks by: float16 keeps 11
    bits, and a sharp head's top samples then tie in dozens at its offset, so which 50 of them made the
    motif was an accident of order (the paper model's matches moved across q = 0.05 with it)."""

    attention: np.ndarray
    output: np.ndarray
    slot: np.ndarray
    local: np.ndarray
    group: np.ndarray
    keys: list[Key]
    shift: int
    top_attention: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_layer, n_head, W)."""
        return tuple(self.attention.shape[1:])  # type: ignore[return-value]


def _streams(model, genome: Genome, regions: list[Interval], seg_len: int, n_streams: int):
    return SegmentStreams(genome, None, regions, n_streams=n_streams, seg_len=seg_len, lookahead=model.lookahead, burn_in=model.context)


def stream_outputs(
    model, genome: Genome, regions: list[Interval], seg_len: int, n_streams: int = 16, progress: bool = True
) -> dict[Key, np.ndarray]:
    """Model logits float32 [n] per (contig, strand), strand-local output index, NaN outside `regions`."""
    from tqdm.auto import tqdm

    streams = _streams(model, genome, regions, seg_len, n_streams)
    out: dict[Key, np.ndarray] = {}
    memory = None
    cap = HeapCap()
    with torch.inference_mode():
        for batch in tqdm(streams, total=len(streams), desc="heads: outputs", disable=not progress, mininterval=2.0):
            logits, memory = model(batch["tokens"], memory, batch["reset"], path="fast")
            streams.scatter(logits.float(), batch, out)
            cap()
    return out


def choose_samples(outputs: dict[Key, np.ndarray], fraction: float, n_extreme: int, seed: int = 0) -> dict[Key, np.ndarray]:
    """uint8 flags [n] per key: SAMPLE_RANDOM for round(fraction * N) random finite positions,
    SAMPLE_TOP / SAMPLE_BOTTOM for the n_extreme highest / lowest outputs (ties: first in key order)."""
    if not 0 <= fraction <= 1 or n_extreme < 0:
        raise InterpretError(f"interpret.sample_fraction={fraction} must be in [0, 1] and interpret.n_extreme={n_extreme} >= 0")
    keys = sorted(outputs)
    where = [np.flatnonzero(np.isfinite(outputs[k])) for k in keys]
    values = np.concatenate([outputs[k][w] for k, w in zip(keys, where)]) if keys else np.zeros(0)
    if values.size == 0:
        raise InterpretError("no scored positions to sample attention from (is the test split empty?)")
    flags = np.zeros(values.size, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    flags[rng.choice(values.size, size=int(round(fraction * values.size)), replace=False)] |= SAMPLE_RANDOM
    order = np.argsort(values, kind="stable")
    k = min(int(n_extreme), values.size)
    if k:
        flags[order[-k:]] |= SAMPLE_TOP
        flags[order[:k]] |= SAMPLE_BOTTOM
    out, start = {}, 0
    for key, w in zip(keys, where):
        arr = np.zeros(outputs[key].size, dtype=np.uint8)
        arr[w] = flags[start : start + w.size]
        out[key], start = arr, start + w.size
    return out


def collect_attention(
    model,
    genome: Genome,
    regions: list[Interval],
    flags: dict[Key, np.ndarray],
    shift: int,
    seg_len: int,
    n_streams: int = 16,
    progress: bool = True,
) -> HeadSamples:
    """Stream `regions` with memory carried (burn-in = model.context) and keep the attention of the
    flagged queries (float16; the SAMPLE_TOP ones in float32 too, `HeadSamples.top_attention`), in
    genome order (key, position), so that nothing downstream depends on `n_streams`. The fast path
    computes the probabilities of those queries alone (`relative.query_probabilities`; the textbook
    path's full [Lq, M + Lq] blocks, used until session 24, gave the same values, and the `heads` part
    of E. coli's main job took 73-89 s with them, 49-58 s without, 32 s at 16 streams). Tensors change
    size with the number of flagged queries per batch: a `HeapCap` keeps the heap they fragment from
    growing."""
    from tqdm.auto import tqdm

    streams = _streams(model, genome, regions, seg_len, n_streams)
    keys = sorted(flags)
    names = list(genome.contigs)
    lookup = np.full((len(names), 2), -1, dtype=np.int64)
    offsets = np.cumsum([0] + [flags[k].size for k in keys])
    for i, (contig, strand) in enumerate(keys):
        lookup[names.index(contig), "+-".index(strand)] = i
    flat = np.concatenate([flags[k] for k in keys] + [np.zeros(1, np.uint8)])
    lengths = np.array([genome.contigs[c].length for c in names], dtype=np.int64)
    parts: dict[str, list] = {k: [] for k in ("attention", "output", "slot", "local", "group", "top_attention")}
    memory = None
    cap = HeapCap()
    with torch.inference_mode():
        for batch in tqdm(streams, total=len(streams), desc="heads: attention", disable=not progress, mininterval=2.0):
            cap()
            slot = lookup[batch["contig"].numpy(), batch["strand"].numpy()]
            mask = batch["mask"].numpy() & (slot >= 0)[:, None]
            local = batch["start"].numpy()[:, None] + np.arange(mask.shape[1])[None, :]
            n = lengths[batch["contig"].numpy()][:, None]
            index = np.where(mask, offsets[np.maximum(slot, 0)][:, None] + local % n, flat.size - 1)
            group = np.where(mask, flat[index], 0)
            queries = np.flatnonzero(group.any(axis=0))
            if queries.size == 0:
                _, memory = model(batch["tokens"], memory, batch["reset"], path="fast")
                continue
            logits, memory, attn = model(batch["tokens"], memory, batch["reset"], path="fast", attention_queries=torch.from_numpy(queries))
            rows, qi = np.nonzero(group[:, queries])
            r, q = torch.from_numpy(rows), torch.from_numpy(qi)
            chosen = attn[:, r, :, q, :]  # [n_sel, Ly, H, W]
            parts["attention"].append(chosen.to(torch.float16).numpy())
            top = torch.from_numpy((group[rows, queries[qi]] & SAMPLE_TOP) > 0)
            parts["top_attention"].append(chosen[top].float().numpy())
            parts["output"].append(logits[r, torch.from_numpy(queries[qi])].double().numpy())
            parts["slot"].append(slot[rows])
            parts["local"].append(local[rows, queries[qi]] % n[rows, 0])
            parts["group"].append(group[rows, queries[qi]])
    if not parts["output"]:
        raise InterpretError("no sampled query was met while streaming the regions; raise interpret.sample_fraction")
    precise = np.concatenate(parts.pop("top_attention"))
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    # genome order (key, then position), not streaming order: rankings that break ties by sample
    # index (a head's top-attention samples) then do not depend on how many streams ran
    is_top = (joined["group"] & SAMPLE_TOP) > 0
    top_order = np.lexsort((joined["local"][is_top], joined["slot"][is_top]))
    order = np.lexsort((joined["local"], joined["slot"]))
    joined = {k: v[order] for k, v in joined.items()}
    return HeadSamples(
        joined["attention"],
        joined["output"],
        joined["slot"].astype(np.int64),
        joined["local"].astype(np.int64),
        joined["group"].astype(np.uint8),
        keys,
        int(shift),
        precise[top_order],
    )


# ----------------------------------------------------------------------------- statistics


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=0, method="average")


def mean_rows(x: np.ndarray, rows: np.ndarray | None = None, chunk: int = 1024) -> np.ndarray:
    """float64 mean over axis 0 of x [n, ...] (the `rows` selected, bool [n]), accumulated in chunks
    of samples so that a float16 array is never copied whole to float64; NaN when no row."""
    index = np.arange(len(x)) if rows is None else np.flatnonzero(rows)
    total = np.zeros(x.shape[1:])
    for lo in range(0, index.size, chunk):
        total += x[index[lo : lo + chunk]].astype(np.float64).sum(axis=0)
    return total / index.size if index.size else np.full(x.shape[1:], np.nan)


def spearman_columns(x: np.ndarray, y: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Spearman rho float64 [m] of each column of x [n, m] with y [n] (average ranks for ties);
    NaN where a column or y is constant."""
    x = np.asarray(x)
    ry = _ranks(np.asarray(y, dtype=np.float64))
    ry = ry - ry.mean()
    ny = np.sqrt((ry**2).sum())
    out = np.full(x.shape[1], np.nan)
    for lo in range(0, x.shape[1], chunk):
        rx = _ranks(x[:, lo : lo + chunk].astype(np.float64))
        rx -= rx.mean(axis=0)
        norm = np.sqrt((rx**2).sum(axis=0)) * ny
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo : lo + chunk] = np.where(norm > 0, (rx * ry[:, None]).sum(axis=0) / norm, np.nan)
    return out


def head_correlation(attention: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Pearson r float64 [K, K] between heads of attention [n, K, W], over all (sample, offset)
    entries; NaN for a constant head."""
    n, k, w = attention.shape
    total, gram = np.zeros(k), np.zeros((k, k))
    for lo in range(0, n, chunk):
        block = attention[lo : lo + chunk].astype(np.float64).transpose(1, 0, 2).reshape(k, -1)
        total += block.sum(axis=1)
        gram += block @ block.T
    m = n * w
    cov = gram / m - np.outer(total, total) / m**2
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.outer(sd, sd) > 0, cov / np.outer(sd, sd), np.nan)


def attention_profiles(samples: HeadSamples):
    """Long table, one row per (layer, head, offset): offset (upstream, 0..W-1), offset_from_tss,
    mean and max attention, spearman (attention vs output over all samples), top_minus_bottom
    (mean over SAMPLE_TOP minus mean over SAMPLE_BOTTOM samples; NaN if either is empty)."""
    import pandas as pd

    n_layer, n_head, w = samples.shape
    att = samples.attention.reshape(len(samples.output), -1)
    top, bottom = (samples.group & SAMPLE_TOP) > 0, (samples.group & SAMPLE_BOTTOM) > 0
    diff = mean_rows(att, top) - mean_rows(att, bottom)
    layer, head, offset = np.meshgrid(np.arange(n_layer), np.arange(n_head), np.arange(w), indexing="ij")
    return pd.DataFrame(
        {
            "layer": layer.ravel(),
            "head": head.ravel(),
            "offset": offset.ravel(),
            "offset_from_tss": samples.shift - offset.ravel(),
            "mean": mean_rows(att),
            "max": att.max(axis=0).astype(np.float64),
            "spearman": spearman_columns(att, samples.output),
            "top_minus_bottom": diff,
        }
    )
