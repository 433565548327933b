"""Grad-CAM class logos of the sigma CNN.

Per sequence n: A = last convolution's activation [C, L] (after ReLU), y = the class's logit,
alpha_c = mean_l dy/dA[c, l], g[l] = ReLU(sum_c alpha_c A[c, l]) [L]. A 1-D convolution over the
one-hot rows has one map value per position, so projected back onto the 4 one-hot rows G[a, l] = g[l].
S = G ⊙ X keeps only the entry of the base present; P[l, a] = sum_n S_n[a, l] over a class;
E = information-content matrix of P: column shares × (2 - column entropy) bits, each column scaled by
its Grad-CAM mass relative to the heaviest column (so columns the model ignores stay low).
logomaker draws a frequency logo of the class above E. The class's model is its one-vs-rest binary
model by default: a softmax logit can rise on the absence of other classes' motifs, and then
Grad-CAM's averaged gradients give an empty map (seen on the synthetic planted-motif set).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from genometracks.paths import safe_name
from genometracks.sigma.data import SigmaSet, one_hot
from genometracks.sigma.model import SigmaCNN


def grad_cam(model: SigmaCNN, x: np.ndarray, target: int | np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Grad-CAM map g float64 [n, L] for one-hot x [n, 4, L]; target: output index (one per row or shared).

    The model is put in eval mode (batch norm uses running statistics, no dropout)."""
    model.eval()
    targets = np.broadcast_to(np.asarray(target, dtype=np.int64), (len(x),))
    out = np.zeros((len(x), x.shape[2]), dtype=np.float64)
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32))
        logits, act = model.forward_with_map(xb)
        tb = torch.from_numpy(targets[i:i + batch_size].copy())
        y = logits.gather(1, tb[:, None]).sum()
        (grad,) = torch.autograd.grad(y, act)
        alpha = grad.mean(dim=2, keepdim=True)  # [B, C, 1]
        out[i:i + batch_size] = torch.relu((alpha * act).sum(dim=1)).detach().double().numpy()
    return out


def class_profile(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """P [L, 4]: sum over sequences of S = G ⊙ X with G[a, l] = g[l]; x one-hot [n, 4, L], g [n, L]."""
    return np.einsum("nal,nl->la", x.astype(np.float64), g)


def information_heights(p: np.ndarray, keep_mass: bool = True) -> np.ndarray:
    """Information-content matrix [L, 4] of non-negative column weights p [L, 4]: column shares times
    the column's information 2 - H (bits). keep_mass: also scale each column by its total weight
    relative to the heaviest column (Grad-CAM importance survives; empty columns → 0)."""
    from genometracks.interpret.motifs import information_matrix

    heights = np.zeros_like(p, dtype=np.float64)
    mass = p.sum(axis=1)
    filled = mass > 0
    if filled.any():
        heights[filled] = information_matrix(p[filled])
        if keep_mass:
            heights *= (mass / mass.max())[:, None]
    return heights


def class_logo_matrices(data: SigmaSet, models: dict[str, tuple[SigmaCNN, int]]) -> dict[str, dict[str, np.ndarray]]:
    """Per class name in `models` ({class: (model, output index of the class)}): {"gradcam": E [L, 4],
    "frequency": information matrix of the base counts [L, 4], "profile": P [L, 4], "n": sequences}."""
    result: dict[str, dict[str, np.ndarray]] = {}
    for name, (model, output) in models.items():
        rows = np.flatnonzero(data.label == data.classes.index(name))
        if rows.size == 0:
            continue
        x = one_hot(data.tokens[rows])
        p = class_profile(x, grad_cam(model, x, output))
        result[name] = {"gradcam": information_heights(p), "frequency": information_heights(x.sum(axis=0).T, False),
                        "profile": p, "n": np.array(rows.size)}
    return result


def relative_positions(length: int, upstream: int) -> np.ndarray:
    """Column j → position relative to +1 (-upstream..-1, then +1, +2, ...; there is no 0)."""
    j = np.arange(length)
    return np.where(j < upstream, j - upstream, j - upstream + 1)


def _draw_pair(ax_freq, ax_cam, mats: dict, name: str, positions: np.ndarray) -> None:
    import logomaker
    import pandas as pd

    for ax, key, title in ((ax_freq, "frequency", "frequency"), (ax_cam, "gradcam", "Grad-CAM")):
        frame = pd.DataFrame(mats[key], columns=list("ACGT"), index=positions)
        with warnings.catch_warnings():  # an all-zero matrix makes logomaker warn about its y range
            warnings.simplefilter("ignore", UserWarning)
            logomaker.Logo(frame, ax=ax, color_scheme="classic")
        if not mats[key].any():
            ax.set_ylim(0, 1)
            ax.text(0.5, 0.5, "Grad-CAM map is 0 for every sequence of this class", transform=ax.transAxes,
                    ha="center", va="center", fontsize=8, color="grey")
        ax.set_ylabel("bits")
        ax.set_title(f"{name} (n={int(mats['n'])}): {title}", fontsize=9, loc="left")
        ax.set_xlim(positions[0] - 0.5, positions[-1] + 0.5)
    ax_cam.set_xlabel("position relative to +1")


def save_figure(fig, path: str | Path) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    from genometracks.export.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return Path(path)


def draw_class_logos(matrices: dict[str, dict[str, np.ndarray]], upstream: int, out_dir: str | Path,
                     figure_name: str = "all_classes.png") -> list[Path]:
    """`<out_dir>/<class>.png` (frequency logo above the Grad-CAM logo) and one figure with all panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written = []
    for name, mats in matrices.items():
        positions = relative_positions(len(mats["gradcam"]), upstream)
        fig, axes = plt.subplots(2, 1, figsize=(max(6.0, len(positions) * 0.18), 3.6), sharex=True)
        _draw_pair(axes[0], axes[1], mats, name, positions)
        target = out_dir / f"{safe_name(name, prefix='class')}.png"  # class names come from the config
        save_figure(fig, target)
        written.append(target)
    n = len(matrices)
    ncols = 2 if n > 3 else 1
    nrows = -(-n // ncols)
    width = max(6.0, len(next(iter(matrices.values()))["gradcam"]) * 0.18) if n else 6.0
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(width * ncols, 3.6 * nrows), squeeze=False)
    for k, (name, mats) in enumerate(matrices.items()):
        r, c = divmod(k, ncols)
        _draw_pair(axes[2 * r, c], axes[2 * r + 1, c], mats, name,
                   relative_positions(len(mats["gradcam"]), upstream))
    for k in range(n, nrows * ncols):
        r, c = divmod(k, ncols)
        axes[2 * r, c].axis("off")
        axes[2 * r + 1, c].axis("off")
    fig.tight_layout()
    save_figure(fig, out_dir / figure_name)
    return written + [out_dir / figure_name]
