"""Binary classification metrics over whole splits: ROC AUC, PR AUC (average precision),
PR AUC at k-mer resolution (as in the TSS paper), LR+ at the F1-optimal threshold, and the
operating point (F1, LR+, precision, recall) at a threshold chosen elsewhere (the validation split's).

All functions take `labels` (0/1, shape [n]) and `scores` (float, shape [n]) as numpy arrays and
handle ties exactly (tied scores form one step of the curve), without sklearn.
"""

from __future__ import annotations

import numpy as np


def _check_scores(scores: np.ndarray) -> np.ndarray:
    """float64 [n]; a NaN score (a diverged model) cannot be ranked: one ValueError with the count,
    not curves that depend on row order."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    nan = int(np.isnan(scores).sum())
    if nan:
        raise ValueError(
            f"{nan} of {scores.size} scores are NaN (the model produced NaN: a diverged training run?); "
            "metrics need a score per position: lower task.lr or resume from an earlier checkpoint"
        )
    return scores


def _ranked_counts(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true/false positives at each distinct score threshold, highest first."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = _check_scores(scores)
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    if scores.size == 0:  # no scored position (a strand a short run never reached): empty curves
        return np.zeros(0), np.zeros(0), np.zeros(0)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    tp = np.cumsum(sorted_labels)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    return tp.astype(np.float64), fp.astype(np.float64), sorted_scores[last_of_tie]


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), starting at (0, 0)."""
    tp, fp, thr = _ranked_counts(labels, scores)
    n_pos, n_neg = tp[-1] if tp.size else 0.0, fp[-1] if fp.size else 0.0
    tpr = np.r_[0.0, tp / n_pos] if n_pos else np.r_[0.0, np.zeros_like(tp)]
    fpr = np.r_[0.0, fp / n_neg] if n_neg else np.r_[0.0, np.zeros_like(fp)]
    return fpr, tpr, np.r_[np.inf, thr]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids; ties count one half). NaN if one class is absent."""
    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) at each distinct threshold, highest score first."""
    tp, fp, thr = _ranked_counts(labels, scores)
    n_pos = tp[-1] if tp.size else 0.0
    precision = tp / np.maximum(tp + fp, 1.0)
    recall = tp / n_pos if n_pos else np.zeros_like(tp)
    return precision, recall, thr


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """PR AUC as average precision: sum over thresholds of (R_n - R_{n-1}) P_n. NaN without positives."""
    precision, recall, _ = pr_curve(labels, scores)
    if recall.size == 0 or recall[-1] == 0:
        return float("nan")
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def kmer_pool(labels: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pool consecutive, non-overlapping k-mers of one contiguous track (shape [n]):
    score = mean output over the k-mer, label = 1 if the k-mer holds a TSS. Tail shorter than k is kept."""
    labels = np.asarray(labels).astype(np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n = labels.size
    starts = np.arange(0, n, k)
    lengths = np.minimum(k, n - starts)
    pooled_scores = np.add.reduceat(scores, starts) / lengths
    pooled_labels = np.add.reduceat(labels, starts) > 0
    return pooled_labels, pooled_scores


def lr_plus_at_best_f1(labels: np.ndarray, scores: np.ndarray) -> dict:
    """Positive likelihood ratio TPR / FPR at the threshold that maximises F1, with that F1 and threshold."""
    tp, fp, thr = _ranked_counts(labels, scores)
    if tp.size == 0 or tp[-1] == 0:
        return {"lr_plus": float("nan"), "f1": float("nan"), "threshold": float("nan")}
    n_pos, n_neg = tp[-1], fp[-1]
    precision = tp / (tp + fp)
    recall = tp / n_pos
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0.0)
    best = int(np.argmax(f1))
    fpr = fp[best] / n_neg if n_neg else 0.0
    lr = float("inf") if fpr == 0 else float(recall[best] / fpr)
    return {
        "lr_plus": lr,
        "f1": float(f1[best]),
        "threshold": float(thr[best]),
        "precision": float(precision[best]),
        "recall": float(recall[best]),
    }


def operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Calls = scores >= `threshold` (chosen on another split): their count, precision, recall, F1 and
    LR+ = TPR / FPR (inf without false positives, NaN without positives or negatives)."""
    labels = np.asarray(labels).astype(bool).ravel()
    called = _check_scores(scores) >= threshold
    if labels.shape != called.shape:
        raise ValueError(f"labels {labels.shape} and scores {called.shape} differ in shape")
    tp = float(np.sum(called & labels))
    fp = float(np.sum(called & ~labels))
    n_pos, n_neg = float(labels.sum()), float(labels.size - labels.sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / n_pos if n_pos else float("nan")
    f1 = 2 * tp / (2 * tp + fp + (n_pos - tp)) if n_pos + fp else float("nan")
    if not n_pos or not n_neg:
        lr = float("nan")
    else:
        lr = float("inf") if fp == 0 and tp > 0 else (float("nan") if fp == 0 else (tp / n_pos) / (fp / n_neg))
    return {"threshold": float(threshold), "calls": int(tp + fp), "precision": precision, "recall": recall, "f1": f1, "lr_plus": lr}


def summarise(
    labels: np.ndarray,
    scores: np.ndarray,
    kmer_tracks: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ks: tuple[int, ...] = (4, 10),
    threshold: float | None = None,
) -> dict:
    """All split metrics for one set of positions. `kmer_tracks` are the contiguous (labels, scores)
    runs used for k-mer pooling (k-mers never straddle two runs); defaults to the whole input as one run.
    `threshold` (a probability chosen on the validation split) adds `at_threshold`, the operating point
    there; `lr_plus`/`f1_best` are at this split's own F1-optimal threshold (an oracle on a test split)."""
    out = {
        "n_positions": int(np.size(labels)),
        "n_positives": int(np.sum(labels)),
        "roc_auc": roc_auc(labels, scores),
        "pr_auc": average_precision(labels, scores),
    }
    runs = kmer_tracks if kmer_tracks is not None else [(labels, scores)]
    for k in ks:
        pooled = [kmer_pool(y, s, k) for y, s in runs]
        ky = np.concatenate([p[0] for p in pooled]) if pooled else np.zeros(0)
        ks_ = np.concatenate([p[1] for p in pooled]) if pooled else np.zeros(0)
        out[f"pr_auc_k{k}"] = average_precision(ky, ks_)
    lr = lr_plus_at_best_f1(labels, scores)
    out.update({"lr_plus": lr["lr_plus"], "f1_best": lr["f1"], "threshold_f1": lr["threshold"]})
    if threshold is not None and np.isfinite(threshold):
        out["at_threshold"] = operating_point(labels, scores, float(threshold))
    return out
