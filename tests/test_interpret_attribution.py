"""One-hot entry point, gradient x input (against finite differences and the streamed output),
genome placement of window attributions on both strands, aggregate matrix, targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genometracks.genome.intervals import Interval, SiteSet
from genometracks.genome.sequence import Genome
from genometracks.interpret import attribution as A
from genometracks.interpret.optimize import OptimiseError, onehot_logits, optimise_class

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(seed=0):
    from genometracks.model import TransformerXL

    torch.manual_seed(seed)
    return TransformerXL(n_layer=2, n_head=2, d_model=16, d_head=8, window=16, query_block=8).eval()


def test_onehot_logits_equal_token_logits():
    torch.set_num_threads(2)  # the model's own threaded path must step aside (the fixture restores)
    model = _model()
    tokens = torch.randint(0, 5, (3, 40 + model.lookahead))
    with torch.no_grad():
        expected, _ = model(tokens, None, None)
        got = onehot_logits(model, torch.nn.functional.one_hot(tokens, 5).double())
    assert torch.allclose(got, expected, atol=1e-5)
    with pytest.raises(OptimiseError, match=r"\[B, S, 4 or 5\]"):
        onehot_logits(model, torch.zeros(2, 10))


@pytest.mark.slow
def test_attribution_matches_streamed_output_and_finite_differences():
    from genometracks.inference.predict import predict_genome

    torch.set_num_threads(2)  # the model's own threaded path must step aside (the fixture restores)
    model = _model(1).double()  # float64 so that finite differences are exact enough
    rng = np.random.default_rng(0)
    g = Genome.from_sequences({name: "".join(rng.choice(list("ACGT"), n)) for name, n in (("c", 400), ("d", 300))}, circular=["c"])
    shift = 5
    _, logits = predict_genome(model, g, shift, seg_len=32, n_streams=2, progress=False)
    sites = SiteSet(["c", "c", "d", "d"], [3, 200, 150, 290], ["-", "+", "-", "+"])
    result = A.attribute(model, g, sites, shift, batch_size=3, progress=False)
    assert result.skipped == 1 and result.sites.pos.tolist() == [3, 200, 150]  # d:290 + shift leaves the contig
    width = model.context + 1 + model.lookahead
    assert result.contribution.shape == (3, width) and (result.relative_positions()[model.context - shift] == 0)
    for k in range(3):  # the window's own forward reproduces the streamed logit
        x = torch.nn.functional.one_hot(torch.from_numpy(result.tokens[k].astype(np.int64)), 5).double()[None]
        with torch.no_grad():
            out = float(onehot_logits(model, x)[0, model.context])
        expected = logits.values[str(result.sites.chrom[k])][str(result.sites.strand[k])][int(result.sites.pos[k])]
        assert out == pytest.approx(float(expected), abs=1e-4)
    # gradient x input at a base = derivative along its one-hot letter (central differences, float64)
    x = torch.nn.functional.one_hot(torch.from_numpy(result.tokens[1].astype(np.int64)), 5).double()[None]
    for j in (model.context - 10, model.context - 3, model.context + 2):
        a = int(result.tokens[1, j])
        step = torch.zeros_like(x)
        step[0, j, a] = 1e-4
        with torch.no_grad():
            diff = (onehot_logits(model, x + step) - onehot_logits(model, x - step))[0, model.context] / 2e-4
        assert result.contribution[1, j] == pytest.approx(float(diff), rel=1e-4, abs=1e-7)
    assert np.all(result.contribution[:, model.context + model.lookahead + 1 :] == 0)  # nothing downstream of reach


def _hand_attributions(first_local, strands, width=4):
    sites = SiteSet(["c"] * len(strands), [0] * len(strands), strands)
    values = np.arange(len(strands) * width, dtype=np.float32).reshape(len(strands), width) + 1
    tokens = np.zeros(values.shape, np.uint8)
    return A.Attributions(sites, values, tokens, np.array(first_local), 2, 1, 0), values


def test_genome_track_places_windows_on_forward_coordinates():
    g = Genome.from_sequences({"c": "A" * 10, "d": "A" * 3})
    att, values = _hand_attributions([2, 8, 1], ["+", "-", "+"])
    track = A.genome_track(g, att, values)
    expected = np.zeros(10)
    expected[2:6] += [1, 2, 3, 4]  # '+' local 2..5 = forward 2..5
    expected[[1, 0]] += [5, 6]  # '-' local 8, 9 = forward 1, 0; local 10, 11 fall off
    expected[1:5] += [9, 10, 11, 12]
    assert track["c"].tolist() == expected.tolist() and track["d"].tolist() == [0, 0, 0]


def test_aggregate_matrix_puts_contribution_on_the_present_letter():
    att, _ = _hand_attributions([0, 0], ["+", "+"])
    att.tokens[:] = [[0, 1, 2, 4], [0, 3, 2, 3]]
    att.contribution[:] = [[1, 2, 3, 4], [3, 4, 5, 6]]
    matrix, rel = A.aggregate_matrix(att, lo=-1, hi=1)  # window column j is j - 2 + 1 from the TSS
    assert rel.tolist() == [-1, 0, 1]
    assert matrix.tolist() == [[2, 0, 0, 0], [0, 1, 0, 2], [0, 0, 4, 0]]
    with pytest.raises(A.AttributionError, match="no window column"):
        A.aggregate_matrix(att, lo=50, hi=60)


def test_top_predicted_tss_are_peaks_in_regions():
    tracks = {"c": {"+": np.array([0, 0.9, 0.8, 0, 0, 0.5, 0, 0], np.float32), "-": np.array([0, 0, 0, 0.7, 0, 0, 0, 0.95], np.float32)}}
    top = A.top_predicted_tss(tracks, 3, min_distance=2)
    assert list(zip(top.pos.tolist(), top.strand.tolist())) == [(7, "-"), (1, "+"), (3, "-")]
    assert top.name[0] == "c:8-"
    inside = A.top_predicted_tss(tracks, 5, min_distance=2, regions=[Interval("c", 2, 6)])
    assert sorted(inside.pos.tolist()) == [3, 5]


def test_optimise_class_raises_its_own_output_on_a_random_model():
    model = _model(2)
    result = optimise_class(model, shift=3, length=12, steps=30, lr=0.2, l2=0.0, progress=False)
    with torch.no_grad():
        start = torch.sigmoid(onehot_logits(model, torch.full((1, 12 + model.lookahead, 4), 0.25))[0, 11])
    assert result.probability > float(start) and result.history[-1] > result.history[0]
    assert result.probabilities.shape == (12 + model.lookahead, 4) and result.tss_column == 8
    assert np.allclose(result.probabilities.sum(axis=1), 1)
    assert all(p.requires_grad for p in model.parameters())  # weights unfrozen afterwards
    with pytest.raises(OptimiseError, match="exceed the label shift"):
        optimise_class(model, shift=20, length=10)
    # the probability is calibrated as the tracks are (a weighted loss's offset, e.g. -log 50): the same
    # optimised window, its logit moved by the offset
    calibrated = optimise_class(model, shift=3, length=12, steps=30, lr=0.2, l2=0.0, progress=False, logit_offset=-np.log(50))
    np.testing.assert_array_equal(calibrated.probabilities, result.probabilities)
    logit = np.log(result.probability / (1 - result.probability))
    assert calibrated.probability == pytest.approx(1 / (1 + np.exp(-(logit - np.log(50)))), rel=1e-5)
