"""Figures of the attention heads: the heatmap of every head's attention by offset, the head-by-head
correlation and each head motif's bootstrap interval and match support (PNG, Agg canvas)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genometracks.interpret.head_motifs import HeadMotif
from genometracks.interpret.head_stability import HeadStability
from genometracks.interpret.heads import head_id
from genometracks.io.figures import new_figure, save_figure


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


def plot_head_stability(motifs: Sequence[HeadMotif], stability: Sequence[HeadStability], min_information: float, path) -> None:
    """PNG: each head's bits (dot) with the rounds' 5-95 % interval (bar), the informative cut-off
    (dashed) and, above the heads in the q-value family, the share of rounds that keep the match
    (dot colour: that share, grey outside the family)."""
    from matplotlib import colormaps

    n = len(motifs)
    fig = new_figure(max(5.0, 1.2 + 0.5 * n), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(n)
    bits = np.array([m.information for m in motifs])
    low = np.array([s.information_low for s in stability])
    high = np.array([s.information_high for s in stability])
    ax.vlines(x, low, high, color="0.45", linewidth=2.0, zorder=1)
    support = np.array([s.match_support for s in stability])
    colours = [colormaps["viridis"](v) if np.isfinite(v) else (0.7, 0.7, 0.7, 1.0) for v in support]
    ax.scatter(x, bits, c=colours, s=36, edgecolors="black", linewidths=0.5, zorder=2)
    for i in np.flatnonzero(np.isfinite(support)):
        top = np.nanmax([bits[i], high[i]])
        ax.annotate(f"{100 * support[i]:.0f} %", (x[i], top), xytext=(0, 4), textcoords="offset points", ha="center", fontsize=7)
    ax.axhline(min_information, color="0.3", linestyle="--", linewidth=0.8)
    ax.text(-0.55, min_information, f"informative: {min_information:g} bits", va="bottom", ha="left", fontsize=7, color="0.3")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{m.id}\n{m.offset_from_tss:+d}\n{m.motif.consensus()}" for m in motifs], fontsize=6)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, max(float(np.nanmax(np.r_[bits, high])) * 1.15, min_information * 1.3))
    ax.set_ylabel("motif information (bits)")
    rounds = max((s.rounds for s in stability), default=0)
    ax.set_title(f"head motifs over {rounds} bootstrap rounds: 5-95 % of the bits; % = rounds keeping the match", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100, tight=False)
