"""Stratified k-fold cross-validation of the sigma CNN, per-class metrics, ROC figure, and the
`genometracks train experiment=sigma_cnn` entry point `run_sigma(cfg)`.

Modes: "softmax" — one six-class model per fold on the promoter rows (non-promoters left out);
"ovr" — per class, one binary model per fold, positives = the class, negatives = every other row
(other sigma classes and, when the data has them, non-promoters). Scores are out-of-fold.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from genometracks.io.atomic import atomic_path, write_text_atomic
from genometracks.io.figures import draw_roc, new_figure, save_figure
from genometracks.io.jsonsafe import json_safe
from genometracks.io.run_config import group_defaults
from genometracks.io.rundir import RunDir
from genometracks.sigma import gradcam
from genometracks.sigma.data import NONPROMOTER, SigmaSet, load_sigma_set, one_hot
from genometracks.sigma.gradcam import (
    CAM_METHODS,
    HEIGHTS,
    blank_weak_maps,
    draw_class_logos,
    logo_matrices,
    logo_peaks,
    relative_positions,
)
from genometracks.sigma.kernels import export_kernels
from genometracks.sigma.model import SigmaCNN, SigmaTask, balanced_weights, predict_proba, save_model, with_prior
from genometracks.training import metrics as M

MODES = ("softmax", "ovr")
PAPER = {"accuracy": "97.9–99.9 %", "roc_auc": "0.63–1.00"}  # the paper's per-class ranges


class SigmaConfigError(ValueError):
    """Bad sigma experiment settings; the message names the key and the fix."""


def _model_defaults() -> dict:
    model = OmegaConf.to_container(group_defaults("model", "sigma_cnn"))
    model.pop("_target_", None)
    return model


def _sigma_default(key: str) -> Any:
    return group_defaults("sigma")[key]


@dataclass
class TrainSettings:
    """How one model is fitted. trainer: keyword arguments of pytorch_lightning.Trainer. Fields not
    given default to conf/model/sigma_cnn.yaml, conf/experiment/sigma_cnn.yaml and conf/sigma/default.yaml."""

    model: dict = field(default_factory=_model_defaults)
    trainer: dict = field(default_factory=lambda: {"max_epochs": int(group_defaults("experiment", "sigma_cnn").trainer.max_epochs)})
    batch_size: int = field(default_factory=lambda: int(_sigma_default("batch_size")))
    lr: float = field(default_factory=lambda: float(_sigma_default("lr")))
    weight_decay: float = field(default_factory=lambda: float(_sigma_default("weight_decay")))
    class_weight: str = field(default_factory=lambda: str(_sigma_default("class_weight")))  # balanced | none


def stratified_folds(labels: np.ndarray, k: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index int64 [n] in 0..k-1, each class spread evenly over the folds. Without `groups`: each
    class shuffled and dealt round-robin, so every fold holds floor or ceil of count/k rows of each class.
    With `groups` (int [n]; rows of one group share sequence, `window_groups`): whole groups, in random
    order, each to the fold that holds fewest rows of its rows' classes so far (ties: fewest rows), so no
    sequence is both trained on and held out. Raises if a class has fewer than k rows."""
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    small = np.flatnonzero((counts > 0) & (counts < k))
    if small.size:
        raise SigmaConfigError(
            f"class index {int(small[0])} has {int(counts[small[0]])} rows, fewer than "
            f"sigma.folds={k}; lower sigma.folds or drop the class from data.classes"
        )
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=np.int64)
    if groups is None:
        start = 0
        for c in np.flatnonzero(counts):
            rows = rng.permutation(np.flatnonzero(labels == c))
            folds[rows] = (start + np.arange(rows.size)) % k
            start = (start + rows.size) % k  # the next class starts where this one stopped
        return folds
    per_class = np.zeros((k, counts.size), dtype=np.int64)
    ids, members = np.unique(np.asarray(groups), return_inverse=True)
    order = rng.permutation(ids.size)
    # the rarest classes' groups first, so they spread before the folds fill up with common ones
    rarest = np.array([counts[labels[members == g]].min() for g in range(ids.size)])
    for g in order[np.argsort(rarest[order], kind="stable")]:
        rows = np.flatnonzero(members == g)
        need = np.bincount(labels[rows], minlength=counts.size)
        fold = int(np.lexsort((per_class.sum(axis=1), (per_class * (need > 0)).sum(axis=1)))[0])
        folds[rows] = fold
        per_class[fold] += need
    return folds


SHARED_KMER = 30  # rows whose windows share a 30-mer (either orientation) are one group


def window_groups(data: SigmaSet, k: int = SHARED_KMER) -> np.ndarray | None:
    """int64 [n] group ids (connected components), None for an empty set. Two rows are linked when
    their windows overlap on the genome (same contig, either strand: a '-' window covers forward
    [p - downstream + 1, p + upstream + 1)), or share a k-mer read on either strand: repeats such as
    the rRNA operons' identical promoters, and FASTA benchmarks (no sites) whose records are shifted
    copies of one another (iPromoter-2L: 464 of 2,860 promoter rows share >= 30 nt with another row)."""
    n = len(data)
    if n == 0:
        return None
    edges = [_shared_kmer_edges(data.tokens, min(k, data.tokens.shape[1]))]
    if data.sites is not None:
        edges.append(_overlap_edges(data.sites, data.upstream, data.tokens.shape[1]))
    a = np.concatenate([e[0] for e in edges])
    b = np.concatenate([e[1] for e in edges])
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def _overlap_edges(sites, upstream: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (i, j) linking every chain of windows that overlap in forward coordinates on one
    contig (sorted by start, each window to the one before it while it starts inside the chain)."""
    pos, minus = np.asarray(sites.pos, dtype=np.int64), np.asarray(sites.strand).astype(str) == "-"
    start = np.where(minus, pos - (width - upstream) + 1, pos - upstream)
    end = start + width
    chrom = np.asarray(sites.chrom).astype(str)
    order = np.lexsort((start, chrom))
    s, e, c = start[order], end[order], chrom[order]
    first = np.r_[True, c[1:] != c[:-1]]  # the sort keeps each contig's windows together
    reach = _segment_cummax(e, first)  # the chain's furthest end so far, restarted at each contig
    linked = ~first[1:] & (s[1:] < reach[:-1])
    return order[1:][linked], order[:-1][linked]


def _segment_cummax(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Running maximum of `values` that restarts where `starts` is True (vectorised)."""
    offset = np.cumsum(starts) * (np.abs(values).max() * 2 + 1 if values.size else 0)
    return np.maximum.accumulate(values + offset) - offset


def _shared_kmer_edges(tokens: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs linking rows whose windows (uint8 [n, L], A,C,G,T,N = 0..4) share a k-mer without N,
    a k-mer and its reverse complement counted as one (canonical codes, 2 bits per base, k <= 31)."""
    n, length = tokens.shape
    if n < 2 or k < 1 or k > 31:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(tokens.astype(np.int64), k, axis=1)  # [n, L-k+1, k]
    weights = 4 ** np.arange(k - 1, -1, -1, dtype=np.int64)
    forward = (np.minimum(windows, 3) * weights).sum(axis=-1)
    reverse = ((3 - np.minimum(windows[..., ::-1], 3)) * weights).sum(axis=-1)
    codes = np.minimum(forward, reverse)
    clean = ~(windows == 4).any(axis=-1)
    rows = np.broadcast_to(np.arange(n)[:, None], codes.shape)[clean]
    codes = codes[clean]
    order = np.lexsort((rows, codes))
    codes, rows = codes[order], rows[order]
    same = (codes[1:] == codes[:-1]) & (rows[1:] != rows[:-1])
    return rows[1:][same], rows[:-1][same]


def promoters_only(data: SigmaSet, classes: Sequence[str]) -> SigmaSet:
    """Rows of `classes` only, relabelled 0..len(classes)-1 in that order."""
    codes = np.array([data.classes.index(c) for c in classes])
    rows = np.flatnonzero(np.isin(data.label, codes))
    remap = np.full(len(data.classes), -1, dtype=np.int64)
    remap[codes] = np.arange(len(classes))
    sites = None if data.sites is None else data.sites.subset(rows)
    return SigmaSet(data.tokens[rows], remap[data.label[rows]], tuple(classes), data.upstream, sites)


def fit(x: np.ndarray, y: np.ndarray, n_outputs: int, settings: TrainSettings, seed: int) -> SigmaCNN:
    """Train a SigmaCNN on one-hot x [n, 4, L] and labels y [n] (class index, or 0/1 when n_outputs = 1)."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    pl.seed_everything(seed, workers=False, verbose=False)
    model = SigmaCNN(x.shape[2], n_outputs, **settings.model)
    binary = n_outputs == 1
    weights = balanced_weights(y, n_outputs, binary) if settings.class_weight == "balanced" else None
    task = SigmaTask(model, settings.lr, settings.weight_decay, weights)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=generator,
        drop_last=len(y) > settings.batch_size,
    )  # no 1-row batch for batch norm
    kwargs = {**settings.trainer, "logger": False, "enable_checkpointing": False, "enable_model_summary": False, "num_sanity_val_steps": 0}
    kwargs.setdefault("enable_progress_bar", False)
    quiet = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning", "lightning.pytorch")]
    levels = [q.level for q in quiet]
    for q in quiet:  # 10 folds × 7 models: keep Lightning's per-fit banner out of the log
        q.setLevel(logging.WARNING)
    try:
        pl.Trainer(**kwargs).fit(task, loader)
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    model.eval()
    return model


def cross_validate(
    data: SigmaSet,
    mode: str,
    settings: TrainSettings,
    folds: int,
    seed: int,
    classes: Sequence[str] | None = None,
    cams: Sequence[str] = (),
) -> tuple[SigmaSet, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(rows scored, out-of-fold scores float64 [n, n_classes], fold int64 [n], out-of-fold maps).

    Score columns follow `classes` (default: every class but non-promoter). softmax: probabilities of
    a model trained on the other folds' promoter rows; ovr: the sigmoid of the class's own binary model.
    cams: class-activation maps to collect ({method: float64 [n, L]}): each row of a class in
    `classes` gets the map of its own class's output from the model of the fold that held it out
    (non-promoter rows stay 0)."""
    if mode not in MODES:
        raise SigmaConfigError(f"sigma.modes entry {mode!r} is not one of {MODES}")

    classes = list(classes or [c for c in data.classes if c != NONPROMOTER])
    if mode == "softmax":
        data = promoters_only(data, classes)
    from tqdm import tqdm

    fold = stratified_folds(data.label, folds, seed, window_groups(data))
    x = one_hot(data.tokens)
    scores = np.zeros((len(data), len(classes)))
    maps = {m: np.zeros((len(data), x.shape[2])) for m in cams}
    codes = [data.classes.index(name) for name in classes]

    def collect(model: SigmaCNN, rows: np.ndarray, output: int | np.ndarray) -> None:
        if cams and rows.size:
            for method, g in gradcam.cam_maps(model, x[rows], output, cams).items():  # patchable in tests
                maps[method][rows] = g

    with tqdm(total=folds * (1 if mode == "softmax" else len(classes)), desc=f"sigma CV {mode}", unit="fit") as bar:
        for f in range(folds):
            train, test = fold != f, fold == f
            if mode == "softmax":
                model = fit(x[train], data.label[train], len(classes), settings, seed + f)
                scores[test] = predict_proba(model, x[test])
                held = np.flatnonzero(test)
                collect(model, held, data.label[held])  # promoters_only: label = output index
                bar.update()
                continue
            for c in range(len(classes)):
                positive = (data.label == codes[c]).astype(np.int64)
                model = fit(x[train], positive[train], 1, settings, seed + 1000 * (c + 1) + f)
                scores[test, c] = predict_proba(model, x[test])[:, 0]
                collect(model, np.flatnonzero(test & (positive == 1)), 0)
                bar.update()
    return data, scores, fold, maps


def class_metrics(data: SigmaSet, scores: np.ndarray, fold: np.ndarray, mode: str, classes: Sequence[str]) -> dict[str, dict]:
    """Per class, one class vs the rest on out-of-fold scores: accuracy, sensitivity, specificity,
    ROC AUC, PR AUC (average precision), and ROC AUC mean/sd over folds. Predicted class: argmax
    (softmax) or score >= 0.5 (ovr)."""
    out = {}
    for c, name in enumerate(classes):
        truth = data.label == data.classes.index(name)
        called = scores.argmax(axis=1) == c if mode == "softmax" else scores[:, c] >= 0.5
        tp, tn = int((truth & called).sum()), int((~truth & ~called).sum())
        fp, fn = int((~truth & called).sum()), int((truth & ~called).sum())
        per_fold = [M.roc_auc(truth[fold == f], scores[fold == f, c]) for f in np.unique(fold)]
        out[name] = {
            "n_pos": int(truth.sum()),
            "n_neg": int((~truth).sum()),
            "accuracy": (tp + tn) / len(truth),
            "sensitivity": tp / max(tp + fn, 1),
            "specificity": tn / max(tn + fp, 1),
            "roc_auc": M.roc_auc(truth, scores[:, c]),
            "pr_auc": M.average_precision(truth, scores[:, c]),
            "roc_auc_fold_mean": float(np.nanmean(per_fold)),
            "roc_auc_fold_sd": float(np.nanstd(per_fold)),
            "tp": tp,
            "fp": fp,
            "tn": tn,
            "fn": fn,
        }
    return out


TRACK_MODE = "softmax+prior"  # the softmax CV's probabilities as the track computes them


def with_fold_priors(data: SigmaSet, scores: np.ndarray, fold: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Out-of-fold softmax probabilities [n, k] re-weighted, fold by fold, to the class shares of the rows
    that fold's model was trained on (`with_prior`), as the track re-weights the final model's to the
    shares of all rows: the CV figures of the probabilities the track's calls come from."""
    codes = np.array([data.classes.index(name) for name in classes])
    out = np.empty_like(scores)
    for f in np.unique(fold):
        trained = data.label[fold != f]
        shares = np.array([(trained == c).sum() for c in codes], dtype=np.float64)
        out[fold == f] = with_prior(scores[fold == f], shares / max(shares.sum(), 1.0))
    return out


def plot_roc_panels(curves: dict[str, tuple[SigmaSet, np.ndarray, Sequence[str]]], path: str | Path) -> Path:
    """One PNG, one panel per mode, one ROC curve per class (AUC in the legend)."""
    fig = new_figure(5.2 * len(curves), 5)
    axes = fig.subplots(1, len(curves), squeeze=False)
    for ax, (mode, (data, scores, classes)) in zip(axes[0], curves.items()):
        panel = {}
        for c, name in enumerate(classes):
            truth = data.label == data.classes.index(name)
            fpr, tpr, _ = M.roc_curve(truth, scores[:, c])
            panel[f"{name} (AUC {M.roc_auc(truth, scores[:, c]):.3f})"] = (fpr, tpr)
        draw_roc(ax, panel, f"{mode}: one class vs rest")
    fig.tight_layout()
    return save_figure(fig, path)


def metrics_table(metrics: dict[str, dict[str, dict]]) -> str:
    """Markdown table (one row per mode × class) with the paper's ranges in the last columns."""
    lines = [
        "| mode | class | n | accuracy % | sensitivity % | specificity % | ROC AUC | PR AUC | paper accuracy | paper AUC |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, per_class in metrics.items():
        for name, m in per_class.items():
            lines.append(
                f"| {mode} | {name} | {m['n_pos']} | {100 * m['accuracy']:.1f} | "
                f"{100 * m['sensitivity']:.1f} | "
                f"{100 * m['specificity']:.1f} | {m['roc_auc']:.3f} | {m['pr_auc']:.3f} | "
                f"{PAPER['accuracy']} | {PAPER['roc_auc']} |"
            )
    return "\n".join(lines) + "\n"


def _settings(cfg) -> TrainSettings:
    sig = cfg.sigma
    model = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"}
    trainer = {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if k != "_target_"}
    if sig.class_weight not in ("balanced", "none"):
        raise SigmaConfigError(f"sigma.class_weight={sig.class_weight!r}: use balanced or none")
    return TrainSettings(model, trainer, int(sig.batch_size), float(sig.lr), float(sig.weight_decay), str(sig.class_weight))


def run_sigma(cfg) -> dict:
    """Cross-validate every mode in cfg.sigma.modes, train a final softmax model on all promoter rows,
    and write under cfg.run_dir: metrics.json, metrics.md, roc.png, models/sigma_cnn.pt,
    logos/sigma/<class>.png + all_classes.png, motifs/sigma_cnn_kernels.{meme,png} + _matches.tsv."""
    torch.set_num_threads(int(cfg.sigma.threads))
    started = time.time()
    run_dir = Path(cfg.run_dir)
    run = RunDir(run_dir)
    settings, seed, folds = _settings(cfg), int(cfg.seed), int(cfg.sigma.folds)
    data = load_sigma_set(cfg.data, seed)
    classes = [c for c in data.classes if c != NONPROMOTER]
    logo_mode, cams, heights = _logo_settings(cfg)
    metrics, curves, logo_source = {}, {}, None
    for mode in cfg.sigma.modes:
        scored, scores, fold, maps = cross_validate(data, mode, settings, folds, seed, classes, cams if mode == logo_mode else ())
        metrics[mode] = class_metrics(scored, scores, fold, mode, classes)
        curves[mode] = (scored, scores, classes)
        if mode == "softmax" and settings.class_weight == "balanced":  # the track applies the class shares
            track_scores = with_fold_priors(scored, scores, fold, classes)
            metrics[TRACK_MODE] = class_metrics(scored, track_scores, fold, "softmax", classes)
            curves[TRACK_MODE] = (scored, track_scores, classes)
        if mode == logo_mode:
            logo_source = (scored, maps)
    promoters = promoters_only(data, classes)
    final = fit(one_hot(promoters.tokens), promoters.label, len(classes), settings, seed)
    shares = np.bincount(promoters.label, minlength=len(classes)) / len(promoters.label)
    model_path = save_model(final, run.sigma_model, classes, data.upstream, shares if settings.class_weight == "balanced" else None)
    result = {
        "counts": data.counts(),
        "folds": folds,
        "window": {"upstream": data.upstream, "length": int(data.tokens.shape[1])},
        "metrics": metrics,
        "model": str(model_path),
    }
    if curves:
        result["roc_png"] = str(plot_roc_panels(curves, run.root / "roc.png"))
    if logo_source is not None:
        result["logos"] = write_logos(*logo_source, classes, heights, run_dir)
    if cfg.sigma.kernels:
        kernels = export_kernels(final, run_dir, cfg.sigma.get("motif_dir"), _base(cfg.sigma.kernel_base))
        result["kernels"] = {k: v for k, v in kernels.items() if k != "rows"}
    result["runtime_s"] = round(time.time() - started, 1)
    write_text_atomic(run.metrics_md, metrics_table(metrics))
    write_text_atomic(run.metrics_json, json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
    return result


def _logo_settings(cfg) -> tuple[str | None, tuple[str, ...], str]:
    """(mode whose cross-validation draws the logos or None, class-activation maps, logo heights)."""
    sig = cfg.sigma
    if not sig.logos:
        return None, (), "information"
    mode, cams = str(sig.logo_model), tuple(sig.get("cams", CAM_METHODS))
    heights = str(sig.get("logo_heights", "information"))
    if mode not in MODES:
        raise SigmaConfigError(f"sigma.logo_model={mode!r}: use one of {MODES}")
    if mode not in sig.modes:
        raise SigmaConfigError(
            f"sigma.logo_model={mode} draws the logos from that mode's cross-validation, "
            f"but sigma.modes={list(sig.modes)}; add {mode} to sigma.modes or set sigma.logos=false"
        )
    for cam in cams or ("(empty)",):
        if cam not in CAM_METHODS:
            raise SigmaConfigError(f"sigma.cams entry {cam!r}: use a list drawn from {list(CAM_METHODS)}")
    if heights not in HEIGHTS:
        raise SigmaConfigError(f"sigma.logo_heights={heights!r}: use one of {list(HEIGHTS)}")
    return mode, cams, heights


def write_logos(data: SigmaSet, maps: dict[str, np.ndarray], classes: Sequence[str], heights: str, run_dir: Path) -> dict:
    """Class logos under run_dir/logos/sigma from out-of-fold maps ({method: [n, L]}, one row per row of
    `data`): <class>.png, all_classes.png and gradcam_profiles.npz (P and base counts, to redraw).
    Returns {"png": [paths], "heights": heights, "peaks": {class: {method: logo_peaks}}}."""
    x = one_hot(data.tokens)
    mats = {}
    for name in classes:
        rows = np.flatnonzero(data.label == data.classes.index(name))
        if rows.size:
            mats[name] = logo_matrices(x[rows], {m: g[rows] for m, g in maps.items()}, heights)
    blank_weak_maps(mats)
    out = RunDir(run_dir).logos / "sigma"
    with atomic_path(out / "gradcam_profiles.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **{f"{c}_{k}": np.asarray(v) for c, m in mats.items() for k, v in m.items()})
    positions = relative_positions(x.shape[2], data.upstream)
    peaks = {name: {m: logo_peaks(mat[m], positions) for m in maps} for name, mat in mats.items()}
    return {"png": [str(p) for p in draw_class_logos(mats, data.upstream, out)], "heights": heights, "peaks": peaks}


def _base(value) -> float | str:
    if str(value) == "bn":
        return "bn"
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise SigmaConfigError(f"sigma.kernel_base={value!r}: use bn or a number > 1") from err
