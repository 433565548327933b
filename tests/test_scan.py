"""PWM genome scan: exact p-values (DP vs enumeration), planted hits on both strands, null rate."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from genometracks.genome.sequence import Genome, decode, encode
from genometracks.interpret.motifs import Motif, MotifError
from genometracks.interpret.scan import genome_background, hits_to_intervals, log_odds, scan_genome, score_distribution

UNIFORM = np.full(4, 0.25)


def _strong_motif(consensus: str, p: float = 0.91) -> Motif:
    probs = np.full((len(consensus), 4), (1 - p) / 3)
    probs[np.arange(len(consensus)), encode(consensus)] = p
    return Motif("planted", probs)


def _random_sequence(rng, n: int) -> str:
    return decode(rng.integers(0, 4, n))


def test_log_odds_by_hand():
    lo = log_odds(Motif("n", np.array([[0.97, 0.01, 0.01, 0.01]])), UNIFORM, pseudocount=0.0)
    np.testing.assert_allclose(lo, np.log2([[0.97 / 0.25, 0.04, 0.04, 0.04]]))
    m = Motif("m", np.array([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0]]))
    bg = np.array([0.4, 0.1, 0.1, 0.4])
    lo = log_odds(m, bg, pseudocount=1.0)     # p' = (p + q) / 2
    assert lo[0, 0] == pytest.approx(np.log2(0.7 / 0.4)) and lo[0, 1] == pytest.approx(np.log2(0.05 / 0.1))
    with pytest.raises(MotifError, match="zero probabilities"):
        log_odds(m, UNIFORM, pseudocount=0.0)


@pytest.mark.parametrize("resolution", [0.001, 0.1])
def test_dp_pvalues_match_enumeration(resolution):
    rng = np.random.default_rng(0)
    motif = Motif("k4", rng.dirichlet(np.ones(4), size=4))
    bg = np.array([0.3, 0.2, 0.15, 0.35])
    lo = log_odds(motif, bg, pseudocount=0.1)
    scores, pvalues = score_distribution(lo, bg, resolution)
    ints = np.rint(lo / resolution).astype(int)
    words = np.array(list(itertools.product(range(4), repeat=4)))            # all 256 4-mers
    word_int = ints[np.arange(4), words].sum(axis=1)
    word_prob = bg[words].prod(axis=1)
    brute = np.array([word_prob[word_int >= s].sum() for s in word_int])
    dp = pvalues[word_int - int(round(scores[0] / resolution))]
    np.testing.assert_allclose(dp, brute, atol=1e-9, rtol=0)
    assert pvalues[0] == pytest.approx(1.0) and np.all(np.diff(pvalues) <= 1e-15)
    np.testing.assert_allclose(scores[[0, -1]], [word_int.min() * resolution, word_int.max() * resolution])


def test_planted_sites_found_on_both_strands():
    rng = np.random.default_rng(1)
    consensus = "TTGACGCTAA"                  # not its own reverse complement
    motif = _strong_motif(consensus)
    seq = list(_random_sequence(rng, 20_000))
    rc = decode(encode(consensus)[::-1] ^ 3)  # A<->T, C<->G via token xor 3
    planted = {(1000, "+"), (5000, "+"), (12_000, "+"), (3000, "-"), (9000, "-"), (19_990, "+")}
    for start, strand in planted:
        seq[start:start + 10] = consensus if strand == "+" else rc
    seq[15_000:15_010] = consensus
    seq[15_004] = "N"                         # a site with an N never hits
    genome = Genome.from_sequences({"chrB": _random_sequence(rng, 3000), "chrA": "".join(seq)})
    hits = scan_genome(genome, motif, p_threshold=1e-5, background=UNIFORM)
    found = {(int(h["start"]), str(h["strand"])) for h in hits if h["chrom"] == "chrA"}
    assert planted <= found
    assert (15_000, "+") not in found
    assert len(found - planted) <= 2          # random extras are rare (expected ~0.5)
    assert np.all(hits["end"] - hits["start"] == 10)
    keys = list(zip(hits["chrom"], hits["start"], hits["strand"]))
    assert keys == sorted(keys) and hits["chrom"][0] == "chrA"
    # every hit's score equals the log-odds of the letters on its strand, computed independently
    lo = log_odds(motif, UNIFORM)
    for h in hits:
        word = encode(genome.sequence(str(h["chrom"]), int(h["start"]), int(h["end"]), str(h["strand"])))
        assert h["score"] == pytest.approx(lo[np.arange(10), word].sum())
        assert h["p_value"] < 1e-5
    exact = [h for h in hits if (int(h["start"]), str(h["strand"])) in planted]
    assert all(h["p_value"] == pytest.approx(0.25 ** 10, rel=0.05) for h in exact)


def test_null_hit_rate_matches_p_times_positions():
    rng = np.random.default_rng(2)
    motif = Motif("m8", rng.dirichlet(np.full(4, 0.5), size=8))
    n, p = 200_000, 1e-3
    genome = Genome.from_sequences({"r": _random_sequence(rng, n)})
    hits = scan_genome(genome, motif, p_threshold=p, background=UNIFORM)
    positions = 2 * (n - 8 + 1)
    _, pvalues = score_distribution(log_odds(motif, UNIFORM), UNIFORM)
    rate = pvalues[pvalues < p].max()         # P(window passes) under the null, exact
    assert 0.5 * p < rate < p
    expected = rate * positions
    assert abs(len(hits) - expected) < 5 * np.sqrt(expected)
    assert set(np.unique(hits["strand"])) == {"+", "-"}


def test_genome_background_and_intervals():
    genome = Genome.from_sequences({"a": "AAAACG", "b": "NNTT"})
    np.testing.assert_allclose(genome_background(genome), [6 / 16, 2 / 16, 2 / 16, 6 / 16])
    hits = scan_genome(Genome.from_sequences({"c": "CCCCACGTACCC"}), _strong_motif("ACG"), p_threshold=0.05,
                       background=UNIFORM)
    assert [(int(h["start"]), str(h["strand"])) for h in hits] == [(4, "+"), (5, "-")]  # CGT rc = ACG
    ivs = hits_to_intervals(hits, "L0H1_TATAAT")
    assert (ivs[0].chrom, ivs[0].start, ivs[0].end, ivs[0].strand, ivs[0].name) == ("c", 4, 7, "+", "L0H1_TATAAT")
    assert ivs[0].score == pytest.approx(-np.log10(hits["p_value"][0]))
    with pytest.raises(MotifError, match="p_threshold"):
        scan_genome(genome, _strong_motif("ACG"), p_threshold=0)
