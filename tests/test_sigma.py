"""Sigma-class promoters: exact windows, PromoterSet/iPromoter readers, negatives, folds, Grad-CAM
maths on a hand-set model, the CNN on planted motifs, kernel PWMs, metrics, the bigBed track."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import Genome, decode, encode
from genometracks.sigma.data import (
    SYNTHETIC_MOTIFS,
    SigmaDataError,
    SigmaSet,
    extract_windows,
    ipromoter_set,
    one_hot,
    read_promoterset,
    regulondb_set,
    sample_negatives,
    synthetic_set,
)
from genometracks.sigma.evaluate import SigmaConfigError, TrainSettings, class_metrics, fit, stratified_folds
from genometracks.sigma.gradcam import (
    cam_maps,
    class_logo_matrices,
    class_profile,
    effective_counts,
    grad_cam,
    information_heights,
    logo_peaks,
    small_sample_bits,
)
from genometracks.sigma.model import SigmaCNN, predict_proba, save_model
from tests.conftest import ECOLI, compose, needs_ecoli
from tests.kent import assert_hub_clean

#            0         1         2         3         4
#            0123456789012345678901234567890123456789012345
GENOME = "ACGTTGCAAGGCTTACCGATAGCTAGGATCCATGCAATCGGCTAAT"
SMALL = dict(
    model={"channels": [32, 32, 32], "kernel_sizes": [9, 7, 5], "dropout": 0.2}, trainer={"max_epochs": 20}, batch_size=32, lr=3e-3
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _rc(text: str) -> str:
    return text[::-1].translate(str.maketrans("ACGT", "TGCA"))


def _sites(chrom, pos, strand, name=None) -> SiteSet:
    return SiteSet(np.array([chrom] * len(pos), dtype=object), pos, strand, name=name)


# ------------------------------------------------------------------------------------------ windows
def test_windows_are_exact_and_strand_aware():
    genome = Genome.from_sequences({"c": GENOME})
    sites = _sites("c", [10, 20, 30], ["+", "-", "+"])
    got = [decode(w) for w in extract_windows(genome, sites, upstream=6, downstream=0)]
    assert got == [GENOME[4:10], _rc(GENOME[21:27]), GENOME[24:30]]  # '-': revcomp(genome[p+1:p+7])
    got = [decode(w) for w in extract_windows(genome, sites, upstream=3, downstream=2)]
    # '+' p=10: genome[7:10] + genome[10:12]; '-' p=20: revcomp(genome[21:24]) = AGC, then +1 = comp(A),
    # +2 = comp(T); '+' p=30: genome[27:30] + genome[30:32]
    assert got == ["AAG" + "GC", "AGC" + "TA", "ATC" + "CA"]


def test_windows_wrap_on_circular_contigs_and_raise_on_linear_ones():
    circular = Genome.from_sequences({"c": GENOME}, circular=["c"])
    sites = _sites("c", [2, 44], ["+", "-"])
    got = [decode(w) for w in extract_windows(circular, sites, upstream=5)]
    assert got == [GENOME[-3:] + GENOME[:2], _rc(GENOME[45:] + GENOME[:4])]
    with pytest.raises(SigmaDataError, match="past the end of linear contig c"):
        extract_windows(Genome.from_sequences({"c": GENOME}), sites, upstream=5)


# ------------------------------------------------------------------------------------- PromoterSet
def _promoterset(path, genome_text: str) -> None:
    rows = [
        ("P1", "a", "forward", 11, "Sigma70", "x", "ev", "Strong"),  # kept, pos 10 '+'
        ("P2", "b", "reverse", 21, "Sigma24", "x", "ev", "Confirmed"),  # kept, pos 20 '-'
        ("P3", "c", "forward", 31, "Sigma70", "x", "ev", "Weak"),  # weak: only avoided
        ("P4", "d", "forward", 35, "Sigma70, Sigma38", "", "ev", "Strong"),  # two sigmas
        ("P5", "e", "reverse", 0, "Sigma32", "", "ev", "Strong"),  # no mapped +1
        ("P6", "f", "reverse", 40, "unknown", "", "ev", "Strong"),
    ]
    text = "# RegulonDB\n# (1) id\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)
    path.write_text(text)


def test_promoterset_keeps_strong_single_sigma_rows_and_reextracts(tmp_path):
    path = tmp_path / "PromoterSet.txt"
    _promoterset(path, GENOME)
    labelled, every = read_promoterset(path, "c")
    assert list(labelled.name) == ["P1", "P2"] and list(labelled.pos) == [10, 20]
    assert list(labelled.strand) == ["+", "-"] and list(labelled.meta["sigma"]) == ["sigma70", "sigma24"]
    assert list(every.pos) == [10, 20, 30, 34, 39]
    data = regulondb_set(Genome.from_sequences({"c": GENOME}), path, "c", upstream=4, classes=("sigma24", "sigma70"))
    assert data.classes == ("sigma24", "sigma70") and list(data.label) == [1, 0]
    assert [decode(w) for w in data.tokens] == [GENOME[6:10], _rc(GENOME[21:25])]


def test_promoterset_drops_a_tss_of_two_classes_and_keeps_one_row_per_tss(tmp_path):
    # PromoterSet lists a promoter of two sigma factors as two rows at one +1: the sigma paper keeps
    # promoters of one class only (E. coli: 105 such TSSs, 83 of the 189 sigma38 rows were sigma70 copies)
    rows = [
        ("A1", "a", "forward", 11, "Sigma70", "x", "ev", "Strong"),
        ("A2", "a", "forward", 11, "Sigma38", "x", "ev", "Strong"),  # same +1 and strand, another class: both go
        ("B1", "b", "reverse", 21, "Sigma24", "x", "ev", "Weak"),  # weak, but still names a second class ...
        ("B2", "b", "reverse", 21, "Sigma70", "x", "ev", "Strong"),  # ... so this one goes too
        ("C1", "c", "forward", 21, "Sigma32", "x", "ev", "Strong"),  # same +1, the other strand: kept
        ("D1", "d", "forward", 31, "Sigma70", "x", "ev", "Weak"),  # a weak first row of one class ...
        ("D2", "d", "forward", 31, "Sigma70", "x", "ev", "Strong"),  # ... does not hide the strong one
        ("D3", "d", "forward", 31, "Sigma70", "x", "ev", "Confirmed"),  # a repeat of D2: one row per TSS
        ("E1", "e", "forward", 36, "unknown", "x", "ev", "Strong"),
        ("E2", "e", "forward", 36, "Sigma54", "x", "ev", "Strong"),  # 'unknown' is no second class
        ("F1", "f", "forward", 41, "Sigma70", "x", "ev", "Strong"),  # a row naming two factors at its +1 ...
        ("F2", "f", "forward", 41, "Sigma70, Sigma38", "x", "ev", "Weak"),  # ... takes it out too
    ]
    path = tmp_path / "PromoterSet.txt"
    path.write_text("# RegulonDB\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    labelled, every = read_promoterset(path, "c")
    assert list(labelled.name) == ["C1", "D2", "E2"] and list(labelled.meta["sigma"]) == ["sigma32", "sigma70", "sigma54"]
    assert len(every) == len(rows)  # negatives still avoid every row


def test_promoterset_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("# header\nP1\ta\tforward\t11\tSigma70\tx\tev\tStrong\nP2\ta\tsideways\t12\tSigma70\tx\tev\tStrong\n")
    with pytest.raises(SigmaDataError, match=r"bad.txt: line 3: strand 'sideways'"):
        read_promoterset(path, "c")


def test_negatives_keep_their_distance_and_are_reproducible():
    rng = np.random.default_rng(5)
    genome = Genome.from_sequences({"c": decode(rng.integers(0, 4, 3000))}, circular=["c"])
    avoid = _sites("c", [5, 1500, 2990], ["+", "-", "+"])
    a = sample_negatives(genome, avoid, 300, upstream=10, downstream=0, min_distance=100, seed=3)
    b = sample_negatives(genome, avoid, 300, upstream=10, downstream=0, min_distance=100, seed=3)
    assert np.array_equal(a.pos, b.pos) and np.array_equal(a.strand, b.strand)
    d = np.abs(a.pos[:, None] - avoid.pos[None, :])
    assert np.minimum(d, 3000 - d).min() > 100  # the zone round 2990 wraps over the origin
    assert set(a.strand) == {"+", "-"} and len(np.unique(a.pos * 2 + (a.strand == "-"))) == 300
    with pytest.raises(SigmaDataError, match="min_distance"):
        sample_negatives(genome, avoid, 6000, 10, 0, 100, 3)


def test_ipromoter_fasta_windows(tmp_path):
    seq = "".join("ACGT"[i % 4] for i in range(60)) + "G" + "T" * 20  # +1 = G at index 60
    for name in ("sigma24", "sigma70", "nonPromoter"):
        (tmp_path / f"{name}.fasta").write_text(f">{name}_1\n{seq.lower()}\n>{name}_2\n{seq}\n")
    data = ipromoter_set(tmp_path, upstream=4, downstream=2, classes=("sigma24", "sigma70"))
    assert data.classes == ("sigma24", "sigma70", "nonpromoter") and list(data.label) == [0, 0, 1, 1, 2, 2]
    assert {decode(w) for w in data.tokens} == {"ACGT" + "GT"}
    (tmp_path / "sigma24.fasta").write_text(">short\nACGT\n")
    with pytest.raises(SigmaDataError, match=r"sigma24.fasta: record 1 is 4 nt"):
        ipromoter_set(tmp_path, classes=("sigma24",))


def test_stratified_folds_balance_every_class():
    labels = np.repeat([0, 1, 2], [23, 10, 7])
    folds = stratified_folds(labels, 5, seed=1)
    for c, n in ((0, 23), (1, 10), (2, 7)):
        per_fold = np.bincount(folds[labels == c], minlength=5)
        assert per_fold.sum() == n and per_fold.max() - per_fold.min() <= 1
    with pytest.raises(SigmaConfigError, match="fewer than sigma.folds=8"):
        stratified_folds(labels, 8, seed=1)


def test_overlapping_windows_share_a_fold_and_the_classes_stay_balanced():
    # 85 same-strand E. coli TSS pairs lie 1-20 nt apart (windows sharing >= 40 of 60 nt); 46 of the 57
    # same-label pairs were split across folds, a held-out window scored by a model trained on most of it
    from genometracks.genome.intervals import SiteSet
    from genometracks.sigma.data import SigmaSet
    from genometracks.sigma.evaluate import window_groups

    pos = np.array([100, 130, 170, 100, 500, 900, 905, 2000])  # windows of 50 nt
    strand = np.array(["+", "+", "+", "-", "+", "+", "+", "+"])
    chrom = np.array(["a", "a", "a", "a", "a", "a", "a", "b"], dtype=object)
    tokens = np.random.default_rng(0).integers(0, 4, (8, 50)).astype(np.uint8)  # unrelated sequences
    data = SigmaSet(tokens, np.zeros(8, np.int64), ("x",), 40, SiteSet(chrom, pos, strand, source="t"))
    groups = window_groups(data)
    # 100-130-170 chain on '+' (30 and 40 nt apart); 100 '-' covers forward [91, 141), inside the
    # '+' window [60, 110): the same bases read from the other strand, one group; 500 alone,
    # 900-905, chrom b alone
    assert [len({groups[i] for i in members}) for members in ([0, 1, 2, 3], [5, 6])] == [1, 1]
    assert len(set(groups)) == 4 and groups[4] != groups[0] and groups[7] != groups[6]
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], [230, 100, 70])
    many = rng.integers(0, 150, labels.size)  # 150 groups of mixed classes
    folds = stratified_folds(labels, 5, seed=1, groups=many)
    assert all(len(set(folds[many == g])) == 1 for g in np.unique(many))
    for c, n in ((0, 230), (1, 100), (2, 70)):
        per_fold = np.bincount(folds[labels == c], minlength=5)
        assert per_fold.sum() == n and per_fold.max() - per_fold.min() <= 0.25 * n / 5, (c, per_fold)


def test_windows_sharing_sequence_share_a_group_with_or_without_genomic_sites():
    # iPromoter-2L records (no sites) are often shifted copies of one another, and RegulonDB holds
    # promoters with identical windows far apart (rRNA operons): both leaked across folds
    from genometracks.genome.intervals import SiteSet
    from genometracks.sigma.data import SigmaSet
    from genometracks.sigma.evaluate import window_groups

    rng = np.random.default_rng(1)
    genome = rng.integers(0, 4, 400).astype(np.uint8)
    rc = lambda t: (3 - t)[::-1]  # noqa: E731
    rows = [
        genome[0:60],  # 0
        genome[25:85],  # 1: shares 35 nt with 0 -> linked
        genome[31:91],  # 2: shares 29 nt with 0 but 54 with 1 -> linked through 1
        genome[200:260],  # 3
        rc(genome[220:280]),  # 4: shares 40 nt with 3, read from the other strand -> linked
        genome[300:360],  # 5: shares nothing
        genome[340:400],  # 6: shares 20 nt with 5 (< 30) -> alone
    ]
    tokens = np.stack(rows)
    tokens[6, 35] = 4  # an N inside: k-mers holding it are skipped
    groups = window_groups(SigmaSet(tokens, np.zeros(7, np.int64), ("x",), 60))
    assert groups[0] == groups[1] == groups[2] and groups[3] == groups[4]
    assert len({groups[0], groups[3], groups[5], groups[6]}) == 4
    # genomic sites far apart with identical windows (a repeat): one group, though they do not overlap
    same = np.stack([genome[0:60], genome[0:60], genome[100:160]])
    sites = SiteSet(np.array(["a", "a", "a"], dtype=object), np.array([60, 5000, 9000]), np.array(["+", "+", "+"]), source="t")
    groups = window_groups(SigmaSet(same, np.zeros(3, np.int64), ("x",), 60, sites))
    assert groups[0] == groups[1] != groups[2]


# ------------------------------------------------------------------------------------------ Grad-CAM
def _hand_model() -> SigmaCNN:
    """1 channel, width-1 kernels: the last map is 1 where the base is A; output 0 reads position 2
    with weight 3, output 1 every position with weight -1. Batch norm is the identity (eval, eps 0)."""
    model = SigmaCNN(5, 2, channels=(1, 1, 1), kernel_sizes=(1, 1, 1), dropout=0.0)
    with torch.no_grad():
        for conv in model.convs:
            conv.weight.zero_()
            conv.weight[0, 0, 0] = 1.0
            conv.bias.zero_()
        for norm in model.norms:
            norm.eps = 0.0
        model.head.weight.copy_(torch.tensor([[0, 0, 3.0, 0, 0], [-1.0] * 5]))
        model.head.bias.zero_()
    return model


def test_hirescam_is_what_each_position_adds_to_the_logit_through_the_last_batch_norm():
    """The map was taken before the last batch norm, so HiResCAM left out its shift: all-A input, last norm
    y = (A - 0.5) · 2 + 0.25 = 1.25 per position, head weights 1: the logit is 12.5 over 10 positions,
    1.25 each (the map read 1.0 each, summing to 10)."""
    model = SigmaCNN(10, 1, channels=(1, 1, 1), kernel_sizes=(1, 1, 1), dropout=0.0)
    with torch.no_grad():
        for conv in model.convs:
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        for norm in model.norms:
            norm.eps = 0.0
        last = model.norms[-1]
        last.running_mean.fill_(0.5)
        last.weight.fill_(2.0)
        last.bias.fill_(0.25)
        model.head.weight.fill_(1.0)
        model.head.bias.fill_(-3.0)
    x = one_hot(encode("A" * 10)[None])
    maps = cam_maps(model, x, 0, ("hirescam",))["hirescam"]
    logit = float(model.eval()(torch.from_numpy(x.astype(np.float32)))[0, 0])
    assert np.allclose(maps, 1.25) and maps.sum() == pytest.approx(logit + 3.0)
    # a random trained-like model: before the ReLU, the map sums to the logit less the head's bias
    torch.manual_seed(0)
    model = SigmaCNN(20, 3, channels=(4, 3), kernel_sizes=(5, 3), dropout=0.0)
    with torch.no_grad():
        for norm in model.norms:
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
            norm.weight.uniform_(0.5, 2)
            norm.bias.uniform_(-1, 1)
    model.eval()
    xs = torch.from_numpy(one_hot(np.random.default_rng(0).integers(0, 4, size=(6, 20))).astype(np.float32))
    logits, act = model.forward_with_map(xs)
    (grad,) = torch.autograd.grad(logits[:, 1].sum(), act)
    per_position = (grad * act).sum(dim=1)  # [6, 20]
    assert torch.allclose(per_position.sum(dim=1) + model.head.bias[1], logits[:, 1], atol=1e-5)


def test_grad_cam_on_a_hand_set_model():
    x = one_hot(encode("AACAT")[None])
    # alpha = mean_l dy0/dA[l] = 3/5; g = ReLU(0.6 * A) with A = 1 at the A's
    assert np.allclose(grad_cam(_hand_model(), x, 0), [[0.6, 0.6, 0, 0.6, 0]])
    assert np.allclose(grad_cam(_hand_model(), x, 1), 0)  # alpha = -1: ReLU keeps nothing


def test_hirescam_keeps_the_output_layers_position_on_a_hand_set_model():
    x = one_hot(encode("AACAT" + "AAAGT").reshape(2, 5))
    maps = cam_maps(_hand_model(), x, 0)
    # dy0/dA[l] = 3 at l = 2 only: HiResCAM g = ReLU(3 · A[2]) there; Grad-CAM spreads 0.6 over every A
    assert np.allclose(maps["hirescam"], [[0, 0, 0, 0, 0], [0, 0, 3, 0, 0]])
    assert np.allclose(maps["gradcam"], [[0.6, 0.6, 0, 0.6, 0], [0.6, 0.6, 0.6, 0, 0]])
    assert np.allclose(cam_maps(_hand_model(), x, [1, 0], ("hirescam",))["hirescam"], [[0] * 5, [0, 0, 3, 0, 0]])
    with pytest.raises(ValueError, match="'saliency' is not one of"):
        cam_maps(_hand_model(), x, 0, ("saliency",))


def test_profile_and_information_heights_by_hand():
    x = one_hot(encode("ACGA" + "ACTT").reshape(2, 4))
    g = np.array([[1.0, 2, 0, 1], [3, 0, 0, 1]])
    p = class_profile(x, g)  # P[l, a] = sum of g over sequences with base a at l
    assert np.allclose(p, [[4, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]])
    heights = information_heights(p)
    # columns: 2 bits all A (mass 4 = max); 2 bits all C at mass 2/4; empty; 1 bit split A/T at 2/4
    assert np.allclose(heights, [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0.25, 0, 0, 0.25]])
    assert np.allclose(information_heights(p, keep_mass=False)[1], [0, 2, 0, 0])
    # effective sequences per column: 16 / 10, 4 / 4, none, 4 / 2
    n_eff = effective_counts(g)
    assert np.allclose(n_eff, [1.6, 1, 0, 2])
    e = 3 / (2 * np.log(2))  # 2.164 bits for one sequence
    assert np.allclose(small_sample_bits(np.array([1.0, 2, 0])), [e, e / 2, np.inf])
    corrected = information_heights(p, keep_mass=False, n_eff=n_eff)
    assert np.allclose(corrected, [[2 - e / 1.6, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_the_frequency_logo_gets_the_small_sample_correction_of_the_map_rows():
    # a column of random bases over n = 10 sequences read 0.245 bits (sigma28's frequency row was
    # mostly such noise, 20.5 bits in all) while the map rows below it subtracted e(n)
    from genometracks.sigma.gradcam import logo_matrices

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 4, (10, 30)).astype(np.uint8)
    tokens[:, 5] = 2  # one column all G: 2 bits less e(10)
    tokens[3, 9] = 4  # an N: that column counts 9 sequences
    x = one_hot(tokens)
    freq = logo_matrices(x, {})["frequency"]
    e = 3 / (2 * np.log(2))
    assert freq[5, 2] == pytest.approx(2 - e / 10) and freq[5].sum() == pytest.approx(2 - e / 10)
    counts = x.sum(axis=0).T
    raw = information_heights(counts, False)
    assert np.allclose(freq.sum(axis=1), np.maximum(raw.sum(axis=1) - e / counts.sum(axis=1), 0))
    assert counts[9].sum() == 9


def test_logo_peaks_by_hand():
    heights = np.zeros((20, 4))
    heights[2:8, 3] = 0.5  # T × 6 at columns 2..7: 3 bits
    heights[8:10, 1] = 1.0  # C × 2 at columns 8..9
    heights[14:20, 0] = 0.25  # A × 6 at columns 14..19: 1.5 bits
    positions = np.arange(-20, 0)
    peaks = logo_peaks(heights, positions, width=6, n=3)
    assert peaks[0] == {"start": -16, "end": -11, "consensus": "TTTTCC", "bits": 4.0}  # columns 4..9
    assert peaks[1] == {"start": -6, "end": -1, "consensus": "AAAAAA", "bits": 1.5}  # first clear of it
    assert len(peaks) == 2  # nothing else fits beside them
    assert logo_peaks(np.zeros((20, 4)), positions) == []
    assert logo_peaks(heights[:4], positions[:4]) == []


# ------------------------------------------------------------------------------- planted motifs
@pytest.mark.slow
def test_cnn_separates_planted_classes_and_logos_show_the_motifs():
    data = synthetic_set(n_per_class=30, length=30, n_nonpromoter=180, seed=1)
    x = one_hot(data.tokens)
    promoters = np.flatnonzero(data.label < 6)
    fold = stratified_folds(data.label[promoters], 3, seed=0)
    train, test = promoters[fold != 0], promoters[fold == 0]
    model = fit(x[train], data.label[train], 6, TrainSettings(**SMALL), seed=0)
    assert (predict_proba(model, x[test]).argmax(axis=1) == data.label[test]).mean() >= 0.95

    settings = TrainSettings(**SMALL)
    models = {c: (fit(x, (data.label == i).astype(np.int64), 1, settings, seed=11 + i), 0) for i, c in enumerate(SYNTHETIC_MOTIFS)}
    # HiResCAM logos with the paper's heights; Grad-CAM's (blurred over the last layer's receptive
    # field) weighted by map mass
    for method, heights in (("hirescam", "information"), ("gradcam", "information_x_mass")):
        mats = class_logo_matrices(data, models, (method,), heights)
        for name, (motif, col) in SYNTHETIC_MOTIFS.items():
            logo = mats[name][method]
            column_bits = logo.sum(axis=1)
            assert column_bits[col - 1 : col + 7].sum() >= 0.6 * column_bits.sum(), (method, name)  # planted ±1
            best = logo_peaks(logo, np.arange(logo.shape[0]), n=1)[0]
            assert abs(best["start"] - col) <= 2, (method, name, best)
            tall = [i for i in range(6) if column_bits[col + i] > 0.5]
            assert tall and all("ACGT"[logo[col + i].argmax()] == motif[i] for i in tall), (method, name)
            assert "".join("ACGT"[k] for k in mats[name]["frequency"][col : col + 6].argmax(axis=1)) == motif
        if method == "hirescam":  # exact position and letters
            assert all(
                logo_peaks(mats[n][method], np.arange(30), n=1)[0]["start"] == col
                and logo_peaks(mats[n][method], np.arange(30), n=1)[0]["consensus"] == motif
                for n, (motif, col) in SYNTHETIC_MOTIFS.items()
            )


def test_cross_validated_maps_come_from_the_fold_that_held_the_row_out(monkeypatch):
    import genometracks.sigma.evaluate as evaluate
    import genometracks.sigma.gradcam as gradcam

    data = synthetic_set(n_per_class=6, length=30, n_nonpromoter=12, seed=3, motifs={"sigma24": ("GAACTT", 2), "sigma70": ("TATAAT", 20)})
    fitted, mapped = {}, []
    real_fit, real_maps = evaluate.fit, gradcam.cam_maps

    alive = []  # keep every fitted model, so that no id() is reused by a later one

    def recording_fit(x, y, n_outputs, settings, seed):
        model = real_fit(x, y, n_outputs, settings, seed)
        fitted[id(model)] = {row.tobytes() for row in x}
        alive.append(model)
        return model

    def recording_maps(model, x, target, methods=gradcam.CAM_METHODS, batch_size=256):
        mapped.append((id(model), [row.tobytes() for row in x], np.broadcast_to(target, (len(x),)).copy()))
        return real_maps(model, x, target, methods, batch_size)

    monkeypatch.setattr(evaluate, "fit", recording_fit)
    monkeypatch.setattr(gradcam, "cam_maps", recording_maps)
    settings = TrainSettings(
        model={"channels": [4, 4, 4], "kernel_sizes": [3, 3, 3], "dropout": 0.0}, trainer={"max_epochs": 1}, batch_size=8
    )
    for mode in ("softmax", "ovr"):
        mapped.clear()
        scored, _, _, maps = evaluate.cross_validate(data, mode, settings, 3, 0, cams=("hirescam", "gradcam"))
        assert set(maps) == {"hirescam", "gradcam"} and maps["hirescam"].shape == (len(scored), 30)
        rows_mapped = [row for _, rows, _ in mapped for row in rows]
        promoters = [r.tobytes() for r in one_hot(data.tokens[data.label < 2])]
        assert sorted(rows_mapped) == sorted(promoters)  # every promoter once, no non-promoter
        for model, rows, target in mapped:
            assert not set(rows) & fitted[model], mode  # never mapped by a model that saw it
            if mode == "softmax":  # the class's own logit
                labels = {r.tobytes(): lab for r, lab in zip(one_hot(data.tokens), data.label)}
                assert all(labels[r] == t for r, t in zip(rows, target))
        if mode == "ovr":
            assert not maps["hirescam"][scored.label == 2].any()  # non-promoters stay 0


@pytest.mark.parametrize("widths", [(8, 6, 4), (9, 0, 5)])
def test_even_or_empty_kernel_widths_are_refused(widths):
    # 'same' padding of an even kernel pads one side more: every Grad-CAM column read 1.5 nt downstream
    from genometracks.sigma.model import SigmaModelError

    with pytest.raises(SigmaModelError, match=r"model.kernel_sizes .* is not a positive odd width"):
        SigmaCNN(20, 3, kernel_sizes=widths)


# ------------------------------------------------------------------------------------------ kernels
@pytest.mark.slow
def test_kernel_pwms_are_exact_and_written_as_meme(tmp_path):
    from genometracks.interpret.motifs import Motif, read_meme, write_meme
    from genometracks.sigma.kernels import export_kernels, kernel_motifs

    torch.manual_seed(0)
    model = SigmaCNN(12, 3, channels=(4, 4, 4), kernel_sizes=(5, 3, 3))
    tokens = encode("ACGTTGCAAGGC")
    conv_out = model.convs[0](torch.from_numpy(one_hot(tokens[None])))[0].detach().numpy()  # [4, 12]
    for c, motif in enumerate(kernel_motifs(model, base=2.0)):
        window = tokens[3:8]  # "same" padding 2: output 5 reads input 3..7
        log_p = np.log2(motif.probabilities[np.arange(5), window]).sum()
        assert np.isclose(conv_out[c, 5], motif.meta["constant"] + log_p, atol=1e-5)
    refs = tmp_path / "refs"
    write_meme([Motif("boxA", np.eye(4)[[0, 0, 3, 3, 0]] * 0.9 + 0.025)], refs / "ref.meme")
    out = export_kernels(model, tmp_path / "run", motif_dir=refs, base=2.0)
    back = read_meme(out["meme"])
    assert [m.name for m in back] == [f"sigma_cnn_k{c}" for c in range(4)]
    assert np.allclose(back[1].probabilities, kernel_motifs(model, 2.0)[1].probabilities, atol=1e-6)
    assert [r["nearest_motif"] for r in out["rows"]] == ["boxA"] * 4
    # a match is named as for the attention heads: >= 4 bits and Tomtom q <= 0.05 (these random kernels carry less)
    assert all((r["match"] == "boxA") == (r["bits"] >= 4.0 and r["q_value"] <= 0.05) for r in out["rows"])
    assert [r["match"] for r in out["rows"]] == ["."] * 4 and max(r["bits"] for r in out["rows"]) < 4.0
    from genometracks.sigma.kernels import match_kernels

    loose = match_kernels(kernel_motifs(model, 2.0), read_meme(refs / "ref.meme"), min_information=0.0, match_qvalue=1.0)
    assert [r["match"] for r in loose] == ["boxA"] * 4
    # the q-value family holds the informative kernels only (a flat kernel's Tomtom p-value is not valid)
    assert all(np.isnan(r["q_value"]) and r["p_value"] < 1 for r in out["rows"])
    assert all(np.isfinite(r["q_value"]) for r in loose)
    with torch.no_grad():  # "bn" bases: exp(|gamma| / sqrt(var + eps)) per kernel
        model.norms[0].weight.copy_(torch.tensor([2.0, -1.0, 0.5, 3.0]))
        model.norms[0].running_var.copy_(torch.tensor([4.0, 1.0, 0.25, 9.0]))
        model.norms[0].eps = 0.0
    assert np.allclose([m.meta["base"] for m in kernel_motifs(model, "bn")], np.exp([1.0, 1.0, 1.0, 1.0]))


# ------------------------------------------------------------------------------------------ metrics
def test_class_metrics_by_hand():
    data = SigmaSet(np.zeros((6, 4), np.uint8), np.array([0, 0, 0, 1, 1, 2]), ("a", "b", "c"), 4)
    scores = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]])
    m = class_metrics(data, scores, np.zeros(6, dtype=int), "softmax", ["a", "b", "c"])
    # class a: called a at rows 0, 1, 4 → TP 2, FP 1, FN 1, TN 2
    assert (m["a"]["tp"], m["a"]["fp"], m["a"]["fn"], m["a"]["tn"]) == (2, 1, 1, 2)
    assert np.isclose(m["a"]["accuracy"], 4 / 6) and np.isclose(m["a"]["sensitivity"], 2 / 3)
    assert np.isclose(m["a"]["specificity"], 2 / 3)
    # AUC of a: positives .8 .6 .3 vs negatives .2 .5 .1 → pairs won 3 + 3 + 2 = 8 of 9
    assert np.isclose(m["a"]["roc_auc"], 8 / 9) and np.isclose(m["c"]["roc_auc"], 1.0)


def test_fold_priors_reweight_each_fold_to_its_training_shares_by_hand():
    from genometracks.sigma.evaluate import with_fold_priors

    # fold 0 holds rows 0-1 and was trained on rows 2-5 (labels a, a, a, b: shares 3/4, 1/4);
    # fold 1 holds rows 2-5 and was trained on rows 0-1 (a, b: shares 1/2, 1/2 = unchanged)
    data = SigmaSet(np.zeros((6, 4), np.uint8), np.array([0, 1, 0, 0, 0, 1]), ("a", "b"), 4)
    scores = np.full((6, 2), 0.5)
    fold = np.array([0, 0, 1, 1, 1, 1])
    out = with_fold_priors(data, scores, fold, ["a", "b"])
    assert np.allclose(out[:2], [[0.75, 0.25], [0.75, 0.25]]) and np.allclose(out[2:], 0.5)
    # rows still sum to one, and a confident row stays on its side
    skewed = with_fold_priors(data, np.array([[0.1, 0.9]] * 6), fold, ["a", "b"])
    assert np.allclose(skewed.sum(axis=1), 1.0) and np.allclose(skewed[0], [0.25, 0.75])


# ------------------------------------------------------------------------------------------ track
def test_sigma_bigbed_track_reads_back_and_validates_in_a_hub(tmp_path):
    import pybigtools

    from genometracks.browser.export import hub_track
    from genometracks.browser.hub import write_hub
    from genometracks.formats.bigbed import bigbed_field_counts
    from genometracks.sigma.track import SIGMA_COLOURS, read_peaks, sigma_track

    rng = np.random.default_rng(2)
    text = decode(rng.integers(0, 4, 400))
    fasta = tmp_path / "tiny.fa"
    fasta.write_text(f">chrT\n{text}\n")
    genome = Genome.open(fasta, circular=["chrT"])
    torch.manual_seed(1)
    model = SigmaCNN(20, 6)
    classes = list(SIGMA_COLOURS)
    save_model(model, tmp_path / "sigma_cnn.pt", classes, upstream=15)
    (tmp_path / "peaks.bed").write_text("chrT\t3\t4\tTSS_4+\t900\t+\nchrT\t200\t203\tpk2\t500\t-\nchrT\t390\t391\tTSS_391-\t700\t-\n")
    peaks = read_peaks(tmp_path / "peaks.bed")
    assert list(peaks.pos) == [3, 202, 390]  # the '-' record is read at its 5' end (end - 1)
    summary = sigma_track(tmp_path / "sigma_cnn.pt", genome, peaks, tmp_path / "tracks" / "tss_sigma.bb")
    assert summary["peaks"] == 3

    # expected probabilities from windows cut independently: 15 nt upstream of +1, then 5 from +1
    windows = [(text[-12:] + text[:8]), _rc(text[198:218]), _rc(text[386:400] + text[:6])]
    expected = predict_proba(model.eval(), one_hot(np.stack([encode(w) for w in windows])))
    bb = pybigtools.open(str(tmp_path / "tracks" / "tss_sigma.bb"))
    rows = list(bb.records("chrT"))
    assert [(r[0], r[1]) for r in rows] == [(3, 4), (202, 203), (390, 391)]
    for row, p in zip(rows, expected):
        name, score, strand, thick_start, thick_end, rgb, sigma, *probs = row[2:]  # split by the autoSql
        assert sigma == classes[int(np.argmax(p))] and rgb == ",".join(map(str, SIGMA_COLOURS[sigma]))
        assert np.allclose([float(v) for v in probs], p, atol=1e-4) and int(score) == round(1000 * p.max())
        assert (int(thick_start), int(thick_end)) == (row[0], row[1])
    assert bigbed_field_counts(tmp_path / "tracks" / "tss_sigma.bb") == (16, 9)
    hub_txt = write_hub(
        tmp_path / "hub", "assembly", genome.chrom_sizes(), [hub_track("tss_sigma", tmp_path / "tracks" / "tss_sigma.bb")], fasta=fasta
    )
    assert_hub_clean(hub_txt.parent)
    assert "type bigBed 9 +" in (hub_txt.parent / "tiny" / "trackDb.txt").read_text()


def test_sigma_track_command_reads_gzipped_peaks_and_rejects_bad_ones(tmp_path):
    import gzip

    from omegaconf import OmegaConf

    from genometracks.sigma.track import SigmaTrackError, read_peaks, sigma_track_command

    fasta = tmp_path / "tiny.fa"
    fasta.write_text(">chrT\n" + "ACGT" * 50 + "\n")
    save_model(SigmaCNN(10, 6), tmp_path / "m.pt", list(SYNTHETIC_MOTIFS), upstream=10)
    (tmp_path / "run" / "tracks").mkdir(parents=True)
    with gzip.open(tmp_path / "run" / "tracks" / "tss_peaks.bed.gz", "wt") as handle:
        handle.write("chrT\t5\t6\tnear_start\t1\t+\nchrT\t100\t101\tok\t1\t+\n")
    cfg = OmegaConf.create(
        {"sigma_model": str(tmp_path / "m.pt"), "run_dir": str(tmp_path / "run"), "data": {"fasta": str(fasta), "circular": []}}
    )
    summary = sigma_track_command(cfg)  # linear contig: the window of the peak at 5 does not fit
    assert (summary["peaks"], summary["skipped_at_contig_ends"]) == (1, 1)
    (tmp_path / "bad.bed").write_text("chrT\t5\t6\tx\t1\t+\nchrT\t9\t7\ty\t1\t+\n")
    with pytest.raises(SigmaTrackError, match=r"bad.bed: record 2 .* is not BED6"):
        read_peaks(tmp_path / "bad.bed")


# ------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_run_sigma_on_synthetic_data_writes_metrics_roc_logos_and_kernels(tmp_path):
    import matplotlib.image as mpimg

    from genometracks.interpret.motifs import Motif, write_meme
    from genometracks.sigma.evaluate import run_sigma

    write_meme([Motif("boxA", np.eye(4)[[0, 0, 3, 3, 0]] * 0.9 + 0.025)], tmp_path / "refs" / "ref.meme")
    cfg = compose(
        "experiment=sigma_cnn",
        f"run_dir={tmp_path / 'run'}",
        "data.source=synthetic",
        "data.upstream=30",
        "data.classes=[sigma24,sigma32,sigma70]",
        "data.n_per_class=30",
        "sigma.folds=3",
        "trainer.max_epochs=12",
        "sigma.batch_size=16",
        "sigma.lr=3e-3",
        f"sigma.motif_dir={tmp_path / 'refs'}",
        "model.channels=[16,16,16]",
    )
    result = run_sigma(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["counts"] == {"sigma24": 30, "sigma32": 30, "sigma70": 30, "nonpromoter": 90}
    for mode in ("softmax", "ovr"):
        for name in ("sigma24", "sigma32", "sigma70"):
            m = metrics["metrics"][mode][name]
            assert m["n_pos"] == 30 and m["n_neg"] == (60 if mode == "softmax" else 150)
            assert m["accuracy"] >= 0.9 and m["roc_auc"] >= 0.95, (mode, name, m)
    # the probabilities the track uses (class shares applied per fold): 20 of each class trained every
    # fold, so the shares are uniform and the figures are the softmax's own
    track = metrics["metrics"]["softmax+prior"]
    for name in ("sigma24", "sigma32", "sigma70"):
        for key in ("roc_auc", "accuracy", "tp"):
            assert track[name][key] == pytest.approx(metrics["metrics"]["softmax"][name][key]), (name, key)
    assert mpimg.imread(tmp_path / "run" / "roc.png").shape[2] in (3, 4)
    assert sorted(p.name for p in (tmp_path / "run" / "logos" / "sigma").glob("*.png")) == [
        "all_classes.png",
        "sigma24.png",
        "sigma32.png",
        "sigma70.png",
    ]
    assert "| softmax | sigma24 | 30 |" in (tmp_path / "run" / "metrics.md").read_text()
    assert result["kernels"]["meme"].endswith("motifs/sigma_cnn_kernels.meme")
    # out-of-fold HiResCAM logos (one-vs-rest models): the planted motif is each class's top window
    assert metrics["logos"]["heights"] == "information"
    for name in ("sigma24", "sigma32", "sigma70"):
        motif, col = SYNTHETIC_MOTIFS[name]
        top = metrics["logos"]["peaks"][name]["hirescam"][0]
        assert (top["start"], top["end"], top["consensus"]) == (col - 30, col - 25, motif), (name, top)


@pytest.mark.parametrize(
    "override, message",
    [
        ("sigma.logo_model=ovr", "add ovr to sigma.modes"),
        ("sigma.cams=[gradcam,saliency]", "sigma.cams entry 'saliency'"),
        ("sigma.cams=[]", "sigma.cams entry '(empty)'"),
        ("sigma.logo_heights=bits", "sigma.logo_heights='bits'"),
    ],
)
def test_bad_logo_settings_fail_before_training(tmp_path, override, message, monkeypatch):
    import genometracks.sigma.evaluate as evaluate

    monkeypatch.setattr(evaluate, "cross_validate", lambda *a, **k: pytest.fail("trained before checking"))
    cfg = compose(
        "experiment=sigma_cnn",
        f"run_dir={tmp_path}",
        "data.source=synthetic",
        "sigma.modes=[softmax]",
        "sigma.logo_model=softmax",
        override,
    )
    with pytest.raises(SigmaConfigError, match=re.escape(message)):
        evaluate.run_sigma(cfg)


# ------------------------------------------------------------------------------------ RegulonDB
@needs_ecoli
def test_regulondb_set_counts_and_windows_match_the_file():
    genome = Genome.open(ECOLI / "genome" / "NC_000913.3.fa", circular=["NC_000913.3"])
    path = ECOLI / "regulondb_promoterset" / "PromoterSet_v10.9.txt"
    data = regulondb_set(genome, path, "NC_000913.3", upstream=60)
    # the paper's Table 1: 66, 10, 51, 102, 19, 766 (RegulonDB 10.x); 105 TSSs of two classes are left out
    assert data.counts() == {"sigma24": 66, "sigma28": 10, "sigma32": 52, "sigma38": 106, "sigma54": 21, "sigma70": 814}
    column6 = {}
    for line in open(path):
        if not line.startswith("#"):
            fields = line.split("\t")
            column6[fields[0]] = fields[5][:60].upper()
    assert all(decode(w) == column6[n] for w, n in zip(data.tokens, data.sites.name))


def test_track_probabilities_carry_the_training_class_shares(tmp_path):
    # balanced class weights make the softmax treat the classes as equally common (E. coli's track called
    # a third of its calls sigma38, a 15 % class): the stored shares are put back by Bayes' rule
    from genometracks.genome.intervals import SiteSet
    from genometracks.sigma.model import load_model, with_prior
    from genometracks.sigma.track import classify_sites

    probs = np.array([[0.5, 0.5], [0.2, 0.8]])
    np.testing.assert_allclose(with_prior(probs, [0.9, 0.1]), [[0.9, 0.1], [0.18 / 0.26, 0.08 / 0.26]])
    assert with_prior(probs, None) is probs
    torch.manual_seed(0)
    save_model(SigmaCNN(10, 2), tmp_path / "m.pt", ["a", "b"], upstream=5, prior=[0.9, 0.1])
    model, classes, upstream = load_model(tmp_path / "m.pt")
    assert model.prior == [0.9, 0.1] and classes == ["a", "b"] and upstream == 5
    genome = Genome.from_sequences({"c": GENOME})
    sites = SiteSet(np.array(["c", "c"], dtype=object), np.array([10, 30]), np.array(["+", "-"]), source="test")
    raw = predict_proba(model, one_hot(extract_windows(genome, sites, 5, 5)))
    np.testing.assert_allclose(classify_sites(model, 5, genome, sites), with_prior(raw, [0.9, 0.1]))
    save_model(SigmaCNN(10, 2), tmp_path / "n.pt", ["a", "b"], upstream=5)  # trained unweighted: no prior
    assert load_model(tmp_path / "n.pt")[0].prior is None


def test_a_class_with_a_near_zero_map_draws_no_logo(tmp_path):
    # E. coli's sigma28 Grad-CAM maps carry 0.55 % of sigma70's mass per sequence, yet one column of two
    # sequences drew a 0.84-bit letter: the small-sample correction cannot see a map's scale
    from genometracks.sigma.gradcam import blank_weak_maps, draw_class_logos, logo_matrices

    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 4, (10, 12)).astype(np.uint8)
    tokens[:2, 6] = 0  # the two weakly mapped sequences agree there: an A of 2 - 1.08 bits
    tokens[:, 4], tokens[:, 2] = 2, 3  # the other classes' mapped columns: G and T in every sequence
    x = one_hot(tokens)
    strong = np.zeros((10, 12))
    strong[:, 4] = 1.0  # mass per sequence 1
    weak = np.zeros((10, 12))
    weak[:2, 6] = 0.004  # mass per sequence 0.0008: 0.08 % of the strong class's
    middle = np.zeros((10, 12))
    middle[:, 2] = 0.05  # 5 %: kept
    mats = {name: logo_matrices(x, {"gradcam": g}) for name, g in (("a", strong), ("b", weak), ("c", middle))}
    assert mats["b"]["gradcam"].sum() > 0.5  # drawn as a motif before
    blank_weak_maps(mats)
    assert not mats["b"]["gradcam"].any() and float(mats["b"]["gradcam_weak"]) == pytest.approx(0.0008)
    assert mats["a"]["gradcam"].any() and mats["c"]["gradcam"].any() and "gradcam_weak" not in mats["c"]
    paths = draw_class_logos(mats, upstream=6, out_dir=tmp_path)
    assert all(p.is_file() for p in paths)


def test_peaks_on_a_contig_the_genome_lacks_are_one_clear_error(tmp_path):
    from genometracks.genome.intervals import SiteSet
    from genometracks.sigma.track import SigmaTrackError, sigma_track

    save_model(SigmaCNN(10, 2), tmp_path / "m.pt", ["a", "b"], upstream=5)
    sites = SiteSet(np.array(["U00096.3"], dtype=object), np.array([10]), np.array(["+"]), source="peaks.bed")
    with pytest.raises(SigmaTrackError, match=r"peaks.bed: peaks on contigs \['U00096.3'\] that the genome .* lacks"):
        sigma_track(tmp_path / "m.pt", Genome.from_sequences({"c": GENOME}), sites, tmp_path / "out.bb")


def test_no_tss_calls_leave_no_earlier_sigma_track_behind(tmp_path):
    from omegaconf import OmegaConf

    from genometracks.sigma.stage import run_sigma_stage

    model = tmp_path / "sigma_cnn.pt"
    model.write_bytes(b"stands in: the stage only trains when the model is missing")
    stale = tmp_path / "run" / "tracks" / "tss_sigma.bb"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier run's calls")
    result = run_sigma_stage(OmegaConf.create({"sigma_model": str(model)}), tmp_path / "run")
    assert not stale.exists() and result["track"]["skipped"].startswith("no TSS calls")


def test_the_sigma_stage_trains_with_the_users_settings_and_again_only_when_they_change(tmp_path, monkeypatch):
    """The stage composed experiment=sigma_cnn afresh (sigma.lr=0.5 trained at 1e-3), trained only when no
    model file existed (a 2-fold model stood for a 3-fold request) and, killed between saving the model
    and writing its metrics, called itself finished."""
    from hydra import initialize_config_dir

    from genometracks.cli import _register_resolvers
    from genometracks.io.paths import conf_dir
    from genometracks.io.rundir import RunDir
    from genometracks.sigma import stage

    trained = []

    def fake_run_sigma(sig):  # what run_sigma leaves: the model first, the metrics last
        trained.append(sig)
        run = RunDir(sig.run_dir)
        save_model(SigmaCNN(10, 2), run.sigma_model, ["a", "b"], upstream=5)
        run.metrics_json.write_text("{}")
        return {"runtime_s": 0.1}

    monkeypatch.setattr(stage, "run_sigma", fake_run_sigma)
    out = tmp_path / "run"
    _register_resolvers()

    def stage_run(*overrides):
        cfg = compose(f"run_dir={out}", *overrides)
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return stage.run_sigma_stage(cfg, out)

    stage_run("sigma.lr=0.5", "sigma.batch_size=7", "sigma.stage.folds=2")
    sig = trained[-1]
    assert (sig.sigma.lr, sig.sigma.batch_size, sig.sigma.folds, sig.sigma.modes) == (0.5, 7, 2, ["softmax"])
    assert sig.sigma.logo_model == "softmax" and sig.trainer.max_epochs == 15  # ovr is not among the budget's modes
    stage_run("sigma.lr=0.5", "sigma.batch_size=7", "sigma.stage.folds=2", "sigma.threads=2")
    assert len(trained) == 1  # the same settings (threads: how fast, not what): the trained model is kept
    stage_run("sigma.lr=0.5", "sigma.batch_size=7", "sigma.stage.folds=3")
    assert len(trained) == 2 and trained[-1].sigma.folds == 3
    (out / "sigma" / "metrics.json").unlink()  # a training cut short after saving its model
    stage_run("sigma.lr=0.5", "sigma.batch_size=7", "sigma.stage.folds=3")
    assert len(trained) == 3
    with pytest.raises(FileNotFoundError, match=r"sigma_model=.*nope.pt: no such file"):
        stage_run(f"sigma_model={tmp_path / 'nope.pt'}")
