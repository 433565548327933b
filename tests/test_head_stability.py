"""Head-motif stability (bootstrap of the ranking pool): hand-made samples whose answer is known, the
Benjamini-Hochberg cutoff, and heads.tsv's columns."""

from __future__ import annotations

import numpy as np
import pytest

from genometracks.genome.sequence import Genome, encode
from genometracks.interpret import heads as H
from genometracks.interpret.fdr import bh_qvalues
from genometracks.interpret.head_stability import HeadStability, bootstrap_subsets, called_in_family, head_logo_title, head_stability
from genometracks.interpret.matching import TomtomTable
from genometracks.interpret.motifs import Motif

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


def _planted_samples(n_motif: int, margin: float, seed: int = 0):
    """A 40-kb contig read on '+', N_POOL top-output queries 200 nt apart. Head 0: queries 0..n_motif-1 carry
    GATTACA centred 30 nt upstream and attend there with 0.5 + margin, the others 0.5 (k-mers random).
    Head 1 attends 10 nt upstream with random weights: its top samples are random k-mers."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 4, 40_000).astype(np.uint8)
    local = 100 + 200 * np.arange(N_POOL)
    for q in local[:n_motif]:
        tokens[q - OFFSET - 3 : q - OFFSET + 4] = encode("GATTACA")
    genome = Genome.from_sequences({"c": "".join("ACGT"[t] for t in tokens)})
    attention = np.full((N_POOL, 1, 2, 40), 0.01, np.float32)
    attention[:, 0, 0, OFFSET] = 0.5
    attention[:n_motif, 0, 0, OFFSET] += margin
    attention[:, 0, 1, 10] = 0.2 + 0.1 * rng.random(N_POOL)  # 10 nt upstream: random k-mers
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
    genome, samples = _planted_samples(n_motif=100, margin=0.1)
    refs = _refs(np.random.default_rng(1))
    motifs, table = H.head_motifs(samples, genome, 7, top_n=50, refs=refs, min_information=4.0)
    assert motifs[0].motif.consensus() == "GATTACA" and motifs[0].match.ref.name == "gattaca"
    assert motifs[0].information == pytest.approx(14.0) and motifs[1].information < 4.0
    steady = head_stability(samples, genome, motifs, table, 7, 50, rounds=40, match_qvalue=0.05, seed=0)
    assert steady[0] == HeadStability(40, 14.0, 14.0, 1.0, pytest.approx(motifs[0].match.p_value))
    # head 1 is outside the q-value family (below 4 bits): no support, but its rounds' p-values are reported
    assert np.isnan(steady[1].match_support) and 0 < steady[1].match_p_95 <= 1
    assert steady[1].information_low < steady[1].information_high < 4.0  # random 7-mers of 50 sites: ~1 bit of noise


def test_a_motif_on_the_edge_of_the_pool_loses_information_and_support():
    # only 50 GATTACA queries, ranked first by a hair: a round holds ~32 of them and fills its top 50 with
    # random 7-mers, so no round reaches 14 bits and the match to GATTACA weakens
    genome, samples = _planted_samples(n_motif=50, margin=1e-4)
    refs = _refs(np.random.default_rng(1))
    motifs, table = H.head_motifs(samples, genome, 7, top_n=50, refs=refs, min_information=4.0)
    assert motifs[0].information == pytest.approx(14.0)  # the motif itself takes exactly the 50
    steady = head_stability(samples, genome, motifs, table, 7, 50, rounds=40, match_qvalue=1e-4, seed=0)[0]
    assert 4.0 < steady.information_low < steady.information_high < 7.0  # seeded: 4.2-6.6 bits
    assert steady.match_p_95 > 10 * motifs[0].match.p_value
    assert motifs[0].match.q_value <= 1e-4  # the head itself is called at q 1.3e-5
    # the support is the share of rounds still called (Benjamini-Hochberg with the round's row), seeded
    assert steady == head_stability(samples, genome, motifs, table, 7, 50, rounds=40, match_qvalue=1e-4, seed=0)[0]
    assert 0.6 < steady.match_support < 1.0  # seeded: 35 of the 40 rounds keep the match
    loose = head_stability(samples, genome, motifs, table, 7, 50, rounds=40, match_qvalue=0.05, seed=0)[0]
    assert loose.match_support == 1.0  # at q 0.05 every round's partial GATTACA is still called


def test_rounds_zero_or_no_references_and_bad_rounds():
    genome, samples = _planted_samples(n_motif=100, margin=0.1)
    motifs, table = H.head_motifs(samples, genome, 7, top_n=50)
    off = head_stability(samples, genome, motifs, table, 7, 50, rounds=0)
    assert off == [HeadStability.unmeasured()] * 2 and np.isnan(off[0].information_low)
    assert head_logo_title(motifs[0], off[0]) == "L0H0 at -10 (14.0 bits)"
    no_refs = head_stability(samples, genome, motifs, table, 7, 50, rounds=10)[0]
    assert (no_refs.information_low, no_refs.information_high) == (14.0, 14.0) and np.isnan(no_refs.match_support)
    assert head_logo_title(motifs[0], no_refs) == "L0H0 at -10 (14.0 bits)\nbootstrap 14.0-14.0 bits"
    with pytest.raises(H.InterpretError, match="motif_bootstrap=-1"):
        head_stability(samples, genome, motifs, table, 7, 50, rounds=-1)


def test_heads_table_carries_the_stability_columns():
    genome, samples = _planted_samples(n_motif=100, margin=0.1)
    refs = _refs(np.random.default_rng(1))
    motifs, table = H.head_motifs(samples, genome, 7, top_n=50, refs=refs, min_information=4.0)
    steady = head_stability(samples, genome, motifs, table, 7, 50, rounds=20, match_qvalue=0.05)
    frame = H.head_table(motifs, 4.0, 0.05, steady)
    assert frame.loc[0, ["information_low", "information_high", "match_support"]].tolist() == [14.0, 14.0, 1.0]
    assert head_logo_title(motifs[0], steady[0]).endswith("bootstrap 14.0-14.0 bits, match held in 100 %")
    assert frame[["information_low", "match_support"]].columns.tolist() == ["information_low", "match_support"]
    assert H.head_table(motifs, 4.0, 0.05)["match_support"].isna().all()  # without a bootstrap: NaN columns
