"""Head-motif stability (bootstrap of the ranking pool): hand-made samples whose answer is known, the
Benjamini-Hochberg cutoff, and heads.tsv's columns."""

from __future__ import annotations

import numpy as np
import pytest

from genometracks.genome.sequence import Genome, encode
from genometracks.interpret import head_motifs as HM
from genometracks.interpret import heads as H
from genometracks.interpret.fdr import bh_qvalues
from genometracks.interpret.head_stability import (
    HeadStability,
    bootstrap_subsets,
    called_in_family,
    head_logo_title,
    head_stability,
    same_sites_information,
)
from genometracks.interpret.matching import TomtomTable
from genometracks.interpret.motifs import Motif, pfm_from_kmers

OFFSET = 30  # every head of these samples attends 30 nt upstream of its query
N_POOL = 200


def test_a_round_is_called_by_benjamini_hochberg_over_the_family_with_its_row_in_place():
    # two heads x two references, all four pairs in the family; head 0's row replaced by each round's
    p = np.array([[1e-4, 0.5], [0.01, 0.9]])
    extra = (np.zeros((2, 2), np.int64), np.ones((2, 2), np.int64), np.full((2, 2), "+"), "")
    table = TomtomTable([], [], p, p * 2, bh_qvalues(p), *extra)
    rounds = np.array([[0.02, 0.5], [0.03, 0.5], [0.001, 0.5], [0.02, 0.01]])
    # family sorted: 0.01, 0.02, 0.5, 0.9 -> q(0.02) = 0.02 x 4 / 2 = 0.04; 0.03 -> 0.06; 0.001 -> 0.004;
    # the last round also puts head 0's other pair below it: 0.01, 0.01, 0.02, 0.9 -> q(0.02) = 0.02 x 4 / 3
    assert called_in_family(table, 0, 0, rounds, 0.05).tolist() == [True, False, True, True]
    assert called_in_family(table, 0, 0, rounds, 0.03).tolist() == [False, False, True, True]
    assert (table.p == p).all()  # the table itself is left as it was
    # head 1 outside the family (q NaN): m = 2, so 0.02 -> 0.04 and 0.03 -> 0.06
    outside = TomtomTable([], [], p, p * 2, np.vstack([bh_qvalues(p[0]), [np.nan, np.nan]]), *extra)
    assert called_in_family(outside, 0, 0, rounds[:2], 0.05).tolist() == [True, False]


def test_bootstrap_subsets_are_distinct_ascending_and_seeded():
    subsets = bootstrap_subsets(1000, 20, seed=3)
    assert all((np.diff(s) > 0).all() for s in subsets)  # distinct, ascending
    share = np.mean([s.size / 1000 for s in subsets])
    assert share == pytest.approx(1 - np.exp(-1), abs=0.02)  # a bootstrap draw holds ~63 % of the pool
    again = bootstrap_subsets(1000, 20, seed=3)
    assert all((a == b).all() for a, b in zip(subsets, again))
    assert not all(a.size == b.size and (a == b).all() for a, b in zip(subsets, bootstrap_subsets(1000, 20, seed=4)))


def test_same_sites_information_removes_the_miller_madow_bias_of_fewer_sites():
    flat = pfm_from_kmers(np.repeat(np.arange(4), 8)[:, None])  # one column, 8 of each letter: 0 bits
    conserved = pfm_from_kmers(np.zeros((32, 1), np.int64))  # 32 A: 2 bits
    bias = 3 / (2 * np.log(2)) * (1 / 32 - 1 / 50)  # (letters seen - 1) / (2 ln2) x (1/32 - 1/50)
    assert same_sites_information(flat, 50) == pytest.approx(-bias) and bias == pytest.approx(0.02435, abs=1e-5)
    assert same_sites_information(conserved, 50) == pytest.approx(2.0)
    assert same_sites_information(flat, 32) == pytest.approx(0.0)  # as many sites: nothing to remove


def _planted_samples(n_motif: int, n_rivals: int = 0, seed: int = 0):
    """A 40-kb contig read on '+', N_POOL top-output queries 200 nt apart. Head 0 attends 30 nt upstream:
    queries 0..n_motif-1 carry GATTACA centred there, and they and the next n_rivals queries (random
    k-mers) attend there with 0.5-0.6 at random, the rest with 0.3. Head 1 attends 10 nt upstream
    with random weights: its top samples are random k-mers."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 4, 40_000).astype(np.uint8)
    local = 100 + 200 * np.arange(N_POOL)
    for q in local[:n_motif]:
        tokens[q - OFFSET - 3 : q - OFFSET + 4] = encode("GATTACA")
    genome = Genome.from_sequences({"c": "".join("ACGT"[t] for t in tokens)})
    attention = np.full((N_POOL, 1, 2, 40), 0.01, np.float32)
    attention[:, 0, 0, OFFSET] = 0.3
    attention[: n_motif + n_rivals, 0, 0, OFFSET] = 0.5 + 0.1 * rng.random(n_motif + n_rivals)
    attention[:, 0, 1, 10] = 0.2 + 0.1 * rng.random(N_POOL)
    samples = H.HeadSamples(
        attention.astype(np.float16),
        np.linspace(5.0, 4.0, N_POOL),
        np.zeros(N_POOL, np.int64),
        local,
        np.full(N_POOL, H.SAMPLE_TOP, np.uint8),
        [("c", "+")],
        20,
        top_attention=attention,
    )
    return genome, samples


def _refs(rng):
    refs = [Motif(f"decoy{i}", rng.dirichlet(np.full(4, 0.3), size=8)) for i in range(30)]
    refs.insert(4, Motif("gattaca", np.eye(4)[encode("GATTACA")] * 0.85 + 0.05))
    return refs


def test_a_motif_every_round_finds_holds_its_information_and_match():
    # 100 GATTACA queries, all ranked above the rest: each round's top 50 (of ~63 of them) are GATTACA
    genome, samples = _planted_samples(n_motif=100)
    refs = _refs(np.random.default_rng(1))
    motifs, table = HM.head_motifs(samples, genome, 7, top_n=50, refs=refs, min_information=4.0)
    assert motifs[0].motif.consensus() == "GATTACA" and motifs[0].match.ref.name == "gattaca"
    assert motifs[0].information == pytest.approx(14.0) and motifs[1].information < 4.0
    steady = head_stability(samples, genome, motifs, table, 7, 50, rounds=40, match_qvalue=0.05, seed=0)
    assert steady[0] == HeadStability(40, 14.0, 14.0, 1.0, pytest.approx(motifs[0].match.p_value))
    # head 1 is outside the q-value family (below 4 bits): no support, but its rounds' p-values are reported
    assert np.isnan(steady[1].match_support) and 0 < steady[1].match_p_95 <= 1
    assert steady[1].information_low < steady[1].information_high < 4.0  # random 7-mers of 50 sites: ~1 bit of noise


def test_a_motif_shared_with_rivals_varies_with_the_pool():
    # 50 GATTACA queries and 50 rivals (random 7-mers) attend equally strongly at random: the top 50
    # mix them, the head's motif is a weak GATTACA (3.1 bits) and each round mixes them differently
    genome, samples = _planted_samples(n_motif=50, n_rivals=50)
    refs = _refs(np.random.default_rng(1))
    motifs, table = HM.head_motifs(samples, genome, 7, top_n=50, refs=refs, min_information=2.0)
    head = motifs[0]
    assert head.information == pytest.approx(3.105, abs=1e-3) and head.match.ref.name == "gattaca"
    assert head.match.q_value == pytest.approx(0.0077, abs=1e-4)  # called at 0.05 and at 0.01
    loose, strict = (head_stability(samples, genome, motifs, table, 7, 50, rounds=40, match_qvalue=q, seed=0)[0] for q in (0.05, 0.01))
    assert 2.0 < loose.information_low < head.information < loose.information_high < 5.0  # seeded: 2.3-4.5 bits
    assert loose.match_support == 0.9 and strict.match_support == 0.55  # 36 and 22 of the 40 rounds
    assert loose.match_p_95 > 10 * head.match.p_value
    assert loose == head_stability(samples, genome, motifs, table, 7, 50, rounds=40, match_qvalue=0.05, seed=0)[0]  # seeded


def test_rounds_zero_or_no_references_and_bad_rounds():
    genome, samples = _planted_samples(n_motif=100)
    motifs, table = HM.head_motifs(samples, genome, 7, top_n=50)
    off = head_stability(samples, genome, motifs, table, 7, 50, rounds=0)
    assert off == [HeadStability.unmeasured()] * 2 and np.isnan(off[0].information_low)
    assert head_logo_title(motifs[0], off[0]) == "L0H0 at -10 (14.0 bits)"
    no_refs = head_stability(samples, genome, motifs, table, 7, 50, rounds=10)[0]
    assert (no_refs.information_low, no_refs.information_high) == (14.0, 14.0) and np.isnan(no_refs.match_support)
    assert head_logo_title(motifs[0], no_refs) == "L0H0 at -10 (14.0 bits)\nbootstrap 14.0-14.0 bits"
    with pytest.raises(H.InterpretError, match="motif_bootstrap=-1"):
        head_stability(samples, genome, motifs, table, 7, 50, rounds=-1)


def test_heads_table_carries_the_stability_columns():
    genome, samples = _planted_samples(n_motif=100)
    refs = _refs(np.random.default_rng(1))
    motifs, table = HM.head_motifs(samples, genome, 7, top_n=50, refs=refs, min_information=4.0)
    steady = head_stability(samples, genome, motifs, table, 7, 50, rounds=20, match_qvalue=0.05)
    frame = HM.head_table(motifs, 4.0, 0.05, steady)
    assert frame.loc[0, ["information_low", "information_high", "match_support"]].tolist() == [14.0, 14.0, 1.0]
    assert head_logo_title(motifs[0], steady[0]).endswith("bootstrap 14.0-14.0 bits, match 100 %")
    assert frame[["information_low", "match_support"]].columns.tolist() == ["information_low", "match_support"]
    assert HM.head_table(motifs, 4.0, 0.05)["match_support"].isna().all()  # without a bootstrap: NaN columns


def test_stability_plot_draws_every_head(tmp_path):
    from PIL import Image

    from genometracks.interpret.head_plots import plot_head_stability

    genome, samples = _planted_samples(n_motif=50, n_rivals=50)
    motifs, table = HM.head_motifs(samples, genome, 7, top_n=50, refs=_refs(np.random.default_rng(1)), min_information=2.0)
    steady = head_stability(samples, genome, motifs, table, 7, 50, rounds=20)
    plot_head_stability(motifs, steady, 2.0, tmp_path / "s.png")
    image = Image.open(tmp_path / "s.png")
    assert image.format == "PNG" and image.size == (500, 360)  # 5 x 3.6 in at 100 dpi for two heads
    assert "20 bootstrap rounds" in image.text["Title"]
    rgb = np.asarray(image.convert("RGB"), dtype=int)
    coloured = np.abs(rgb[..., 0] - rgb[..., 2]) > 60  # the family head's dot is coloured by its support
    assert coloured.sum() > 20
