"""Attention-head profiles and motifs: offset conversion, sampling, statistics on hand values, and
the collected attention against the model run directly on one stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genometracks.genome.intervals import Interval
from genometracks.genome.sequence import Genome, encode
from genometracks.interpret import head_motifs as HM
from genometracks.interpret import head_plots as HP
from genometracks.interpret import heads as H
from genometracks.interpret.motifs import Motif

pytestmark = pytest.mark.usefixtures("one_thread")


def test_offset_from_tss_follows_the_label_shift():
    # query i answers TSS at i - 20; key i - 30 is 10 nt upstream of it
    rel = H.offset_from_tss(64, 20)
    assert rel[30] == -10 and rel[0] == 20 and rel[20] == 0 and rel[55] == -35
    assert rel.shape == (64,)


def test_choose_samples_flags_extremes_and_random_fraction():
    outputs = {("c", "+"): np.array([np.nan, 1, 5, 3], np.float32), ("c", "-"): np.array([2, np.nan, 0, 4], np.float32)}
    flags = H.choose_samples(outputs, 0.0, 2, seed=0)
    assert flags[("c", "+")].tolist() == [0, H.SAMPLE_BOTTOM, H.SAMPLE_TOP, 0]
    assert flags[("c", "-")].tolist() == [0, 0, H.SAMPLE_BOTTOM, H.SAMPLE_TOP]
    flags = H.choose_samples(outputs, 0.5, 0, seed=3)  # 3 of the 6 finite positions, never a NaN one
    random = np.concatenate([flags[k] for k in sorted(flags)]) & H.SAMPLE_RANDOM
    assert random.sum() == 3 and flags[("c", "+")][0] == 0 and flags[("c", "-")][1] == 0
    with pytest.raises(H.InterpretError, match="sample_fraction"):
        H.choose_samples(outputs, 1.5, 0)


def test_spearman_on_hand_values():
    x = np.array([[1, 1, 5], [2, 1, 5], [3, 2, 5], [4, 3, 5]], dtype=float)
    y = np.array([1, 3, 2, 4], dtype=float)
    rho = H.spearman_columns(x, y, chunk=2)  # chunking must not matter
    assert rho[0] == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    # column 2: ranks (1.5, 1.5, 3, 4) vs (1, 3, 2, 4), centred (-1, -1, .5, 1.5) . (-1.5, .5, -.5, 1.5) = 3
    assert rho[1] == pytest.approx(3.0 / np.sqrt(4.5 * 5))
    assert np.isnan(rho[2])


def test_head_correlation_on_hand_values():
    rng = np.random.default_rng(0)
    a = rng.random((7, 5))
    attention = np.stack([a, 2 * a + 1, -a, rng.random((7, 5))], axis=1)  # [n, K, W]
    corr = H.head_correlation(attention, chunk=3)
    assert corr[0, 1] == pytest.approx(1.0) and corr[0, 2] == pytest.approx(-1.0)
    assert corr[0, 3] == pytest.approx(np.corrcoef(attention[:, 0].ravel(), attention[:, 3].ravel())[0, 1], abs=1e-9)


def _samples(attention, output, group, local, keys, slot=None, shift=20):
    n = len(output)
    return H.HeadSamples(
        np.asarray(attention, np.float16),
        np.asarray(output, float),
        np.zeros(n, np.int64) if slot is None else np.asarray(slot),
        np.asarray(local),
        np.asarray(group, np.uint8),
        keys,
        shift,
    )


def test_attention_profiles_mean_max_and_top_minus_bottom():
    att = np.zeros((3, 1, 2, 4))
    att[:, 0, 0] = [[0.5, 0.5, 0, 0], [1, 0, 0, 0], [0, 0, 0.25, 0.75]]
    att[:, 0, 1] = 0.25
    groups = [H.SAMPLE_TOP, H.SAMPLE_BOTTOM, H.SAMPLE_RANDOM]
    s = _samples(att, [3.0, 1.0, 2.0], groups, [0, 1, 2], [("c", "+")], shift=2)
    table = H.attention_profiles(s)
    head0 = table[(table["layer"] == 0) & (table["head"] == 0)].sort_values("offset")
    assert head0["offset_from_tss"].tolist() == [2, 1, 0, -1]
    assert np.allclose(head0["mean"], [0.5, 1 / 6, 0.25 / 3, 0.25])
    assert np.allclose(head0["max"], [1, 0.5, 0.25, 0.75])
    assert np.allclose(head0["top_minus_bottom"], [-0.5, 0.5, 0, 0])
    # output ranks (3, 1, 2) centred (1, -1, 0); offset 1 ranks (3, 1.5, 1.5) centred (1, -.5, -.5): 1.5 / sqrt(2 * 1.5)
    assert np.allclose(head0["spearman"], [-0.5, np.sqrt(3) / 2, 0, 0])
    head1 = table[table["head"] == 1]
    assert head1["spearman"].isna().all() and np.allclose(head1["mean"], 0.25)


def test_window_tokens_strands_wrap_and_linear_ends():
    g = Genome.from_sequences({"lin": "ACGTTGCA", "circ": "AACCGGTT"}, circular=["circ"])
    keys = [("lin", "+"), ("lin", "-"), ("circ", "-")]
    out = HM.window_tokens(g, keys, np.array([0, 1, 2, 0]), np.array([2, 0, 6, -1]), 4)
    assert out[0].tolist() == encode("GTTG").tolist()
    assert out[1].tolist() == encode("TGCA").tolist()  # '-' of ACGTTGCA reads TGCAACGT
    assert out[2].tolist() == encode("TTAA").tolist()  # '-' of AACCGGTT is AACCGGTT; local 6, 7, 0, 1
    assert out[3].tolist() == [4] + encode("ACG").tolist()  # before a linear start: N


def test_head_motif_reads_the_kmer_at_the_peak_offset_on_the_query_strand():
    # strand '-' of a 200-nt contig; queries at local 100 and 150 attend most to offset 30 (-10 from the TSS)
    rng = np.random.default_rng(1)
    fwd = rng.integers(0, 4, 200).astype(np.uint8)
    minus = (3 - fwd)[::-1].copy()
    for q in (100, 150):
        minus[q - 30 - 3 : q - 30 + 4] = encode("GATTACA")
    seq = "".join("ACGT"[t] for t in (3 - minus)[::-1])
    g = Genome.from_sequences({"c": seq})
    att = np.full((3, 1, 1, 40), 0.01)
    att[0, 0, 0, 30] = att[1, 0, 0, 30] = 0.6
    att[2, 0, 0, 5] = 0.3
    s = _samples(att, [1.0, 2.0, 0.0], [1, 1, 1], [100, 150, 60], [("c", "-")])
    (m,), table = HM.head_motifs(s, g, conv_width=7, top_n=2)
    assert (m.offset, m.offset_from_tss) == (30, -10)
    assert m.motif.consensus() == "GATTACA" and m.information == pytest.approx(14.0)
    assert m.id == "L0H0" and m.match is None and table.note == "no reference motifs"
    # with references, the match is Tomtom's best: GATTACA's own matrix at offset 0 among 25 decoys
    refs = [Motif(f"d{i}", rng.dirichlet(np.full(4, 0.3), size=8)) for i in range(25)]
    refs.insert(7, Motif("gattaca", np.eye(4)[encode("GATTACA")] * 0.85 + 0.05))
    (m,), table = HM.head_motifs(s, g, conv_width=7, top_n=2, refs=refs)
    assert m.match.ref.name == "gattaca" and (m.match.offset, m.match.orientation) == (0, "+")
    assert m.match.q_value == table.q[0].min() < 0.01
    # a head below min_information stays out of the q-value family: its match keeps p, its q is NaN
    (m,), table = HM.head_motifs(s, g, conv_width=7, top_n=2, refs=refs, min_information=14.5)
    assert m.match.ref.name == "gattaca" and m.match.p_value < 1e-3 and np.isnan(m.match.q_value) and np.isnan(table.q).all()


def test_collected_attention_equals_the_model_on_one_stream():
    """Memory carried over segments/streams, strands and wrap: each sampled query's attention and
    logit equal a single-stream run over exactly its receptive field."""
    from genometracks.model import TransformerXL

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    g = Genome.from_sequences({"a": "".join(rng.choice(list("ACGT"), 500)), "b": "".join(rng.choice(list("ACGT"), 300))}, circular=["b"])
    model = TransformerXL(n_layer=2, n_head=2, d_model=16, d_head=8, window=24, query_block=8).eval()
    regions = [Interval("a", 100, 400), Interval("b", 0, 300)]
    outputs = H.stream_outputs(model, g, regions, seg_len=32, n_streams=3, progress=False)
    flags = H.choose_samples(outputs, 0.03, 2, seed=1)
    s = H.collect_attention(model, g, regions, flags, 20, seg_len=32, n_streams=3, progress=False)
    expected = sum(int((f > 0).sum()) for f in flags.values())
    assert len(s.output) == expected and s.attention.shape[1:] == (2, 2, 24)
    assert {s.keys[k][1] for k in s.slot} == {"+", "-"}
    for k in range(len(s.output)):
        contig, strand = s.keys[s.slot[k]]
        tokens = g.tokens(contig, strand).astype(np.int64)
        i = int(s.local[k])
        window = np.arange(i - model.context, i + 1 + model.lookahead) % tokens.size  # all inside or wrapped
        with torch.no_grad():
            logits, _, att = model(
                torch.from_numpy(tokens[window])[None], None, None, path="textbook", attention_queries=torch.tensor([model.context])
            )
        assert np.allclose(att[:, 0, :, 0].numpy(), s.attention[k].astype(np.float32), atol=2e-3)
        assert float(logits[0, model.context]) == pytest.approx(s.output[k], abs=1e-4)
        assert outputs[(contig, strand)][i] == pytest.approx(s.output[k], abs=1e-4)


def test_collected_samples_come_in_genome_order_whatever_the_stream_count():
    """Samples are ordered by (key, position), so the head motifs' rankings, which break ties by
    sample index, give the same motif however many streams ran (interpret.n_streams)."""
    from genometracks.model import TransformerXL

    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    g = Genome.from_sequences({"a": "".join(rng.choice(list("ACGT"), 700)), "b": "".join(rng.choice(list("ACGT"), 400))})
    model = TransformerXL(n_layer=2, n_head=2, d_model=16, d_head=8, window=24, query_block=8).eval()
    regions = [Interval("a", 50, 650), Interval("b", 0, 400)]
    flags = H.choose_samples(H.stream_outputs(model, g, regions, seg_len=32, n_streams=2, progress=False), 0.05, 5, seed=2)
    runs = [H.collect_attention(model, g, regions, flags, 20, seg_len=32, n_streams=n, progress=False) for n in (1, 3, 7)]
    first = runs[0]
    assert np.all(np.diff(first.slot * 10_000 + first.local) > 0)  # genome order, each position once
    assert len(first.output) == sum(int((f > 0).sum()) for f in flags.values())
    for other in runs[1:]:
        assert np.array_equal(other.slot, first.slot) and np.array_equal(other.local, first.local)
        assert np.array_equal(other.group, first.group)
        np.testing.assert_allclose(other.output, first.output, atol=1e-5)
        np.testing.assert_allclose(other.attention.astype(np.float32), first.attention.astype(np.float32), atol=2e-3)
    # attention rounded to one decimal ties many samples: the motif is still the same in every run
    for run in runs:
        run.attention = np.round(run.attention.astype(np.float32), 1).astype(np.float16)
    motifs = [[m.motif.probabilities for m in HM.head_motifs(run, g, conv_width=7, top_n=3)[0]] for run in runs]
    for other in motifs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(other, motifs[0]))


def test_top_samples_keep_float32_attention_and_the_motif_ranks_by_it():
    """The SAMPLE_TOP samples' attention is kept in float32 too (the float16 copy is its rounding), and
    a head's motif takes the top_n of the pool by it: two samples whose float16 attention ties are
    ranked by their float32 values, whatever their order."""
    from genometracks.model import TransformerXL

    torch.manual_seed(2)
    rng = np.random.default_rng(2)
    g = Genome.from_sequences({"a": "".join(rng.choice(list("ACGT"), 900))})
    model = TransformerXL(n_layer=2, n_head=2, d_model=16, d_head=8, window=24, query_block=8).eval()
    regions = [Interval("a", 0, 900)]
    flags = H.choose_samples(H.stream_outputs(model, g, regions, seg_len=32, n_streams=2, progress=False), 0.02, 6, seed=3)
    s = H.collect_attention(model, g, regions, flags, 20, seg_len=32, n_streams=3, progress=False)
    top = np.flatnonzero(s.group & H.SAMPLE_TOP)
    assert s.top_attention.dtype == np.float32 and s.top_attention.shape == (6, 2, 2, 24)
    np.testing.assert_array_equal(s.top_attention.astype(np.float16), s.attention[top])

    # hand-made: 3 top samples, top_n=1; samples 0 and 2 tie in float16 at offset 0, sample 2 is higher in float32
    seq = "ACGTTGCAAGCTTCGATCGGATCCAATTGGCCTTAAGGCA"  # the 3-mers at 9-11 (GCT) and 29-31 (GCC) differ
    att = np.zeros((3, 1, 1, 4))
    att[:, 0, 0, 0] = [0.99990, 0.5, 0.99995]
    att[:, 0, 0, 1] = 1 - att[:, 0, 0, 0]
    samples = _samples(att, [3.0, 2.0, 1.0], [H.SAMPLE_TOP] * 3, [10, 20, 30], [("c", "+")], shift=0)
    assert samples.attention[0, 0, 0, 0] == samples.attention[2, 0, 0, 0]  # tied in float16
    genome = Genome.from_sequences({"c": seq})
    first = HM.head_motifs(samples, genome, conv_width=3, top_n=1)[0][0].motif.probabilities
    samples.top_attention = att.astype(np.float32)
    chosen = HM.head_motifs(samples, genome, conv_width=3, top_n=1)[0][0].motif.probabilities
    expected = np.eye(4)[[("ACGT".index(b)) for b in seq[29:32]]]  # sample 2: local 30, offset 0, centred
    np.testing.assert_array_equal(chosen.round(), expected)
    assert not np.array_equal(first.round(), expected)  # float16 alone took sample 0 (first in order)


def test_plots_have_one_panel_per_layer(tmp_path):
    from PIL import Image

    att = np.random.default_rng(0).random((20, 2, 3, 10))
    att /= att.sum(axis=-1, keepdims=True)
    s = _samples(att, np.arange(20.0), [1] * 20, np.arange(20), [("c", "+")], shift=4)
    HP.plot_heatmap(H.attention_profiles(s), tmp_path / "h.png")
    labels = [H.head_id(layer, h) for layer in range(2) for h in range(3)]
    HP.plot_correlation(H.head_correlation(att.reshape(20, 6, 10)), labels, tmp_path / "c.png")
    heat, corr = Image.open(tmp_path / "h.png"), Image.open(tmp_path / "c.png")
    assert heat.text["Title"].count("layer ") == 2 and "layer 1" in heat.text["Title"]
    assert np.asarray(heat.convert("L")).std() > 10 and np.asarray(corr.convert("L")).std() > 10
    assert corr.size == (int(100 * (2.5 + 0.3 * 6)), int(100 * (2.0 + 0.3 * 6)))


def test_head_table_reports_a_best_match_only_for_informative_significant_heads():
    from genometracks.interpret.matching import Match

    ref = Motif("box", np.eye(4)[[0, 1, 2, 3]], alt_name="b")
    strong = Motif("L0H0", np.eye(4)[[3, 0, 1, 2]])  # 8 bits
    weak = Motif("L0H1", np.full((4, 4), 0.25))  # 0 bits
    heads = [
        HM.HeadMotif(0, 0, 30, -10, 0.5, strong, 8.0, Match(ref, 1e-4, 3e-4, 0.01, 0, "+", 4)),
        HM.HeadMotif(0, 1, 5, 15, 0.1, weak, 0.0, Match(ref, 1e-4, 3e-4, 0.01, 0, "+", 4)),
        HM.HeadMotif(1, 0, 7, 13, 0.2, strong, 8.0, Match(ref, 0.02, 0.06, 0.2, 1, "-", 4)),
    ]
    table = HM.head_table(heads, min_information=4.0, match_qvalue=0.05)
    assert table["best_match"].tolist() == ["box(b)", ".", "."]
    assert table["match_q_value"].tolist() == [0.01, 0.01, 0.2] and table["match_e_value"][2] == 0.06
    assert table["match_orientation"].tolist() == ["+", "+", "-"] and table["match_offset"].tolist() == [0, 0, 1]
    assert table["nearest_motif"].tolist() == ["box(b)"] * 3
    assert table["informative"].tolist() == [True, False, True]
    assert table["head_id"].tolist() == ["L0H0", "L0H1", "L1H0"] and table["consensus"][0] == "TACG"


def test_head_motif_sample_rankings():
    g = Genome.from_sequences({"c": "AAAAAAAAAA" + "CCCCCCCCCC" + "GGGGGGGGGG"})
    att = np.zeros((3, 1, 1, 4))
    att[:, 0, 0, 2] = [0.6, 0.5, 0.9]  # o* = 2; the 3-mer centred on key local - 2
    s = _samples(att, [5.0, 9.0, 0.0], [H.SAMPLE_TOP, H.SAMPLE_TOP, H.SAMPLE_RANDOM], [6, 16, 26], [("c", "+")])
    consensus = {rank: HM.head_motifs(s, g, conv_width=3, top_n=1, rank_by=rank)[0][0].motif.consensus() for rank in HM.RANKINGS}
    assert consensus == {"top_attention": "AAA", "attention": "GGG", "output": "CCC"}
    with pytest.raises(H.InterpretError, match="motif_rank"):
        HM.head_motifs(s, g, conv_width=3, rank_by="vibes")
