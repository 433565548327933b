"""Head motifs scored in the promoters of TSS calls (memelite's FIMO): words planted at known offsets
on both strands found at exact coordinates, scores recomputed by hand, Šidák over the windows looked
at, Benjamini-Hochberg over calls x heads, N windows, contig ends (linear and circular), the null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genometracks.genome.sequence import Genome, decode, encode, reverse_complement
from genometracks.interpret.fdr import bh_qvalues
from genometracks.interpret.motifs import Motif, MotifError
from genometracks.interpret.scan import (
    BIN_BITS,
    FIMO_PSEUDOCOUNT,
    AnchoredMotif,
    log_odds,
    max_score,
    one_hot,
    promoter_background,
    scan_calls,
    stranded_tokens,
    window_statistics,
)

WORD = "TATAATG"  # not its own reverse complement


def _strong_motif(consensus: str, p: float = 0.91) -> Motif:
    probs = np.full((len(consensus), 4), (1 - p) / 3)
    probs[np.arange(len(consensus)), encode(consensus)] = p
    return Motif("planted", probs)


def _random_sequence(rng, n: int) -> str:
    return decode(rng.integers(0, 4, n))


def _calls(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["chrom", "position", "strand", "name"])


def _plant(seq: list[str], start: int, word: str) -> None:
    seq[start : start + len(word)] = list(word)


def test_one_hot_of_one_and_of_many_sequences():
    x = one_hot(encode("ACGNT"))
    assert x.shape == (1, 4, 5) and x.dtype == np.int8
    assert x[0].T.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    many = one_hot(np.stack([encode("AC"), encode("NT")]))
    assert many.shape == (2, 4, 2) and many[1].T.tolist() == [[0, 0, 0, 0], [0, 0, 0, 1]]


def test_window_p_values_are_exact_against_every_word_and_never_zero():
    # every 4^7 word enumerated: p = the share of words whose binned score is at least the window's.
    # This matrix's best word scores 8.52 bits, which memelite 0.5.0's FIMO gives p = 0 (its unrounded
    # score falls above its table's top bin); the exact value is 4^-7.
    motif = Motif("m", np.random.default_rng(5).dirichlet(np.full(4, 0.5), size=7))
    words = np.stack(np.meshgrid(*[np.arange(4)] * 7, indexing="ij"), axis=-1).reshape(-1, 7)
    binned = np.rint(log_odds(motif) / BIN_BITS).astype(np.int64)
    word_bins = binned[np.arange(7), words].sum(axis=1)
    rng = np.random.default_rng(6)
    tokens = np.concatenate([motif.probabilities.argmax(axis=1), rng.integers(0, 4, 200)])[None, :].astype(np.uint8)
    score, p = window_statistics(tokens, motif)
    assert score.shape == p.shape == (1, 201)
    for start in range(0, 201, 7):
        window = tokens[0, start : start + 7]
        assert p[0, start] == pytest.approx((word_bins >= binned[np.arange(7), window].sum()).mean(), rel=1e-12)
        assert score[0, start] == pytest.approx(log_odds(motif)[np.arange(7), window].sum(), rel=1e-12)
    assert p[0, 0] == pytest.approx(4.0**-7) and score[0, 0] == pytest.approx(max_score(motif))
    with_n = tokens.copy()
    with_n[0, 3] = 4
    score, p = window_statistics(with_n, motif)
    assert np.isnan(p[0, :4]).all() and np.isnan(score[0, :4]).all() and np.isfinite(p[0, 4:]).all()


def test_window_p_values_against_a_background_are_exact_against_every_word_weighted_by_it():
    # an A/T-rich background (E. coli promoters are 57 % A/T): P(S >= s) sums each word's background
    # probability; a uniform null would call this A/T word's score 4^-7 where it is 3.5x as likely
    background = np.array([0.3, 0.2, 0.2, 0.3])
    motif = Motif("m", np.eye(4)[encode("TATAATA")] * 0.9 + 0.025)
    words = np.stack(np.meshgrid(*[np.arange(4)] * 7, indexing="ij"), axis=-1).reshape(-1, 7)
    lo = log_odds(motif, background)
    np.testing.assert_allclose(lo, np.log2((motif.probabilities + FIMO_PSEUDOCOUNT) / background), rtol=1e-12)
    binned = np.rint(lo / BIN_BITS).astype(np.int64)
    word_bins = binned[np.arange(7), words].sum(axis=1)
    word_prob = background[words].prod(axis=1)
    rng = np.random.default_rng(8)
    tokens = np.concatenate([encode("TATAATA"), rng.integers(0, 4, 100)])[None, :].astype(np.uint8)
    score, p = window_statistics(tokens, motif, background)
    for start in range(0, 101, 5):
        window = tokens[0, start : start + 7]
        assert p[0, start] == pytest.approx(word_prob[word_bins >= binned[np.arange(7), window].sum()].sum(), rel=1e-9)
        assert score[0, start] == pytest.approx(lo[np.arange(7), window].sum(), rel=1e-12)
    assert p[0, 0] == pytest.approx(0.3**6 * 0.3) and score[0, 0] == pytest.approx(max_score(motif, background))
    assert window_statistics(tokens, motif)[1][0, 0] == pytest.approx(0.25**7)
    with pytest.raises(MotifError, match="background must be 4 positive frequencies"):
        log_odds(motif, np.array([0.5, 0.5, 0.0, 0.0]))


def test_promoter_background_counts_each_calls_promoter_on_its_strand():
    # contig: 200 A then 200 C; a '+' call at 300 reads -100..+19 = forward 200..319 (all C); a '-' call
    # at 150 reads forward 250 down to 131, complemented: A 131..199 (69) -> T, C 200..250 (51) -> G
    genome = Genome.from_sequences({"c": "A" * 200 + "C" * 200})
    plus = promoter_background(genome, _calls([("c", 300, "+", "p")]))
    np.testing.assert_allclose(plus, [0, 1, 0, 0])
    minus = promoter_background(genome, _calls([("c", 150, "-", "m")]))
    np.testing.assert_allclose(minus, np.array([0, 0, 51, 69]) / 120)
    both = promoter_background(genome, _calls([("c", 300, "+", "p"), ("c", 150, "-", "m")]))
    np.testing.assert_allclose(both, np.array([0, 120, 51, 69]) / 240)
    np.testing.assert_allclose(promoter_background(genome, _calls([])), 0.25)


def test_stranded_tokens_read_each_call_five_to_three_prime_with_n_past_a_linear_end_and_wrapping_on_a_circle():
    genome = Genome.from_sequences({"lin": "ACGTTGCA", "circ": "AACCGGTT"}, circular=["circ"])
    calls = _calls([("lin", 2, "+", "a"), ("lin", 2, "-", "b"), ("circ", 0, "+", "c"), ("circ", 0, "-", "d")])
    got = stranded_tokens(genome, calls, np.arange(-3, 2))  # positions -3..+1 around each call
    # lin '+' at 2: bases -1,0,1,2,3 -> N A C G T; '-' at 2: forward 5,4,3,2,1 complemented -> C A A C G
    # circ '+' at 0: forward 5,6,7,0,1 -> G T T A A; '-' at 0: forward 3,2,1,0,7 complemented -> G G T T A
    assert [decode(row) for row in got] == ["NACGT", "CAACG", "GTTAA", "GGTTA"]


def test_planted_words_found_at_exact_coordinates_on_both_strands():
    rng = np.random.default_rng(1)
    seq = list(_random_sequence(rng, 3000))
    # '+' call at 1000, word centred at -10: bases 987..993; '-' call at 2000, word centred 10 nt
    # upstream on '-' (forward 2010), i.e. forward 2007..2013 holding the reverse complement
    _plant(seq, 1000 - 10 - 3, WORD)
    _plant(seq, 2000 + 10 - 3, decode(reverse_complement(encode(WORD))))
    # a '+' call at 500 whose word sits 2 nt downstream of the head's offset (centre -8)
    _plant(seq, 500 - 8 - 3, WORD)
    genome = Genome.from_sequences({"chrA": "".join(seq)})
    calls = _calls([("chrA", 1000, "+", "TSS_1001+"), ("chrA", 2000, "-", "TSS_2001-"), ("chrA", 500, "+", "TSS_501+")])
    motif = _strong_motif(WORD)
    tests = scan_calls(genome, calls, {"L0H0": AnchoredMotif(motif, -10)}, slack=4)
    assert len(tests) == 3 and list(tests.columns)[:5] == ["motif", "chrom", "start", "end", "strand"]
    by_tss = tests.set_index("tss")
    assert by_tss.loc["TSS_1001+", ["start", "end", "strand", "tss_offset"]].tolist() == [987, 994, "+", -10]
    assert by_tss.loc["TSS_2001-", ["start", "end", "strand", "tss_offset"]].tolist() == [2007, 2014, "-", -10]
    assert by_tss.loc["TSS_501+", ["start", "end", "strand", "tss_offset"]].tolist() == [489, 496, "+", -8]
    for row in tests.itertuples():  # the word read on the call's strand is the consensus, scored by hand
        assert genome.sequence("chrA", int(row.start), int(row.end), str(row.strand)) == WORD
        lo = np.log2((motif.probabilities + FIMO_PSEUDOCOUNT) / 0.25)
        assert row.score == pytest.approx(lo[np.arange(7), encode(WORD)].sum(), abs=1e-4) == pytest.approx(max_score(motif), abs=1e-4)
    # the consensus is the single best 7-mer: p = 4^-7 (FIMO's 0.1-bit bins may merge a few neighbours)
    np.testing.assert_allclose(tests["p_window"], 0.25**7, rtol=0.05)
    assert (tests["windows"] == 9).all()  # 2 x 4 + 1 centres
    np.testing.assert_allclose(tests["p_value"], 1 - (1 - tests["p_window"]) ** 9, rtol=1e-9)
    np.testing.assert_allclose(tests["q_value"], bh_qvalues(tests["p_value"].to_numpy()))


def test_a_word_outside_the_slack_is_not_found_and_n_windows_are_not_tests():
    rng = np.random.default_rng(2)
    seq = list(_random_sequence(rng, 400))
    _plant(seq, 200 - 16 - 3, WORD)  # centre -16: 6 nt beyond -10 +- 4
    seq[300 - 10] = "N"  # the N at -10 of the call at 300 removes the 7 windows covering it
    genome = Genome.from_sequences({"c": "".join(seq)})
    calls = _calls([("c", 200, "+", "far"), ("c", 300, "+", "gap")])
    tests = scan_calls(genome, calls, {"h": AnchoredMotif(_strong_motif(WORD), -10)}, slack=4).set_index("tss")
    assert tests.loc["far", "p_window"] > 1e-3 and tests.loc["far", "tss_offset"] != -16
    assert tests.loc["gap", "windows"] == 2  # centres -14 and -6 only: every other window holds the N
    assert tests.loc["gap", "tss_offset"] in (-14, -6)


def test_contig_ends_linear_windows_are_dropped_circular_ones_wrap():
    word_rc = decode(reverse_complement(encode(WORD)))
    seq = list(decode(np.random.default_rng(3).integers(0, 4, 60)))
    # circular: a '+' call at 5 with its word centred at -10 = forward 55 (bases 52..58)
    _plant(seq, 52, WORD)
    circ = Genome.from_sequences({"circ": "".join(seq)}, circular=["circ"])
    tests = scan_calls(circ, _calls([("circ", 5, "+", "t")]), {"h": AnchoredMotif(_strong_motif(WORD), -10)}, slack=2)
    assert tests[["start", "end", "tss_offset", "windows"]].iloc[0].tolist() == [52, 59, -10, 5]
    # linear: the same call sees no base upstream of 0, so only windows inside the contig are tests
    lin = Genome.from_sequences({"lin": "".join(seq)})
    tests = scan_calls(lin, _calls([("lin", 12, "+", "t"), ("lin", 3, "+", "u")]), {"h": AnchoredMotif(_strong_motif(WORD), -10)}, slack=2)
    # call at 12: the window centred at c covers forward 12 + c - 3 .. 12 + c + 3, inside from c = -9 on
    assert tests.set_index("tss").loc["t", "windows"] == 2  # centres -9 and -8
    assert "u" not in set(tests["tss"])  # no window of the call at 3 lies inside the contig
    # a '-' call near the 3' end of a circular contig wraps forward
    seq2 = list(decode(np.random.default_rng(4).integers(0, 4, 60)))
    _plant(seq2, 2, word_rc)  # forward 2..8, centre 5 = call 55 on '-' read 10 nt upstream (55 + 10 = 65 = 5 mod 60)
    circ2 = Genome.from_sequences({"circ": "".join(seq2)}, circular=["circ"])
    tests = scan_calls(circ2, _calls([("circ", 55, "-", "m")]), {"h": AnchoredMotif(_strong_motif(WORD), -10)}, slack=2)
    assert tests[["start", "end", "strand", "tss_offset"]].iloc[0].tolist() == [2, 9, "-", -10]


def test_the_null_is_calibrated_and_gives_no_discovery():
    rng = np.random.default_rng(5)
    n = 200_000
    genome = Genome.from_sequences({"r": _random_sequence(rng, n)})
    positions = np.sort(rng.choice(np.arange(200, n - 200), 4000, replace=False))
    strands = rng.choice(["+", "-"], positions.size)
    calls = _calls([("r", int(p), s, f"c{i}") for i, (p, s) in enumerate(zip(positions, strands))])
    motif = Motif("m", rng.dirichlet(np.full(4, 0.5), size=7))
    tests = scan_calls(genome, calls, {"a": AnchoredMotif(motif, -10), "b": AnchoredMotif(motif, -35)}, slack=4)
    assert len(tests) == 8000 and (tests["windows"] == 9).all()
    # Šidák over 9 overlapping windows is conservative: P(p < t) <= t, and not by much
    for t in (0.01, 0.05, 0.2):
        rate = float((tests["p_value"] < t).mean())
        assert 0.4 * t < rate < t + 3 * np.sqrt(t / 8000), (t, rate)
    assert tests["q_value"].min() > 0.5  # random calls: no discovery


def test_no_calls_and_bad_slack():
    genome = Genome.from_sequences({"c": "ACGTACGTACGT"})
    empty = scan_calls(genome, _calls([]), {"h": AnchoredMotif(_strong_motif("ACG"), 0)}, slack=1)
    assert empty.empty and "q_value" in empty.columns
    with pytest.raises(MotifError, match="hit_slack"):
        scan_calls(genome, _calls([("c", 5, "+", "t")]), {"h": AnchoredMotif(_strong_motif("ACG"), 0)}, slack=-1)


def test_bh_qvalues_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    # sorted .01 .03 .04 .2 -> p m / rank = .04 .06 .0533 .2 -> running minimum from the right
    np.testing.assert_allclose(bh_qvalues(p), [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    np.testing.assert_allclose(bh_qvalues(p, n_tests=10), [0.1, 0.4 / 3, 0.4 / 3, 0.5])
    np.testing.assert_allclose(bh_qvalues(np.array([[0.5, np.nan], [0.9, 0.9]])), [[0.9, np.nan], [0.9, 0.9]])
    with pytest.raises(MotifError, match="n_tests"):
        bh_qvalues(p, n_tests=2)
