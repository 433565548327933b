"""Motif type, information content, k-mer PFMs, MEME/TRANSFAC io, sigma70 boxes, Tomtom motif matching."""

from __future__ import annotations

import numpy as np
import pytest

from genometracks.genome.sequence import encode
from genometracks.interpret.fdr import bh_qvalues
from genometracks.interpret.matching import MIN_RELIABLE_TARGETS, best_matches, compare
from genometracks.interpret.motifs import (
    Motif,
    MotifError,
    information_matrix,
    load_reference_motifs,
    pfm_from_kmers,
    read_meme,
    read_transfac,
    sigma70_boxes,
    write_meme,
)
from genometracks.io.paths import shared_data

MOTIF_DIR = shared_data() / "ecoli_k12" / "motifs"
needs_data = pytest.mark.skipif(not MOTIF_DIR.exists(), reason="shared E. coli motif folder absent")


def test_pfm_from_kmers_counts_and_ignores_n():
    kmers = np.array(
        [
            [0, 1, 4],  # A C N
            [0, 2, 3],  # A G T
            [3, 2, 3],
        ]
    )  # T G T
    m = pfm_from_kmers(kmers)
    np.testing.assert_allclose(m.probabilities, [[2 / 3, 0, 0, 1 / 3], [0, 1 / 3, 2 / 3, 0], [0, 0, 0, 1]])
    assert m.nsites == 3
    assert m.consensus() == "AGT"
    with_pc = pfm_from_kmers(kmers, pseudocount=1.0)
    np.testing.assert_allclose(with_pc.probabilities[2], [1 / 6, 1 / 6, 1 / 6, 3 / 6])  # 2 T + 1 each
    weighted = pfm_from_kmers(kmers, weights=np.array([1.0, 0.0, 3.0]))
    np.testing.assert_allclose(weighted.probabilities[0], [0.25, 0, 0, 0.75])
    all_n = pfm_from_kmers(np.array([[4, 0]]))
    np.testing.assert_allclose(all_n.probabilities[0], 0.25)
    with pytest.raises(MotifError, match="0..4"):
        pfm_from_kmers(np.array([[5, 0]]))


def test_information_content_and_matrix_by_hand():
    p = np.array([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0, 0]])
    m = Motif("m", p, nsites=10)
    ic, total = m.information_content()
    np.testing.assert_allclose(ic, [2.0, 0.0, 1.0])
    assert total == pytest.approx(3.0)
    corrected, _ = m.information_content(small_sample_correction=True)
    e = 3 / (2 * np.log(2) * 10)
    np.testing.assert_allclose(corrected, [2 - e, 0.0, 1 - e])
    gc_bg = np.array([0.1, 0.4, 0.4, 0.1])
    ic_bg, _ = m.information_content(background=gc_bg)
    assert ic_bg[0] == pytest.approx(np.log2(1 / 0.1))
    # counts are accepted and give the same heights as probabilities
    np.testing.assert_allclose(information_matrix(p * 8), [[2, 0, 0, 0], [0, 0, 0, 0], [0.5, 0.5, 0, 0]])


def test_reverse_complement_and_trim():
    p = np.array([[0.25] * 4, [0.7, 0.1, 0.1, 0.1], [0, 0, 1.0, 0], [0.25] * 4])
    m = Motif("m", p)
    rc = m.reverse_complement()
    np.testing.assert_allclose(rc.probabilities[1], [0, 1.0, 0, 0])  # G → C
    np.testing.assert_allclose(rc.probabilities[2], [0.1, 0.1, 0.1, 0.7])  # A-rich → T-rich
    trimmed = m.trim(0.5)
    assert trimmed.width == 2 and trimmed.consensus() == "AG" and trimmed.meta["trim_offset"] == 1
    assert m.trim_bounds(1.5) == (2, 3)
    with pytest.raises(MotifError, match="no column reaches"):
        Motif("flat", np.full((3, 4), 0.25)).trim(0.1)


def test_motif_rejects_bad_matrix():
    with pytest.raises(MotifError, match=r"\[K, 4\]"):
        Motif("x", np.ones((3, 5)))
    with pytest.raises(MotifError, match="column 2 has no counts"):
        Motif("x", np.array([[1.0, 0, 0, 0], [0, 0, 0, 0]]))


def test_meme_roundtrip_and_biopython_reads_it(tmp_path):
    rng = np.random.default_rng(1)
    counts = rng.multinomial(100, [0.1, 0.2, 0.3, 0.4], size=7)  # Biopython reads counts p · nsites
    motifs = [Motif("L0H1", counts, nsites=100, alt_name="TATAAT-like"), Motif("L1H0", rng.dirichlet(np.ones(4), size=5), nsites=0)]
    bg = np.array([0.3, 0.2, 0.2, 0.3])
    path = write_meme(motifs, tmp_path / "heads.meme", background=bg)
    text = path.read_text()
    assert text.startswith("MEME version 4\n")
    assert "letter-probability matrix: alength= 4 w= 7 nsites= 100\n" in text  # no E-value claimed
    back = read_meme(path)
    assert [m.name for m in back] == ["L0H1", "L1H0"] and back[0].alt_name == "TATAAT-like"
    assert back[0].nsites == 100 and back[1].nsites == 20  # unknown → MEME default
    for a, b in zip(motifs, back):
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=2e-6)
    np.testing.assert_allclose(back[0].meta["background"], bg, atol=1e-6)
    Bio = pytest.importorskip("Bio.motifs")
    with open(path) as handle:
        record = Bio.parse(handle, "minimal")
    assert [m.name for m in record] == ["L0H1", "L1H0"]
    bio = np.array([record[0].counts[a] for a in "ACGT"]).T
    np.testing.assert_allclose(bio, counts, atol=1e-6)
    assert record[1].length == 5
    with pytest.raises(MotifError, match="without spaces"):
        write_meme([Motif("bad name", np.full((2, 4), 0.25))], tmp_path / "x.meme")
    assert not (tmp_path / "x.meme").exists()


def test_meme_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.meme"
    bad.write_text(
        "MEME version 4\n\nALPHABET= ACGT\n\nMOTIF a\nletter-probability matrix: alength= 4 w= 2\n0.1 0.2 0.3 0.4\n0.1 0.2 x 0.4\n"
    )
    with pytest.raises(MotifError, match=r"bad\.meme line 8"):
        read_meme(bad)
    protein = tmp_path / "p.meme"
    protein.write_text("MEME version 4\nALPHABET= ACDEFGHIKLMNPQRSTVWY\n")
    with pytest.raises(MotifError, match="not DNA"):
        read_meme(protein)
    head = "MEME version 5\n\nALPHABET= ACGT\n\nMOTIF m1\n"
    for header, message in (
        ("letter-probability matrix: alength= 4 w= 2 nsites= NA", r"nsites\.meme line 6: nsites='NA' is not a number"),
        ("letter-probability matrix: alength= 4 w= x", r"nsites\.meme line 6: w='x' is not a number"),
        ("letter-probability matrix: alength= 4 w= 1", r"nsites\.meme line 6: motif m1 has more matrix rows than w=1"),
    ):
        bad = tmp_path / "nsites.meme"
        bad.write_text(head + header + "\n0.1 0.2 0.3 0.4\n0.25 0.25 0.25 0.25\n")
        with pytest.raises(MotifError, match=message):
            read_meme(bad)


def test_meme5_alphabet_block_is_read_as_dna(tmp_path):
    block = (
        'MEME version 5\n\nALPHABET "DNA" DNA-LIKE\nA "Adenine" CC0000 ~ T "Thymine" 008000\n'
        'C "Cytosine" 0000CC ~ G "Guanine" FFB300\nN "Any base" = ACGT\nEND ALPHABET\n\n'
        "MOTIF m1\nletter-probability matrix: alength= 4 w= 1 nsites= 12\n0.7 0.1 0.1 0.1\n"
    )
    (tmp_path / "b.meme").write_text(block)
    (motif,) = read_meme(tmp_path / "b.meme")
    assert motif.name == "m1" and motif.nsites == 12 and motif.probabilities.shape == (1, 4)
    amino = block.replace('A "Adenine" CC0000 ~ T "Thymine" 008000', 'W "Tryptophan" 000000').replace("DNA-LIKE", "PROTEIN-LIKE")
    (tmp_path / "p.meme").write_text(amino)
    with pytest.raises(MotifError, match="alphabet block with letters .* is not DNA"):
        read_meme(tmp_path / "p.meme")


def test_transfac_by_hand(tmp_path):
    path = tmp_path / "m.tf"
    path.write_text(
        "AC  X1\nXX\nID  LexA\nXX\nP0      T     G     C     A\n1   1.0 0.0 0.0 3.0\n"
        "2   0.0 4.0 0.0 0.0\nXX\nCC  ac: width=2\nXX\n//\n"
        "AC  MX9\nXX\nID  MX9\nXX\nP0 A C G T\n01 2 2 0 0 M\nXX\nCC  ac: Fur\n//\n"
    )
    a, b = read_transfac(path)
    assert (a.name, a.alt_name, a.nsites) == ("LexA", "X1", 4.0)
    np.testing.assert_allclose(a.probabilities, [[0.75, 0, 0, 0.25], [0, 0, 1, 0]])  # header order TGCA
    assert (b.name, b.alt_name) == ("MX9", "Fur")
    np.testing.assert_allclose(b.probabilities, [[0.5, 0.5, 0, 0]])
    path.write_text("AC  X\nID  Y\nP0 A C G T\n1 0 0 0 0\n//\n")
    with pytest.raises(MotifError, match=r"m\.tf record 'Y'.*column 1 has no counts"):
        read_transfac(path)


def test_sigma70_boxes_weighted_average():
    win = lambda name, first, last, n: Motif(name, np.vstack([first, np.full((5, 4), 0.25), last]), nsites=n)
    one = np.tile([0, 0, 0, 1.0], (6, 1))
    two = np.tile([1.0, 0, 0, 0], (6, 1))
    m35, m10 = sigma70_boxes([win("rpoD15", one, two, 1), win("rpoD17", two, one, 3), win("lexA", one, one, 9)])
    assert (m35.name, m10.name) == ("sigma70_-35", "sigma70_-10")
    np.testing.assert_allclose(m35.probabilities[0], [0.75, 0, 0, 0.25])
    np.testing.assert_allclose(m10.probabilities[0], [0.25, 0, 0, 0.75])
    assert m35.nsites == 4
    with pytest.raises(MotifError, match="rpoD15..rpoD19"):
        sigma70_boxes([win("lexA", one, one, 1)])


@needs_data
def test_shared_motif_files_parse():
    refs = load_reference_motifs(MOTIF_DIR)
    sources = [m.source for m in refs]
    assert sources.count("regulonDB_2025-05.tf") == 109
    assert sources.count("prodoric_from_meme_151016.tf") == 201
    assert sources.count("dpinteract_sigma70_rpoD_excerpt.meme") == 5
    by_name = {m.name: m for m in refs}
    assert by_name["sigma70_-35"].consensus() == "TTGACA"
    assert by_name["sigma70_-10"].consensus() == "TATAAT"
    assert by_name["rpoD15"].width == 27 and by_name["rpoD15"].nsites == 27
    assert by_name["MX000001"].alt_name == "MexR"
    assert by_name["Ada"].probabilities.shape == (21, 4)
    np.testing.assert_allclose(by_name["Ada"].probabilities[0], [0.25, 0.5, 0.25, 0])


# ----------------------------------------------------------------------------- matching (Tomtom)
# The hand-written column-Pearson matcher these tests covered is replaced by memelite's Tomtom. The
# same cases give the same answers: the query itself, its reverse complement and a box planted in a
# longer matrix are the best match at the same offset and orientation. One convention changed: for
# orientation '-' the offset now counts columns of the reverse-complemented reference (was: of the
# reference, with the query reverse-complemented), so the planted-reverse-complement case below reads
# 3 where the old matcher read 4 (13 columns - 4 - 6).


def _informative(rng, k, name=None):
    return Motif(name or f"r{k}", rng.dirichlet(np.full(4, 0.3), size=k))


def _decoys(rng, n=MIN_RELIABLE_TARGETS):
    return [_informative(rng, int(k), f"decoy{i}") for i, k in enumerate(rng.integers(6, 16, n))]


def test_match_self_and_reverse_complement():
    rng = np.random.default_rng(2)
    query = _informative(rng, 8, "query")
    refs = _decoys(rng)[:12] + [query] + _decoys(rng)[:12]
    table = compare([query, query.reverse_complement()], refs)
    assert table.note == "" and table.p.shape == (2, 25)
    best = table.best(0)
    assert best.ref is query and (best.offset, best.orientation, best.overlap) == (0, "+", 8)
    assert best.p_value < 1e-6 and best.p_value == table.p[0].min()
    assert best.e_value == pytest.approx(best.p_value * 25)
    np.testing.assert_allclose(table.q, bh_qvalues(table.p))  # one BH family: all queries x references
    rc = table.best(1)
    assert rc.ref is query and (rc.offset, rc.orientation, rc.overlap) == (0, "-", 8)
    frame = table.frame()
    assert len(frame) == 50 and frame["query"].iloc[0] == "query" and frame["reference"].iloc[12] == "query"
    assert frame["p_value"].iloc[12] == best.p_value and frame["orientation"].iloc[25 + 12] == "-"


def test_flat_queries_stay_out_of_the_q_value_family():
    """Tomtom's p-values of near-flat queries are far too small against references with flat columns (a
    promoter window's spacer); in one BH family with the informative queries they pulled every q-value
    down (the attention heads' 3-5x; uninformative sigma kernels 'matched' database motifs)."""
    rng = np.random.default_rng(5)
    query = _informative(rng, 8, "query")
    spacer = [
        Motif(
            f"window{i}",
            np.vstack([rng.dirichlet(np.full(4, 0.3), 6), 0.25 + rng.uniform(-0.03, 0.03, (20, 4)), rng.dirichlet(np.full(4, 0.3), 6)]),
        )
        for i in range(10)
    ]
    refs = _decoys(rng) + spacer + [query]
    flat = [Motif(f"flat{i}", 0.25 + rng.uniform(-0.02, 0.02, (7, 4))) for i in range(20)]
    members = [True] + [m.information_content()[1] >= 4.0 for m in flat]
    assert members[1:] == [False] * 20
    table = compare([query, *flat], refs, members)
    assert (table.p[1:].min(axis=1) < 1e-3).all()  # flat 7-mers 'match' the flat spacers: invalid p-values
    assert np.isnan(table.q[1:]).all() and np.isfinite(table.q[0]).all()
    np.testing.assert_allclose(table.q[0], bh_qvalues(table.p[0]))  # the family is the informative row alone
    assert table.best(0).ref is query and table.best(0).q_value < 1e-20
    runner_up = np.sort(table.q[0])[1]  # an unrelated reference
    pooled = compare([query, *flat], refs)  # the old family: every query
    np.testing.assert_allclose(pooled.p, table.p)
    assert runner_up > 0.5 and np.sort(pooled.q[0])[1] < 0.5 * runner_up
    with pytest.raises(MotifError, match="family has 2 flags for 21 queries"):
        compare([query, *flat], refs, [True, False])


def test_match_finds_planted_box_at_offset():
    rng = np.random.default_rng(3)
    tataat = np.array(
        [
            [0.05, 0.05, 0.05, 0.85],
            [0.85, 0.05, 0.05, 0.05],
            [0.05, 0.05, 0.05, 0.85],
            [0.85, 0.05, 0.05, 0.05],
            [0.7, 0.1, 0.1, 0.1],
            [0.1, 0.1, 0.1, 0.7],
        ]
    )
    ref = Motif("long", np.vstack([rng.dirichlet(np.ones(4), 9), tataat, rng.dirichlet(np.ones(4), 5)]))
    ref_rc = Motif("long_rc", np.vstack([rng.dirichlet(np.ones(4), 4), tataat[::-1, ::-1], rng.dirichlet(np.ones(4), 3)]))
    (found,), table = best_matches([Motif("q", tataat)], [ref] + _decoys(rng))
    assert found.ref is ref and (found.offset, found.orientation, found.overlap) == (9, "+", 6)
    assert found.q_value < 1e-3
    (found,), _ = best_matches([Motif("q", tataat)], [ref_rc] + _decoys(rng))
    assert found.ref is ref_rc and (found.offset, found.orientation, found.overlap) == (3, "-", 6)


def test_match_overhang_and_few_references_note():
    a, c, g, t = (np.roll([0.7, 0.1, 0.1, 0.1], k) for k in range(4))
    # query T T C G C over reference C G C: query column 2 sits on reference column 0 -> offset -2
    table = compare([Motif("q", np.array([t, t, c, g, c]))], [Motif("r", np.array([c, g, c]))])
    assert (table.best(0).offset, table.best(0).orientation, table.best(0).overlap) == (-2, "+", 3)
    assert "1 reference motifs" in table.note
    empty = compare([Motif("q", np.array([a]))], [])
    assert empty.best(0) is None and empty.note == "no reference motifs"


@needs_data
def test_tomtom_finds_the_sigma70_boxes_among_the_shared_databases():
    refs = load_reference_motifs(MOTIF_DIR)
    box10 = np.array(
        [
            [0.05, 0.05, 0.05, 0.85],
            [0.85, 0.05, 0.05, 0.05],
            [0.05, 0.05, 0.05, 0.85],
            [0.85, 0.05, 0.05, 0.05],
            [0.7, 0.1, 0.1, 0.1],
            [0.1, 0.1, 0.1, 0.7],
        ]
    )  # TATAAT
    box35 = np.eye(4)[encode("TTGACA")] * 0.85 + 0.05
    found, table = best_matches([Motif("m10", box10), Motif("m35", box35)], refs)
    assert [m.ref.name for m in found] == ["sigma70_-10", "sigma70_-35"]
    # a 6-column query cannot reach a small Tomtom p-value (measured 4.9e-5 and 1.3e-4 against these 317)
    assert all(m.p_value < 2e-4 and m.q_value < 0.05 and m.orientation == "+" and m.offset == 0 for m in found)
    assert found[0].e_value == pytest.approx(found[0].p_value * len(refs))
    assert table.note == "" and table.q.shape == (2, len(refs))
