"""The σ70 promoter scan of the TSS calls as one PNG (plots/sigma70_promoters.png)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from genometracks.interpret.sigma70_promoters import DISCRIMINATORS
from genometracks.io.figures import COLOURS, new_figure, save_figure

SCANS = (("calls", "TSS calls"), ("reference", "TSS labels"), ("at_random_positions", "random positions"))


def plot_sigma70_promoters(summary: dict, path: Path) -> Path:
    """Left: per scan (calls, the data set's labels, random positions), the share of sites whose best σ70
    window has each discriminator (nt between the −10 hexamer and the site; even at random positions);
    right: the share of sites kept at the q-value cut-off."""
    fig = new_figure(9.0, 3.4, layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.6, 1.0))
    d = np.array(DISCRIMINATORS)
    names, kept = [], []
    for i, (key, label) in enumerate(s for s in SCANS if s[0] in summary):
        scan = summary[key]
        label = f"TSS labels ({summary['labels']})" if key == "reference" and summary.get("labels") else label
        counts = np.array([scan["best_discriminator_all"].get(int(x), scan["best_discriminator_all"].get(str(x), 0)) for x in d], float)
        share = counts / max(counts.sum(), 1.0)
        left.plot(d, 100 * share, marker="o", color=COLOURS[i % len(COLOURS)], label=f"{label} ({scan['tested']:,})")
        names.append(label)
        kept.append(100 * (scan["kept_fraction"] or 0.0))
    left.axhline(100 / d.size, color="grey", lw=0.8, ls=":")
    left.set(xlabel="discriminator of the best σ70 window (nt, −10 hexamer to +1)", ylabel="% of sites", title="Where the −10 box lies")
    left.set_xticks(d)
    left.legend(frameon=False, fontsize=8)
    left.grid(alpha=0.3)
    bars = right.bar([textwrap.fill(n, 14) for n in names], kept, color=[COLOURS[i % len(COLOURS)] for i in range(len(names))])
    right.bar_label(bars, fmt="%.1f %%", fontsize=8)
    right.set(ylabel="% of sites", title=f"σ70 promoter at q ≤ {summary['q_threshold']:g}")
    right.tick_params(axis="x", labelsize=8)
    return save_figure(fig, path)
