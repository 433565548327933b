"""Genome scan with memelite's FIMO: planted hits at exact starts on both strands, scores recomputed by
hand, the null hit rate, Benjamini-Hochberg q-values over every test, N windows."""

from __future__ import annotations

import numpy as np
import pytest

from genometracks.genome.sequence import Genome, decode, encode
from genometracks.interpret.fdr import bh_qvalues
from genometracks.interpret.motifs import Motif, MotifError
from genometracks.interpret.scan import FIMO_PSEUDOCOUNT, max_score, n_free_windows, one_hot, scan_genome


def _strong_motif(consensus: str, p: float = 0.91) -> Motif:
    probs = np.full((len(consensus), 4), (1 - p) / 3)
    probs[np.arange(len(consensus)), encode(consensus)] = p
    return Motif("planted", probs)


def _random_sequence(rng, n: int) -> str:
    return decode(rng.integers(0, 4, n))


def test_one_hot_and_n_free_windows():
    tokens = encode("ACGNT")
    x = one_hot(tokens)
    assert x.shape == (1, 4, 5) and x.dtype == np.int8
    assert x[0].T.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert n_free_windows(tokens, 2).tolist() == [True, True, False, False]
    assert n_free_windows(tokens, 6).size == 0


def test_planted_sites_found_on_both_strands_with_exact_starts():
    rng = np.random.default_rng(1)
    consensus = "TTGACGCTAA"  # not its own reverse complement
    motif = _strong_motif(consensus)
    seq = list(_random_sequence(rng, 20_000))
    rc = decode(encode(consensus)[::-1] ^ 3)  # A<->T, C<->G via token xor 3
    planted = {(1000, "+"), (5000, "+"), (12_000, "+"), (3000, "-"), (9000, "-"), (19_990, "+")}
    for start, strand in planted:
        seq[start : start + 10] = consensus if strand == "+" else rc
    seq[15_000:15_010] = consensus
    seq[15_004] = "N"  # a site with an N is not a test and never hits
    genome = Genome.from_sequences({"chrB": _random_sequence(rng, 3000), "chrA": "".join(seq)})
    hits, n_tests = scan_genome(genome, {"m": motif}, p_threshold=1e-5)
    found = {(int(s), str(st)) for c, s, st in zip(hits["chrom"], hits["start"], hits["strand"]) if c == "chrA"}
    assert planted <= found
    assert (15_000, "+") not in found
    assert len(found - planted) <= 2  # random extras are rare (expected ~0.5)
    assert (hits["end"] - hits["start"] == 10).all() and (hits["motif"] == "m").all()
    keys = list(zip(hits["chrom"], hits["start"], hits["strand"]))
    assert keys == sorted(keys) and hits["chrom"].iloc[0] == "chrA"
    # tests: N-free windows of both contigs, both strands (the N removes 10 windows of chrA)
    assert n_tests == 2 * ((3000 - 9) + (20_000 - 9 - 10))
    # every hit's score is FIMO's log-odds of the letters on its strand, recomputed here
    lo = np.log2((motif.probabilities + FIMO_PSEUDOCOUNT) / 0.25)
    for c, s, e, st, score in zip(hits["chrom"], hits["start"], hits["end"], hits["strand"], hits["score"]):
        word = encode(genome.sequence(str(c), int(s), int(e), str(st)))
        assert score == pytest.approx(lo[np.arange(10), word].sum(), abs=1e-4)
    assert (hits["p_value"] < 1e-5).all()
    exact = hits[[(int(s), str(st)) in planted for s, st in zip(hits["start"], hits["strand"])]]
    # the consensus is the single best 10-mer: p = 4^-10 (FIMO's 0.1-bit bins may merge a few neighbours)
    assert np.allclose(exact["p_value"], 0.25**10, rtol=0.05)
    assert np.allclose(exact["score"], max_score(motif), atol=1e-4)
    np.testing.assert_allclose(hits["q_value"], bh_qvalues(hits["p_value"].to_numpy(), n_tests))


def test_null_hit_rate_matches_p_times_positions():
    rng = np.random.default_rng(2)
    motif = Motif("m8", rng.dirichlet(np.full(4, 0.5), size=8))
    n, p = 200_000, 1e-3
    genome = Genome.from_sequences({"r": _random_sequence(rng, n)})
    hits, n_tests = scan_genome(genome, {"m8": motif}, p_threshold=p)
    assert n_tests == 2 * (n - 8 + 1)
    # FIMO's p-values are exact for its binned scores, so P(p < t) <= t; the discreteness costs < half
    assert 0.5 * p * n_tests - 5 * np.sqrt(p * n_tests) < len(hits) < p * n_tests + 5 * np.sqrt(p * n_tests)
    assert set(hits["strand"]) == {"+", "-"}
    # nothing in random sequence is a discovery: every q-value is large
    assert hits["q_value"].min() > 0.5


def test_small_scan_by_hand_and_errors():
    hits, n_tests = scan_genome(Genome.from_sequences({"c": "CCCCACGTACCC"}), {"h": _strong_motif("ACG")}, p_threshold=0.05)
    assert list(zip(hits["start"], hits["end"], hits["strand"])) == [(4, 7, "+"), (5, 8, "-")]  # CGT rc = ACG
    assert n_tests == 2 * 10
    with pytest.raises(MotifError, match="scan_pvalue"):
        scan_genome(Genome.from_sequences({"c": "ACGT"}), {"h": _strong_motif("ACG")}, p_threshold=0)


def test_bh_qvalues_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    # sorted .01 .03 .04 .2 -> p m / rank = .04 .06 .0533 .2 -> running minimum from the right
    np.testing.assert_allclose(bh_qvalues(p), [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    np.testing.assert_allclose(bh_qvalues(p, n_tests=10), [0.1, 0.4 / 3, 0.4 / 3, 0.5])
    np.testing.assert_allclose(bh_qvalues(np.array([[0.5, np.nan], [0.9, 0.9]])), [[0.9, np.nan], [0.9, 0.9]])
    with pytest.raises(MotifError, match="n_tests"):
        bh_qvalues(p, n_tests=2)
