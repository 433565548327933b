"""Class-activation logos of the sigma CNN (the promoter-logo paper's construction).

Per sequence n: A = the last convolution block's map [C, L] (after its ReLU and batch norm: what the output
layer reads), y = the class's logit. Two maps:
- "gradcam" (the paper): alpha_c = mean_l dy/dA[c, l], g[l] = ReLU(sum_c alpha_c A[c, l]).
- "hirescam" (Draelos & Carin 2020): g[l] = ReLU(sum_c dy/dA[c, l] A[c, l]). The sigma CNN ends in
  flatten + linear, so dy/dA[c, l] is the output layer's weight of channel c *at position l*;
  Grad-CAM's mean over l throws that position away and g becomes a fixed channel mix (on RegulonDB
  sigma70 it paints every A/T-rich column); HiResCAM keeps it, and before its ReLU it is exactly what
  each position adds to the logit (taken before the batch norm, the map left out the norm's shift
  W·(beta - gamma·mu/sigma), as large as the map itself on the shipped sigma70 model).
A 1-D convolution over the one-hot rows has one map value per position, so projected back onto the
4 one-hot rows G[a, l] = g[l]. S = G ⊙ X keeps only the entry of the base present; P[l, a] = sum_n
S_n[a, l] over a class; E = information-content matrix of P: column shares × (2 - column entropy)
bits (heights="information", the paper's), less the small-sample bits of the column's effective
number of sequences (a column that a few sequences carry would otherwise read as 2 bits);
heights="information_x_mass" also scales each column by its map mass relative to the heaviest
column (columns the model ignores stay low). logomaker draws a frequency logo of the class above
one E per map.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from genometracks.interpret.motifs import column_information, normalise_rows
from genometracks.io.figures import new_figure, save_figure
from genometracks.io.paths import safe_name
from genometracks.sigma.data import SigmaSet, one_hot
from genometracks.sigma.model import SigmaCNN

CAM_METHODS = ("gradcam", "hirescam")
CAM_TITLES = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}
HEIGHTS = ("information", "information_x_mass")


def cam_maps(
    model: SigmaCNN, x: np.ndarray, target: int | np.ndarray, methods: Sequence[str] = CAM_METHODS, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """{method: map g float64 [n, L]} for one-hot x [n, 4, L]; target: output index (one per row or
    shared). The model is put in eval mode (batch norm uses running statistics, no dropout)."""
    unknown = [m for m in methods if m not in CAM_METHODS]
    if unknown:
        raise ValueError(f"class-activation map {unknown[0]!r} is not one of {CAM_METHODS}")
    model.eval()
    targets = np.broadcast_to(np.asarray(target, dtype=np.int64), (len(x),))
    out = {m: np.zeros((len(x), x.shape[2]), dtype=np.float64) for m in methods}
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32))
        logits, act = model.forward_with_map(xb)
        tb = torch.from_numpy(targets[i : i + batch_size].copy())
        (grad,) = torch.autograd.grad(logits.gather(1, tb[:, None]).sum(), act)
        weights = {"gradcam": grad.mean(dim=2, keepdim=True), "hirescam": grad}  # [B, C, 1] / [B, C, L]
        for m in methods:
            out[m][i : i + batch_size] = torch.relu((weights[m] * act).sum(dim=1)).detach().double().numpy()
    return out


def grad_cam(model: SigmaCNN, x: np.ndarray, target: int | np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The paper's Grad-CAM map float64 [n, L] (see cam_maps)."""
    return cam_maps(model, x, target, ("gradcam",), batch_size)["gradcam"]


def class_profile(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """P [L, 4]: sum over sequences of S = G ⊙ X with G[a, l] = g[l]; x one-hot [n, 4, L], g [n, L]."""
    return np.einsum("nal,nl->la", x.astype(np.float64), g)


def effective_counts(g: np.ndarray) -> np.ndarray:
    """Effective number of sequences behind each column of P, (sum_n g)^2 / sum_n g^2, float64 [L]
    for maps g [n, L] (n when every map value of the column is equal; 0 for an empty column)."""
    total, square = g.sum(axis=0), np.square(g).sum(axis=0)
    return np.divide(total**2, square, out=np.zeros_like(total), where=square > 0)


def small_sample_bits(n_eff: np.ndarray) -> np.ndarray:
    """Expected information of a column of n_eff random bases, e(n) = 3 / (2 ln 2 · n) bits (the
    Miller–Madow / Schneider et al. 1986 correction for 4 letters); inf where n_eff is 0."""
    n_eff = np.asarray(n_eff, dtype=np.float64)
    return np.divide(3.0 / (2 * np.log(2)), n_eff, out=np.full_like(n_eff, np.inf), where=n_eff > 0)


def information_heights(p: np.ndarray, keep_mass: bool = True, n_eff: np.ndarray | None = None) -> np.ndarray:
    """Information-content matrix [L, 4] of non-negative column weights p [L, 4]: column shares times
    the column's information 2 - H (bits). n_eff [L]: subtract the small-sample bits of each column's
    effective count (floored at 0), so a column made of a few sequences does not read as a motif.
    keep_mass: also scale each column by its total weight relative to the heaviest column (map
    importance survives; empty columns → 0)."""
    heights = np.zeros_like(p, dtype=np.float64)
    mass = p.sum(axis=1)
    filled = mass > 0
    if filled.any():
        shares = normalise_rows(p[filled], "logo matrix")
        bits = column_information(shares)
        if n_eff is not None:
            bits = np.maximum(bits - small_sample_bits(n_eff[filled]), 0.0)
        heights[filled] = shares * bits[:, None]
        if keep_mass:
            heights *= (mass / mass.max())[:, None]
    return heights


def logo_matrices(x: np.ndarray, maps: dict[str, np.ndarray], heights: str = "information") -> dict:
    """Logo matrices of one class from one-hot x [n, 4, L] and its maps {method: g [n, L]}:
    {"frequency": information matrix of the base counts [L, 4], "n": n, method: E [L, 4],
    method + "_profile": P [L, 4]}."""
    if heights not in HEIGHTS:
        raise ValueError(f"logo heights {heights!r} is not one of {HEIGHTS}")
    counts = x.sum(axis=0).T  # [L, 4] bases per column; the same small-sample correction as the map rows
    mats: dict = {"frequency": information_heights(counts, False, counts.sum(axis=1)), "n": np.array(len(x))}
    for method, g in maps.items():
        p = class_profile(x, g)
        mats[method] = information_heights(p, heights == "information_x_mass", effective_counts(g))
        mats[method + "_profile"] = p
    return mats


WEAK_MAP = 0.01  # a class whose map mass per sequence is below this share of the strongest class's draws no logo


def blank_weak_maps(matrices: dict[str, dict], fraction: float = WEAK_MAP) -> dict[str, dict]:
    """Per method, the map mass per sequence of each class (its profile's sum / n) against the largest
    class's; below `fraction` the class's logo is zeroed and `<method>_weak` holds the ratio, so a few
    sequences' near-zero map values (small-sample correction is blind to scale) draw no motif. In place."""
    for method in CAM_METHODS:
        mass = {c: float(m[method + "_profile"].sum()) / max(int(m["n"]), 1) for c, m in matrices.items() if method in m}
        strongest = max(mass.values(), default=0.0)
        for name, value in mass.items():
            if strongest > 0 and value < fraction * strongest:
                matrices[name][method] = np.zeros_like(matrices[name][method])
                if value > 0:  # (an all-zero map keeps its own note)
                    matrices[name][method + "_weak"] = np.array(value / strongest)
    return matrices


def class_logo_matrices(
    data: SigmaSet, models: dict[str, tuple[SigmaCNN, int]], methods: Sequence[str] = CAM_METHODS, heights: str = "information"
) -> dict[str, dict]:
    """logo_matrices per class name in `models` ({class: (model, output index of the class)}), every
    row of the class scored by that one model."""
    result: dict[str, dict] = {}
    for name, (model, output) in models.items():
        rows = np.flatnonzero(data.label == data.classes.index(name))
        if rows.size:
            x = one_hot(data.tokens[rows])
            result[name] = logo_matrices(x, cam_maps(model, x, output, methods), heights)
    return blank_weak_maps(result)


def logo_peaks(heights: np.ndarray, positions: np.ndarray, width: int = 6, n: int = 2) -> list[dict]:
    """The n heaviest non-overlapping windows of `width` columns of a logo E [L, 4], heaviest first:
    {"start", "end" (positions relative to +1, inclusive), "consensus" (tallest base per column),
    "bits" (summed heights)}."""
    column = heights.sum(axis=1)
    if len(column) < width:
        return []
    window = np.convolve(column, np.ones(width), "valid")
    taken = np.zeros(len(window), dtype=bool)
    peaks = []
    for start in np.argsort(-window, kind="stable"):
        if len(peaks) == n or window[start] <= 0:
            break
        if taken[start]:
            continue
        taken[max(0, start - width + 1) : start + width] = True
        cols = slice(start, start + width)
        peaks.append(
            {
                "start": int(positions[start]),
                "end": int(positions[start + width - 1]),
                "consensus": "".join("ACGT"[k] for k in heights[cols].argmax(axis=1)),
                "bits": round(float(window[start]), 3),
            }
        )
    return peaks


def relative_positions(length: int, upstream: int) -> np.ndarray:
    """Column j → position relative to +1 (-upstream..-1, then +1, +2, ...; there is no 0)."""
    j = np.arange(length)
    return np.where(j < upstream, j - upstream, j - upstream + 1)


def _methods(mats: dict) -> list[str]:
    return [m for m in CAM_METHODS if m in mats]


def _draw_class(axes, mats: dict, name: str, positions: np.ndarray) -> None:
    """Frequency logo on axes[0], one class-activation logo per map below it."""
    import logomaker
    import pandas as pd

    rows = [("frequency", "frequency")] + [(m, CAM_TITLES[m]) for m in _methods(mats)]
    for ax, (key, title) in zip(axes, rows):
        frame = pd.DataFrame(mats[key], columns=list("ACGT"), index=positions)
        with warnings.catch_warnings():  # an all-zero matrix makes logomaker warn about its y range
            warnings.simplefilter("ignore", UserWarning)
            logomaker.Logo(frame, ax=ax, color_scheme="classic")
        if not mats[key].any():
            ax.set_ylim(0, 1)
            weak = mats.get(key + "_weak")
            ax.text(
                0.5,
                0.5,
                f"{title} map is 0 for every sequence of this class"
                if weak is None
                else f"{title} map is about 0 for this class: {100 * float(weak):.2g} % of the strongest class's mass per sequence",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=8,
                color="grey",
            )
        ax.set_ylabel("bits")
        ax.set_title(f"{name} (n={int(mats['n'])}): {title}", fontsize=9, loc="left")
        ax.set_xlim(positions[0] - 0.5, positions[-1] + 0.5)
    axes[len(rows) - 1].set_xlabel("position relative to +1")


def draw_class_logos(matrices: dict[str, dict], upstream: int, out_dir: str | Path, figure_name: str = "all_classes.png") -> list[Path]:
    """`<out_dir>/<class>.png` (frequency logo above each class-activation logo) and one figure with
    every class."""
    out_dir = Path(out_dir)
    written = []
    for name, mats in matrices.items():
        positions = relative_positions(len(mats["frequency"]), upstream)
        rows = 1 + len(_methods(mats))
        fig = new_figure(max(6.0, len(positions) * 0.18), 1.8 * rows)
        axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
        _draw_class(axes[:, 0], mats, name, positions)
        target = out_dir / f"{safe_name(name, prefix='class')}.png"  # class names come from the config
        save_figure(fig, target)
        written.append(target)
    n = len(matrices)
    rows = 1 + max((len(_methods(m)) for m in matrices.values()), default=1)
    ncols = 2 if n > 3 else 1
    nrows = -(-n // ncols)
    width = max(6.0, len(next(iter(matrices.values()))["frequency"]) * 0.18) if n else 6.0
    fig = new_figure(width * ncols, 1.8 * rows * nrows)
    axes = fig.subplots(rows * nrows, ncols, squeeze=False)
    for k, (name, mats) in enumerate(matrices.items()):
        r, c = divmod(k, ncols)
        _draw_class(axes[rows * r : rows * (r + 1), c], mats, name, relative_positions(len(mats["frequency"]), upstream))
    for k in range(n, nrows * ncols):
        r, c = divmod(k, ncols)
        for ax in axes[rows * r : rows * (r + 1), c]:
            ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out_dir / figure_name)
    return written + [out_dir / figure_name]
