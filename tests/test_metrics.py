"""Metrics against values worked out by hand (and, where installed, scikit-learn)."""

import numpy as np
import pytest

from genometracks.training import metrics


def test_roc_auc_hand_computed():
    # pairs (pos, neg): scores pos {0.9, 0.4}, neg {0.5, 0.1}: 3 of 4 pairs ordered → 0.75
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.5, 0.4, 0.1])
    assert metrics.roc_auc(y, s) == pytest.approx(0.75)


def test_roc_auc_ties_count_half():
    y = np.array([1, 0])
    s = np.array([0.5, 0.5])
    assert metrics.roc_auc(y, s) == pytest.approx(0.5)


def test_average_precision_hand_computed():
    # ranking: P N P N → precision at hits 1/1 and 2/3 → AP = 0.5*1 + 0.5*2/3
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.5, 0.4, 0.1])
    assert metrics.average_precision(y, s) == pytest.approx(0.5 + 1 / 3)


def test_perfect_and_reversed():
    y = np.array([0, 0, 1, 1, 0])
    s = np.array([0.1, 0.2, 0.9, 0.8, 0.3])
    assert metrics.roc_auc(y, s) == 1.0 and metrics.average_precision(y, s) == 1.0
    assert metrics.roc_auc(y, -s) == 0.0


def test_kmer_pool_means_and_labels():
    y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    s = np.arange(10, dtype=float)
    ly, ls = metrics.kmer_pool(y, s, 4)
    assert ly.tolist() == [True, False, False]
    assert ls.tolist() == [1.5, 5.5, 8.5]


def test_lr_plus_at_best_f1():
    # threshold at 0.8 keeps 2 TP, 0 FP → F1 = 1 → LR+ infinite; add one FP above to make it finite
    y = np.array([1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.85, 0.1, 0.2, 0.3])
    out = metrics.lr_plus_at_best_f1(y, s)
    # best F1: top 3 (2 TP, 1 FP): P=2/3 R=1 F1=0.8; TPR=1, FPR=1/4 → LR+=4
    assert out["f1"] == pytest.approx(0.8)
    assert out["lr_plus"] == pytest.approx(4.0)


def test_operating_point_at_a_threshold_chosen_elsewhere():
    # scores >= 0.5 are calls: 0.9 (TP), 0.8 (FP), 0.5 (TP, on the threshold); 0.4 (TP) is missed
    y = np.array([1, 0, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    out = metrics.operating_point(y, s, 0.5)
    assert out["calls"] == 3 and out["threshold"] == 0.5
    assert out["precision"] == pytest.approx(2 / 3) and out["recall"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["lr_plus"] == pytest.approx((2 / 3) / (1 / 5))  # TPR 2/3, FPR 1/5
    # above every score: no calls, F1 0, LR+ undefined; only true calls: LR+ infinite
    none = metrics.operating_point(y, s, 0.95)
    assert none["calls"] == 0 and none["f1"] == 0.0 and np.isnan(none["lr_plus"]) and np.isnan(none["precision"])
    assert metrics.operating_point(y, s, 0.85)["lr_plus"] == float("inf")


def test_summarise_reports_the_operating_point_only_for_a_given_threshold():
    y = np.array([1, 0, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    assert "at_threshold" not in metrics.summarise(y, s)
    out = metrics.summarise(y, s, threshold=0.5)
    assert out["at_threshold"]["f1"] == pytest.approx(2 / 3)
    assert out["f1_best"] == pytest.approx(6 / 7)  # this split's own optimum (top 4: 3 TP, 1 FP) is higher
    assert "at_threshold" not in metrics.summarise(y, s, threshold=float("nan"))


def test_split_metrics_uses_the_given_threshold_on_every_strand():
    from genometracks.training.task import split_metrics

    # rows (prob, label, contig, strand, position); '+' holds the sharper separation
    probs = np.array([0.9, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    labels = np.array([1, 0, 1, 1, 0, 0, 0, 0])
    rows = np.column_stack([probs, labels, np.zeros(8), np.r_[np.zeros(4), np.ones(4)], np.r_[np.arange(4), np.arange(4)]])
    given = split_metrics(rows, threshold=0.5)
    for part in ("both", "+", "-"):
        assert given[part]["at_threshold"]["threshold"] == 0.5 and given[part]["at_threshold"]["chosen_on"] == "validation"
    assert given["+"]["at_threshold"]["calls"] == 3 and given["-"]["at_threshold"]["calls"] == 0
    own = split_metrics(rows)
    assert own["both"]["at_threshold"]["chosen_on"] == "this split"
    assert own["both"]["at_threshold"]["threshold"] == own["both"]["threshold_f1"] == 0.4
    assert own["both"]["at_threshold"]["f1"] == pytest.approx(own["both"]["f1_best"])


@pytest.mark.ci_may_skip  # an optional cross-check; scikit-learn is not a dependency
def test_against_sklearn_when_available():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.05
    s = np.round(rng.random(2000) + y * 0.5, 2)  # ties included
    assert metrics.roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert metrics.average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s), abs=1e-12)


def test_a_strand_without_scored_positions_gives_nan_metrics_not_an_error():
    # debug=fast_dev_run on a small genome can score one strand only
    from genometracks.training.task import split_metrics

    rows = np.array([[0.1, 0, 0, 0, 5], [0.9, 1, 0, 0, 6]], dtype=float)  # '+' rows only
    out = split_metrics(rows)
    assert out["+"]["n_positions"] == 2 and out["+"]["roc_auc"] == 1.0
    assert out["-"]["n_positions"] == 0 and all(np.isnan(out["-"][k]) for k in ("roc_auc", "pr_auc", "pr_auc_k4", "threshold_f1"))


@pytest.mark.parametrize("order", [[1, 1, 0, 0], [0, 0, 1, 1]])
def test_nan_scores_are_refused_not_ranked_by_row_order(order):
    # NaN scores were each their own threshold in input order: ROC 1.0 one way, 0.0 the other
    labels, scores = np.array(order), np.full(4, np.nan)
    for metric in (metrics.roc_auc, metrics.average_precision):
        with pytest.raises(ValueError, match=r"4 of 4 scores are NaN \(the model produced NaN"):
            metric(labels, scores)
    with pytest.raises(ValueError, match="1 of 4 scores are NaN"):
        metrics.operating_point(labels, np.array([0.1, np.nan, 0.3, 0.4]), 0.2)
