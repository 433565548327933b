"""The one figure saver and plotting style: matplotlib Figures on the Agg canvas (no pyplot state, so
nothing leaks between figures or threads), saved as PNG through the atomic writer (fsync, kill
points, stale temporaries removed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genometracks.io.atomic import atomic_path

DPI = 110  # pixels per inch of saved PNGs unless a figure kind asks for another
COLOURS = ("#c62828", "#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#6d4c41", "#9e9d24")  # curve colours, in order
STRAND_RGB = {"+": (200, 30, 30), "-": (30, 60, 200)}  # the strands in every browser view and every figure
STRAND_LEGENDS = {"+ strand": "+", "− strand": "-", "- strand": "-"}


def curve_colour(name: str, index: int) -> str:
    """A curve's colour: a strand's browser colour for a legend starting '+ strand' / '− strand', black
    for 'both strands', else COLOURS in turn."""
    for prefix, strand in STRAND_LEGENDS.items():
        if name.startswith(prefix):
            return "#{:02x}{:02x}{:02x}".format(*STRAND_RGB[strand])
    if name.startswith("both strands"):
        return "#212121"
    return COLOURS[index % len(COLOURS)]


def new_figure(width: float, height: float, dpi: int = 100, **kwargs: Any) -> Figure:
    """A Figure of `width` x `height` inches on its own Agg canvas (`kwargs`: e.g. layout=)."""
    fig = Figure(figsize=(width, height), dpi=dpi, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI, tight: bool = True, metadata: dict[str, str] | None = None) -> Path:
    """Write `fig` as a PNG at `path` atomically and return the path. `tight`: crop to the drawn
    area (bbox_inches="tight"); PNG text chunks: Software, Title (the axes' titles) and `metadata`."""
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(
            tmp,
            format="png",
            dpi=dpi,
            bbox_inches="tight" if tight else None,
            metadata={"Software": "genometracks", "Title": ", ".join(a.get_title() for a in fig.axes), **(metadata or {})},
        )
    return Path(path)


def draw_roc(ax: Axes, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str) -> None:
    """ROC curves {legend: (false positive rate [m], true positive rate [m])} on `ax`, with the
    chance diagonal, in the house style (curve_colour, light grid, legend lower right)."""
    for i, (name, (fpr, tpr)) in enumerate(curves.items()):
        ax.plot(fpr, tpr, color=curve_colour(name, i), lw=1.6, label=name)
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
