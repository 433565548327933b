"""Motif type, information content, k-mer PFMs, MEME/TRANSFAC io, sigma70 boxes, motif matching."""
from __future__ import annotations

import numpy as np
import pytest

from genometracks.interpret.matching import best_match, match
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
    kmers = np.array([[0, 1, 4],   # A C N
                      [0, 2, 3],   # A G T
                      [3, 2, 3]])  # T G T
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
    np.testing.assert_allclose(rc.probabilities[1], [0, 1.0, 0, 0])   # G → C
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
    motifs = [Motif("L0H1", counts, nsites=100, alt_name="TATAAT-like"),
              Motif("L1H0", rng.dirichlet(np.ones(4), size=5), nsites=0)]
    bg = np.array([0.3, 0.2, 0.2, 0.3])
    path = write_meme(motifs, tmp_path / "heads.meme", background=bg)
    text = path.read_text()
    assert text.startswith("MEME version 4\n")
    assert "letter-probability matrix: alength= 4 w= 7 nsites= 100 E= 0" in text
    back = read_meme(path)
    assert [m.name for m in back] == ["L0H1", "L1H0"] and back[0].alt_name == "TATAAT-like"
    assert back[0].nsites == 100 and back[1].nsites == 20   # unknown → MEME default
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
    bad.write_text("MEME version 4\n\nALPHABET= ACGT\n\nMOTIF a\nletter-probability matrix: alength= 4 w= 2\n"
                   "0.1 0.2 0.3 0.4\n0.1 0.2 x 0.4\n")
    with pytest.raises(MotifError, match=r"bad\.meme line 8"):
        read_meme(bad)
    protein = tmp_path / "p.meme"
    protein.write_text("MEME version 4\nALPHABET= ACDEFGHIKLMNPQRSTVWY\n")
    with pytest.raises(MotifError, match="not DNA"):
        read_meme(protein)


def test_transfac_by_hand(tmp_path):
    path = tmp_path / "m.tf"
    path.write_text("AC  X1\nXX\nID  LexA\nXX\nP0      T     G     C     A\n1   1.0 0.0 0.0 3.0\n"
                    "2   0.0 4.0 0.0 0.0\nXX\nCC  ac: width=2\nXX\n//\n"
                    "AC  MX9\nXX\nID  MX9\nXX\nP0 A C G T\n01 2 2 0 0 M\nXX\nCC  ac: Fur\n//\n")
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


# ----------------------------------------------------------------------------- matching

def _informative(rng, k):
    return Motif(f"r{k}", rng.dirichlet(np.full(4, 0.3), size=k))


def test_match_self_and_reverse_complement():
    rng = np.random.default_rng(2)
    query = _informative(rng, 8)
    refs = [_informative(rng, 10), query, _informative(rng, 12)]
    top = match(query, refs, n_shuffles=200)
    assert top[0].ref is query and top[0].score == pytest.approx(1.0)
    assert (top[0].offset, top[0].orientation, top[0].overlap) == (0, "+", 8)
    assert top[0].p_value == pytest.approx(1 / 201)   # only the identity-like shuffles reach 1
    rc = best_match(query.reverse_complement(), [query], n_shuffles=50)
    assert rc.score == pytest.approx(1.0) and (rc.offset, rc.orientation) == (0, "-")


def test_match_finds_planted_box_at_offset():
    rng = np.random.default_rng(3)
    tataat = np.array([[0.05, 0.05, 0.05, 0.85], [0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.05, 0.85],
                       [0.85, 0.05, 0.05, 0.05], [0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    ref = Motif("long", np.vstack([rng.dirichlet(np.ones(4), 9), tataat, rng.dirichlet(np.ones(4), 5)]))
    found = best_match(Motif("q", tataat), [ref], n_shuffles=300)
    assert (found.offset, found.orientation, found.overlap) == (9, "+", 6)
    assert found.score == pytest.approx(1.0)
    # the reverse complement of the box, planted, is found in '-' orientation at the same place
    ref_rc = Motif("long_rc", np.vstack([rng.dirichlet(np.ones(4), 4), tataat[::-1, ::-1],
                                         rng.dirichlet(np.ones(4), 3)]))
    found = best_match(Motif("q", tataat), [ref_rc], n_shuffles=0)
    assert (found.offset, found.orientation, found.score) == (4, "-", pytest.approx(1.0))
    assert np.isnan(found.p_value)


def test_match_overhang_and_hand_score():
    # query AC over ref CCC: only query column 1 on ref column 0 scores 1 → offset -1
    a, c, g = [0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1]
    found = best_match(Motif("q", np.array([a, c])), [Motif("r", np.array([c, c, c]))], min_overlap=1,
                       n_shuffles=0)
    assert (found.offset, found.orientation, found.overlap, found.score) == (-1, "+", 1, pytest.approx(1.0))
    # two columns aligned, one perfect (r = 1) and one A vs G (centred .45/-.15: r = -0.09 / 0.27 = -1/3)
    found = best_match(Motif("q", np.array([c, a])), [Motif("r", np.array([c, g]))], min_overlap=2,
                       n_shuffles=0)
    assert found.score == pytest.approx((1 - 1 / 3) / 2) and found.offset == 0
