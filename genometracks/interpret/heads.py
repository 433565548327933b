"""Attention-head profiles on the test split (TSS paper) and one motif per head.

Offsets. The output at strand-local index i answers "TSS at i - shift"; its attention to the key
o positions upstream (key at i - o, o = 0..W-1) therefore looks at the base
offset_from_tss = shift - o nt from the TSS: 0 is the +1 nucleotide, -10 the base 10 nt upstream
(promoter position -10), positive values lie downstream.

Sampling. About `fraction` of the scored positions at random plus the `n_extreme` highest and
lowest by model output (a position may be in several groups: `group` holds bit flags). The
attention of those queries only is kept: float16 [n, n_layer, n_head, W] (2 bytes per value).

A head's motif: at the offset o* of its highest mean attention, the `top_n` samples with the
highest attention there among the top-output samples (see `head_motifs` for the other rankings)
give their conv-width k-mers centred on the key (key j reads j-c..j+c, c = conv_width // 2) on
the query's strand → position frequency matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genometracks.data.streams import SegmentStreams
from genometracks.genome.intervals import Interval
from genometracks.genome.sequence import N_TOKEN, Genome
from genometracks.interpret.matching import Match, TomtomTable, best_matches, match_label
from genometracks.interpret.motifs import Motif, pfm_from_kmers
from genometracks.io.figures import new_figure, save_figure
from genometracks.io.malloc import HeapCap

SAMPLE_RANDOM, SAMPLE_TOP, SAMPLE_BOTTOM = 1, 2, 4
RANKINGS = ("top_attention", "attention", "output")
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


# ----------------------------------------------------------------------------- head motifs


def window_tokens(genome: Genome, keys: list[Key], slot: np.ndarray, first: np.ndarray, width: int) -> np.ndarray:
    """uint8 [n, width]: tokens of strand-local [first, first + width) on keys[slot] (5'→3' on that
    strand); wraps on circular contigs, N outside a linear contig."""
    out = np.full((len(slot), width), N_TOKEN, dtype=np.uint8)
    for s in np.unique(slot):
        contig, strand = keys[int(s)]
        tokens = genome.tokens(contig, strand)
        rows = np.flatnonzero(slot == s)
        pos = np.asarray(first)[rows, None] + np.arange(width)[None, :]
        if genome.contigs[contig].circular:
            out[rows] = tokens[pos % tokens.size]
        else:
            inside = (pos >= 0) & (pos < tokens.size)
            out[rows] = np.where(inside, tokens[np.clip(pos, 0, tokens.size - 1)], N_TOKEN)
    return out


@dataclass
class HeadMotif:
    """A head's motif at its offset of highest mean attention (offset: upstream, 0..W-1)."""

    layer: int
    head: int
    offset: int
    offset_from_tss: int
    mean_attention: float
    motif: Motif
    information: float
    match: Match | None

    @property
    def id(self) -> str:
        return head_id(self.layer, self.head)


@dataclass(frozen=True)
class MotifRanking:
    """The samples a head's motif is chosen from (`pool`, sample indices ascending) and what ranks them
    (`rank_by`, see `head_motifs`); `precise` [len(pool), n_layer, n_head, W]: the pool's float32
    attention when it is the SAMPLE_TOP set (`HeadSamples.top_attention`), else None."""

    pool: np.ndarray
    rank_by: str
    precise: np.ndarray | None

    @classmethod
    def of(cls, samples: HeadSamples, rank_by: str, top_n: int) -> MotifRanking:
        if rank_by not in RANKINGS:
            raise InterpretError(f"interpret.motif_rank={rank_by!r}; use one of {RANKINGS}")
        pool = np.flatnonzero(samples.group & SAMPLE_TOP) if rank_by == "top_attention" else np.arange(0)
        if pool.size < top_n:  # too few top-output samples (or another ranking): every sample
            return cls(np.arange(len(samples.output)), rank_by, None)
        return cls(pool, rank_by, samples.top_attention)

    def scores(self, samples: HeadSamples, layer: int, head: int, offset: int) -> np.ndarray:
        """float64 [len(pool)]: the pool's scores for the head at `offset` (higher ranks first)."""
        if self.rank_by == "output":
            return samples.output[self.pool].astype(np.float64)
        if self.precise is not None:
            return self.precise[:, layer, head, offset].astype(np.float64)
        return samples.attention[self.pool, layer, head, offset].astype(np.float64)


def head_kmers(samples: HeadSamples, genome: Genome, rows: np.ndarray, offset: int, conv_width: int) -> np.ndarray:
    """uint8 [len(rows), conv_width]: the k-mer each sample's key at upstream `offset` reads (centred
    on the key, on the query's strand)."""
    first = samples.local[rows] - offset - conv_width // 2
    return window_tokens(genome, samples.keys, samples.slot[rows], first, conv_width)


def head_motifs(
    samples: HeadSamples,
    genome: Genome,
    conv_width: int,
    top_n: int = 50,
    refs: list[Motif] | None = None,
    rank_by: str = "top_attention",
    min_information: float = 0.0,
) -> tuple[list[HeadMotif], TomtomTable]:
    """(One HeadMotif per head, layer-major order; the Tomtom table of all heads x `refs`). Each head's
    `match` is its reference of smallest Tomtom p-value (None without refs); q-values are
    Benjamini-Hochberg over the informative heads (>= min_information bits) x references, NaN for the
    others (genometracks.interpret.matching: a flat head's p-values are not valid). The top_n samples
    are those with the highest attention at the head's offset among the SAMPLE_TOP samples
    (rank_by='top_attention': what the head reads where the model calls a TSS, ranked in float32 by
    `samples.top_attention` where present; all samples when fewer than top_n are flagged), among all
    samples ('attention', float16), or those with the highest model output ('output', the same samples
    for every head). Ties go to the first sample in genome order (a stable sort)."""
    ranking = MotifRanking.of(samples, rank_by, top_n)
    n_layer, n_head, _ = samples.shape
    mean = mean_rows(samples.attention)  # [Ly, H, W]
    out = []
    for layer in range(n_layer):
        for head in range(n_head):
            o = int(np.argmax(mean[layer, head]))
            top = ranking.pool[np.argsort(-ranking.scores(samples, layer, head, o), kind="stable")[:top_n]]
            kmers = head_kmers(samples, genome, top, o, conv_width)
            rel = samples.shift - o
            motif = pfm_from_kmers(kmers, name=head_id(layer, head), source="attention head")
            motif.alt_name = f"tss{rel:+d}"
            motif.meta.update(layer=layer, head=head, offset=o, offset_from_tss=rel)
            out.append(HeadMotif(layer, head, o, rel, float(mean[layer, head, o]), motif, motif.information_content()[1], None))
    found, table = best_matches([m.motif for m in out], refs or [], [m.information >= min_information for m in out])
    for m, best in zip(out, found):
        m.match = best
    return out, table


def head_table(motifs: list[HeadMotif], min_information: float, match_qvalue: float = 0.05, stability: list | None = None):
    """heads.tsv rows: layer, head, head_id, offset, offset_from_tss, mean_attention, consensus,
    information (bits), informative (>= min_information), best_match (the nearest reference of an
    informative head whose Tomtom q-value <= match_qvalue, else '.'), nearest_motif (smallest Tomtom
    p-value), match_p_value, match_e_value, match_q_value (Benjamini-Hochberg over the informative
    heads x references; NaN for the others), match_offset, match_overlap, match_orientation; then,
    from `stability` (one `head_stability.HeadStability` per motif; NaN without it): information_low,
    information_high, match_support, match_p_95."""
    import pandas as pd

    rows = []
    for i, m in enumerate(motifs):
        steady = stability[i] if stability is not None else None
        nearest = match_label(m.match) or "."
        significant = m.match is not None and m.match.q_value <= match_qvalue and m.information >= min_information
        found = m.match
        rows.append(
            {
                "layer": m.layer,
                "head": m.head,
                "head_id": m.id,
                "offset": m.offset,
                "offset_from_tss": m.offset_from_tss,
                "mean_attention": m.mean_attention,
                "consensus": m.motif.consensus(),
                "information": m.information,
                "informative": m.information >= min_information,
                "best_match": nearest if significant else ".",
                "nearest_motif": nearest,
                "match_p_value": found.p_value if found else np.nan,
                "match_e_value": found.e_value if found else np.nan,
                "match_q_value": found.q_value if found else np.nan,
                "match_offset": found.offset if found else np.nan,
                "match_overlap": found.overlap if found else np.nan,
                "match_orientation": found.orientation if found else ".",
                "information_low": steady.information_low if steady else np.nan,
                "information_high": steady.information_high if steady else np.nan,
                "match_support": steady.match_support if steady else np.nan,
                "match_p_95": steady.match_p_95 if steady else np.nan,
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- plots


def plot_heatmap(profiles, path) -> None:
    """PNG: one panel per layer, rows = heads, columns = offset_from_tss (upstream left), colour =
    mean attention divided by that head's maximum."""
    n_layer, n_head = int(profiles["layer"].max()) + 1, int(profiles["head"].max()) + 1
    w = int(profiles["offset"].max()) + 1
    mean = profiles.sort_values(["layer", "head", "offset"])["mean"].to_numpy().reshape(n_layer, n_head, w)
    peak = np.nanmax(mean, axis=2, keepdims=True)
    norm = np.divide(mean, peak, out=np.zeros_like(mean), where=peak > 0)[:, :, ::-1]  # upstream left
    rel = profiles.sort_values("offset")["offset_from_tss"].unique()[::-1]
    fig = new_figure(min(4 + 0.03 * w, 24), 1.0 + 0.35 * n_layer * n_head + 0.6 * n_layer, layout="constrained")
    axes = fig.subplots(n_layer, 1, squeeze=False)[:, 0]
    for layer, ax in enumerate(axes):
        image = ax.imshow(
            norm[layer],
            aspect="auto",
            cmap="viridis",
            vmin=0,
            vmax=1,
            interpolation="nearest",
            extent=(rel[0] - 0.5, rel[-1] + 0.5, n_head - 0.5, -0.5),
        )
        ax.set_yticks(range(n_head))
        ax.set_yticklabels([head_id(layer, h) for h in range(n_head)], fontsize=7)
        ax.set_title(f"layer {layer}: mean attention / head maximum", fontsize=9)
        ax.axvline(0, color="white", linewidth=0.6, linestyle=":")
    axes[-1].set_xlabel("key position relative to the TSS (nt; 0 = +1)")
    fig.colorbar(image, ax=list(axes), fraction=0.02, label="mean / head maximum")
    save_figure(fig, path, dpi=100, tight=False)


def plot_correlation(corr: np.ndarray, labels: list[str], path) -> None:
    """PNG: head-by-head Pearson correlation matrix, diverging colours in [-1, 1]."""
    k = len(labels)
    fig = new_figure(2.5 + 0.3 * k, 2.0 + 0.3 * k)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(np.nan_to_num(corr), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_title("head-by-head attention correlation (Pearson)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path, dpi=100, tight=False)
