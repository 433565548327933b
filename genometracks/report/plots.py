"""Curve PNGs (PR, ROC) and the metrics tables of the run report.

Curves come from `genometracks.metrics` (exact ties, no sklearn) and are thinned to a few thousand
points before drawing: a whole-genome split has millions of distinct thresholds, a PNG needs ~2,000.
Figures use matplotlib's Agg canvas (no pyplot state) and are written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from genometracks.io.figures import curve_colour, draw_roc, new_figure, save_figure
from genometracks.training import metrics as M

# TSS paper, Table 2: test region [2,738,785, 3,667,115) of NC_000913.3, per-position (ROC AUC, PR AUC)
PAPER_TABLE2: dict[str, tuple[str, float, float]] = {
    "regulondb_strong": ("RegulonDB → RegulonDB", 0.882, 0.030),
    "cappable_seq": ("Cappable-seq → Cappable-seq", 0.961, 0.132),
    "curated": ("curated → curated", 0.976, 0.141),
}
METRIC_COLUMNS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC"),
    ("pr_auc_k4", "PR AUC k=4"),
    ("pr_auc_k10", "PR AUC k=10"),
    ("at_threshold.threshold", "threshold"),
    ("at_threshold.precision", "precision"),
    ("at_threshold.recall", "recall"),
    ("at_threshold.f1", "F1"),
    ("at_threshold.lr_plus", "LR+"),
)  # the operating point: the validation split's F1-optimal threshold, applied to every split


def metric_value(m: Mapping, key: str) -> object:
    """m[key], where 'a.b' reads m['a']['b'] (None when missing)."""
    for part in key.split("."):
        m = m.get(part) if isinstance(m, Mapping) else None
    return m


def fmt(value: object, digits: int = 3) -> str:
    """A number for a table: `digits` decimals (2 significant digits below 10^-(digits-1), where the
    decimals would keep one: 0.00185 -> 0.0019, not 0.002), integers with thousands separators, '–' for
    None/NaN."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if not math.isfinite(x):
            return "∞" if x > 0 else "–"
        return f"{x:.2g}" if 0 < abs(x) < 10 ** -(digits - 1) else f"{x:.{digits}f}"
    return str(value)


def thin_indices(x: np.ndarray, y: np.ndarray, n: int = 2000) -> np.ndarray:
    """Indices of a monotone-in-x curve [m] to keep: first, last, and where x or y crosses an
    even grid of `n` steps (so steep parts keep their shape)."""
    m = len(x)
    if m <= 2 * n:
        return np.arange(m)
    keep = [np.array([0, m - 1])]
    for v in (np.asarray(x, float), np.maximum.accumulate(np.asarray(y, float))):
        grid = np.linspace(v[0], v[-1], n)
        keep.append(np.clip(np.searchsorted(v, grid), 0, m - 1))
    return np.unique(np.concatenate(keep))


def pr_points(labels: np.ndarray, scores: np.ndarray, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) of the PR curve, thinned to about `n` points, starting at recall 0."""
    precision, recall, _ = M.pr_curve(labels, scores)
    if recall.size == 0:
        return np.zeros(1), np.ones(1)
    keep = thin_indices(recall, -precision, n)
    return np.r_[0.0, recall[keep]], np.r_[precision[keep][0], precision[keep]]


def roc_points(labels: np.ndarray, scores: np.ndarray, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the ROC curve, thinned to about `n` points, from (0, 0) to (1, 1)."""
    fpr, tpr, _ = M.roc_curve(labels, scores)
    keep = thin_indices(fpr, tpr, n)
    return fpr[keep], tpr[keep]


def plot_pr(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    title: str,
    base_rate: float | None = None,
    points: Mapping[str, tuple[float, float]] | None = None,
    log_y: bool | None = None,
    legend_outside: bool = False,
) -> Path:
    """PR curves {legend: (recall, precision)} drawn as steps (the average-precision area), the
    positive rate as a dashed line, optional operating points {label: (recall, precision)}, each in the
    colour of the curve whose legend starts with the point's first word (the tool), else black.
    log_y: logarithmic precision axis; None = when the positive rate is below 1 % (per-base curves).
    legend_outside: the legend right of the axes (where points sit in the lower left)."""
    fig = new_figure(6.2, 5.0)
    ax = fig.add_subplot()
    colours = {name: curve_colour(name, i) for i, name in enumerate(curves)}
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, drawstyle="steps-pre", color=colours[name], lw=1.6, label=name)
    if base_rate is not None:
        ax.axhline(base_rate, color="grey", ls="--", lw=0.8, label=f"positive rate {base_rate:.4f}")
    for marker, (name, (r, p)) in zip("os^vD", (points or {}).items()):
        tool = name.split(":")[0].split(" ")[0]
        colour = next((c for curve, c in colours.items() if curve.split(" ")[0] == tool), "black")
        ax.plot([r], [p], marker=marker, color=colour, ls="none", ms=8, mew=1.8, mfc="none", label=name)
    if log_y if log_y is not None else (base_rate is not None and 0 < base_rate < 0.01):
        ax.set_yscale("log")
        ax.set(ylim=(max(min(base_rate or 1e-4, 1e-2) / 3, 1e-6), 1.2), ylabel="precision (log scale)")
    else:
        ax.set(ylim=(0, 1.02), ylabel="precision")
    ax.set(xlabel="recall", title=title, xlim=(0, 1))
    ax.grid(alpha=0.3)
    if legend_outside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    else:
        ax.legend(loc="lower left", fontsize=8)  # PR curves start high on the left and fall to the right: the lower left is empty
    return save_figure(fig, path)


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str) -> Path:
    """ROC curves {legend: (fpr, tpr)} with the chance diagonal."""
    fig = new_figure(5.6, 5.0)
    draw_roc(fig.add_subplot(), curves, title)
    return save_figure(fig, path)


def split_metric_rows(metrics: Mapping) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a train `metrics.json`: one row per split (test, validation) and strand
    (both, +, −) with positions, positives and METRIC_COLUMNS."""
    header = ["split", "strand", "positions", "TSSs"] + [label for _, label in METRIC_COLUMNS]
    rows = []
    for split in ("test", "validation"):
        per_strand = metrics.get(split) or {}
        for strand in ("both", "+", "-"):
            m = per_strand.get(strand) or {}
            if not m:
                continue
            rows.append(
                [split, strand, fmt(m.get("n_positions")), fmt(m.get("n_positives"))]
                + [fmt(metric_value(m, key)) for key, _ in METRIC_COLUMNS]
            )
    return header, rows


def paper_rows(labels: str | None) -> tuple[list[str], list[list[str]], int | None]:
    """(header, rows, index of the row for `labels` or None) of the paper's Table 2."""
    header = ["labels (train → test)", "ROC AUC", "PR AUC"]
    keys = list(PAPER_TABLE2)
    rows = [[name, fmt(roc), fmt(pr)] for name, roc, pr in PAPER_TABLE2.values()]
    return header, rows, (keys.index(labels) if labels in PAPER_TABLE2 else None)


def side_by_side_rows(
    test_both: Mapping, labels: str | None, extra: Sequence[tuple[str, Mapping]] = ()
) -> tuple[list[str], list[list[str]]]:
    """ROC/PR AUC of this run's test split (both strands) beside the paper's Table 2 row for the same
    labels; `extra` adds (column name, {roc_auc, pr_auc}) columns (e.g. Promotech per position)."""
    paper = PAPER_TABLE2.get(labels or "")
    header = ["metric (test split, both strands, per position)", "this run"]
    header += [name for name, _ in extra] + [f"paper: {paper[0]}" if paper else "paper (no row for these labels)"]
    rows = []
    for i, (key, label) in enumerate((("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"))):
        rows.append([label, fmt(test_both.get(key))] + [fmt(m.get(key)) for _, m in extra] + [fmt(paper[1 + i]) if paper else "–"])
    return header, rows


def read_tsv(path: str | Path):
    """A tab-separated table with a header as a DataFrame (empty cells stay empty strings)."""
    import pandas as pd

    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["nan", "NaN", "NA"])  # heads.tsv writes NA


def table_rows(table, columns: Sequence[str] = (), limit: int = 40, width: int = 60) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, note) of a DataFrame for a report table: `columns` that exist (all when none
    do), numbers through `fmt`, long text cut at `width`, the first `limit` rows."""
    keep = [c for c in columns if c in table.columns] or list(table.columns)
    cut = [
        [fmt(v) if not isinstance(v, str) else (v if len(v) <= width else v[: width - 1] + "…") for v in row]
        for row in table[keep].head(limit).itertuples(index=False)
    ]
    note = f" (first {limit} of {len(table)} rows)" if len(table) > limit else ""
    return keep, cut, note
