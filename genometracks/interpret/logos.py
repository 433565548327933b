"""Sequence-logo PNGs (logomaker on a plain matplotlib Figure with the Agg canvas; no pyplot state).

Modes: "bits" (letter height = p · column information, y from 0 to 2 bits), "probability"
(rows normalised, y from 0 to 1) and "raw" (the matrix as given, may be negative: attributions, in
logits). Matrices are [K, 4] with columns A, C, G, T. PNGs go through `io.figures.save_figure`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from genometracks.interpret.motifs import LETTERS, information_matrix, normalise_rows
from genometracks.io.figures import new_figure, save_figure

MODES = ("bits", "probability", "raw")
DPI = 100


class LogoError(ValueError):
    """Bad logo input; the message names the panel and the fix."""


def logo_heights(matrix: np.ndarray, mode: str, where: str = "logo") -> np.ndarray:
    """Letter heights [K, 4] drawn for `matrix` [K, 4] in `mode`."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != 4 or m.shape[0] == 0:
        raise LogoError(f"{where}: matrix must be [K, 4] (A, C, G, T columns) with K >= 1, got {m.shape}")
    if mode == "bits":
        return information_matrix(m)
    if mode == "probability":
        return normalise_rows(m, where)
    if mode == "raw":
        if not np.isfinite(m).all():
            raise LogoError(f"{where}: matrix has non-finite values")
        return m
    raise LogoError(f"{where}: mode must be one of {MODES}, got {mode!r}")


def _draw_panel(ax, matrix: np.ndarray, title: str, mode: str, xticklabels: Sequence[str] | None) -> None:
    import logomaker

    heights = logo_heights(matrix, mode, where=f"logo panel {title!r}")
    frame = pd.DataFrame(heights, columns=list(LETTERS))
    with warnings.catch_warnings():  # an all-zero logo makes logomaker set ylim (0, 0); reset below
        warnings.filterwarnings("ignore", message="Attempting to set identical")
        logomaker.Logo(frame, ax=ax, color_scheme="classic", font_name="DejaVu Sans")
    k = heights.shape[0]
    ax.set_xticks(range(k))
    if xticklabels is not None:
        if len(xticklabels) != k:
            raise LogoError(f"logo panel {title!r}: {len(xticklabels)} x tick labels for {k} columns")
        ax.set_xticklabels(list(xticklabels), fontsize=7)
        ax.set_xlabel("nt from the TSS (0 = +1)", fontsize=7)  # every caller's tick labels are TSS-relative
    else:
        ax.set_xticklabels([str(i + 1) for i in range(k)], fontsize=7)
    if mode == "bits":
        ax.set_ylim(0, 2)
        ax.set_ylabel("bits")
    elif mode == "probability":
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
    else:
        low, high = min(heights.clip(max=0).sum(axis=1).min(), 0), max(heights.clip(min=0).sum(axis=1).max(), 0)
        pad = 0.05 * (high - low) or 1.0
        ax.set_ylim(low - pad, high + pad)
        ax.set_ylabel("contribution (logit)")  # raw: attributions (gradient x input, DeepLIFT/SHAP, MoDISco)
    ax.set_title(title, fontsize=9)


def logo_grid_figure(panels: Sequence[tuple], ncols: int = 4) -> Figure:
    """Figure with one logo axes per panel; panels are (title, matrix [K, 4], mode) or
    (title, matrix, mode, xticklabels). Unused grid cells are left without axes."""
    if not panels:
        raise LogoError("logo grid: no panels given")
    if ncols < 1:
        raise LogoError(f"logo grid: ncols must be >= 1, got {ncols}")
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    widest = max(np.asarray(p[1]).shape[0] for p in panels)
    panel_w = max(2.5, 0.3 * widest + 1.0)
    fig = new_figure(panel_w * ncols, 2.0 * nrows, dpi=DPI)
    for i, panel in enumerate(panels):
        title, matrix, mode = panel[:3]
        ticks = panel[3] if len(panel) > 3 else None
        _draw_panel(fig.add_subplot(nrows, ncols, i + 1), matrix, title, mode, ticks)
    fig.tight_layout()
    return fig


def draw_logo(matrix: np.ndarray, path: str | Path, title: str = "", mode: str = "bits", xticklabels: Sequence[str] | None = None) -> Path:
    """One logo PNG of `matrix` [K, 4]; returns the path."""
    return save_figure(logo_grid_figure([(title, matrix, mode, xticklabels)], ncols=1), path, DPI, tight=False)


def draw_logo_grid(panels: Sequence[tuple], path: str | Path, ncols: int = 4) -> Path:
    """A grid of logos in one PNG (see `logo_grid_figure` for the panel tuples); returns the path."""
    return save_figure(logo_grid_figure(panels, ncols), path, DPI, tight=False)
