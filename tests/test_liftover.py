"""Liftover: OffsetMap inference and mapping on synthetic assemblies with known indels."""

from __future__ import annotations

import numpy as np
import pytest

from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import decode, encode, reverse_complement
from genometracks.labels.liftover import (
    LiftoverError,
    OffsetMap,
    gene_offset_map,
    lift_sites,
    locate_flanks,
    take_sites,
)
from tests.conftest import ECOLI, needs_ecoli


def test_offset_map_from_anchors_known_breakpoints():
    # genes (old [start, end)) with offsets 0, 0 | +10, +10, +10 | +7, +7
    old_start = np.array([100, 300, 1000, 1200, 1500, 3000, 3300])
    old_end = old_start + 100
    offsets = np.array([0, 0, 10, 10, 10, 7, 7])
    omap = OffsetMap.from_anchors(old_start[::-1], old_end[::-1], (old_start + offsets)[::-1])  # any order
    assert omap.breakpoints == [(400, 1000, 0, 10), (1600, 3000, 10, 7)]
    new, ok = omap.map(np.array([0, 399, 400, 999, 1000, 1599, 1600, 2999, 3000, 10_000]))
    assert list(ok) == [True, True, False, False, True, True, False, False, True, True]
    assert list(new[ok]) == [0, 399, 1010, 1609, 3007, 10_007]


def test_offset_map_built_directly():
    omap = OffsetMap([0, 500, 900], [400, 800, 2000], [0, 3, -2])  # lists are fine
    new, ok = omap.map(np.array([10, 450, 600, 850, 1000]))
    assert list(ok) == [True, False, True, False, True] and list(new[ok]) == [10, 603, 998]
    with pytest.raises(LiftoverError, match="sorted, non-overlapping"):
        OffsetMap([0, 300], [400, 800], [0, 3])


def test_offset_map_ignores_a_lone_outlier_anchor():
    old_start = np.arange(10) * 1000
    offsets = np.array([0, 0, 0, 0, 555, 0, 0, 5, 5, 5])  # gene 4: re-annotated, not an indel
    omap = OffsetMap.from_anchors(old_start, old_start + 500, old_start + offsets)
    assert [(b[2], b[3]) for b in omap.breakpoints] == [(0, 5)]
    assert omap.breakpoints[0][:2] == (6500, 7000)
    with pytest.raises(LiftoverError, match="no anchors"):
        OffsetMap.from_anchors(np.array([]), np.array([]), np.array([]))


def test_gene_offset_map_from_gtf_and_gff(tmp_path):
    old = tmp_path / "old.gtf"
    old.write_text(
        "".join(
            f'old\tx\tCDS\t{s}\t{e}\t.\t+\t.\tgene_id "{b}"; gene_id "sym";\n'
            for b, s, e in [
                ("b0001", 101, 200),
                ("b0002", 301, 400),
                ("b0003", 501, 600),
                ("b0004", 801, 900),
                ("b0005", 1001, 1100),
                ("b0006", 1201, 1300),
                ("b0006", 1401, 1450),
            ]
        )
    )
    new = tmp_path / "new.gff"
    new.write_text(
        "".join(
            f"new\tRefSeq\tgene\t{s}\t{e}\t.\t+\t.\tID=gene-{b};locus_tag={b}\n"
            for b, s, e in [
                ("b0001", 101, 200),
                ("b0002", 301, 400),
                ("b0003", 521, 622),  # b0003: 2 nt longer → no anchor
                ("b0004", 831, 930),
                ("b0005", 1031, 1130),
                ("b0006", 1231, 1330),
            ]
        )
    )  # b0006 twice in old → no anchor
    omap = gene_offset_map(old, new)
    assert omap.breakpoints == [(400, 800, 0, 30)]
    assert list(omap.lo) == [100, 800] and list(omap.hi) == [400, 1100]


def random_sequence(n: int, seed: int) -> str:
    return decode(np.random.default_rng(seed).integers(0, 4, n).astype(np.uint8))


def test_lift_sites_with_synthetic_insertion_and_flank_rescue():
    old = random_sequence(3000, 1)
    insert = random_sequence(25, 2)
    new = old[:1500] + insert + old[1500:]  # 25-nt insertion after old position 1499
    omap = OffsetMap.from_anchors(np.array([100, 600, 2000, 2500]), np.array([300, 800, 2200, 2700]), np.array([100, 600, 2025, 2525]))
    pos = np.array([50, 700, 1000, 2100, 2900])
    strand = np.array(["+", "-", "+", "-", "+"])
    sites = SiteSet(np.array(["old"] * 5, object), pos, strand, name=np.array(list("abcde"), object))
    sites.meta["line"] = np.arange(5) + 1
    lifted = lift_sites(sites, omap, "new", target_length=len(new))
    assert list(lifted.pos) == [50, 700, 2125, 2925] and list(lifted.name) == ["a", "b", "d", "e"]
    assert list(lifted.meta["line"]) == [1, 2, 4, 5]  # per-site meta follows the records
    report = lifted.meta["liftover"]
    assert (report["lifted"], report["dropped"], report["dropped_ambiguous"]) == (4, 1, 1)
    # with flanks (20 nt upstream + the +1 nt, read on the record's strand) the gap record is rescued
    fwd = encode(old)
    flanks = [decode(fwd[p - 20 : p + 1]) if s == "+" else decode(reverse_complement(fwd[p : p + 21])) for p, s in zip(pos, strand)]
    sites.meta.update(flank=np.array(flanks, object), flank_plus1=np.full(5, 20))
    lifted = lift_sites(sites, omap, "new", len(new), tokens=encode(new))
    assert list(lifted.pos) == [50, 700, 1000, 2125, 2925]
    assert lifted.meta["liftover"]["by_sequence"] == 5 and lifted.meta["liftover"]["dropped"] == 0
    assert lifted.meta["liftover"]["sequence_disagrees"] == 0


def test_locate_flanks_unique_ambiguous_absent_and_n():
    seq = random_sequence(2000, 3)
    repeat = random_sequence(30, 4)
    seq = seq[:300] + repeat + seq[330:900] + repeat + seq[930:]  # the same 30 nt at 300 and 900
    tokens = encode(seq)
    flanks = np.array(
        [
            seq[480:510],  # '+', +1 at index 29 → 509
            decode(reverse_complement(tokens[1200:1230])),  # '-', +1 at index 29 → 1200
            repeat,  # twice within max_shift
            random_sequence(30, 5),  # absent
            seq[480:500] + "N" * 10,
        ],
        object,
    )  # not plain ACGT
    strand = np.array(["+", "-", "+", "+", "+"])
    found = locate_flanks(tokens, flanks, strand, np.full(5, 29), expected=np.array([500, 1190, 600, 0, 500]))
    assert list(found) == [509, 1200, -1, -1, -1]
    # the repeat is unique within a small search window
    found = locate_flanks(tokens, flanks[2:3], strand[2:3], np.array([29]), np.array([335]), max_shift=100)
    assert list(found) == [329]


def test_take_sites_subsets_meta_arrays_only():
    sites = SiteSet(np.array(["c"] * 3, object), [1, 2, 3], ["+", "+", "-"])
    sites.meta.update(sigma=np.array(["a", "b", "c"], object), note="kept", other=np.arange(2))
    out = take_sites(sites, np.array([2, 0]))
    assert list(out.pos) == [3, 1] and list(out.meta["sigma"]) == ["c", "a"]
    assert out.meta["note"] == "kept" and list(out.meta["other"]) == [0, 1]


@needs_ecoli
def test_inferred_breakpoints_match_provenance():
    omap = gene_offset_map(ECOLI / "cappable_seq_ettwiller2016/U00096_protein_coding.gtf", ECOLI / "refseq_annotation/NC_000913.3.gff.gz")
    assert list(omap.offset) == [0, 776, 777, 1976, 1978, 1977]  # PROVENANCE.md, cumulative offsets
    gaps = omap.breakpoints
    assert len(gaps) == 5 and all(0 < end - start < 2000 for start, end, _, _ in gaps)
    assert gaps[0][0] < 257_900 < gaps[0][1]  # crl (b0240, IS1 insertion) lies in the first gap


def test_an_indel_past_the_last_segment_is_not_lifted_with_the_wrong_offset():
    # anchors: three genes at offset 0, then one gene (a run too short to be a segment) at +10 after an
    # insertion; the last segment's offset used to extend to the contig's end, so sites past the
    # insertion were lifted 10 nt short without a word
    old_start = np.array([100, 400, 700, 1650])
    omap = OffsetMap.from_anchors(old_start, old_start + 100, old_start + np.array([0, 0, 0, 10]))
    assert list(omap.offset) == [0] and omap.trusted_to == 800 and omap.trusted_from is None
    new, ok = omap.map(np.array([50, 750, 799, 800, 1710, 1770]))
    assert list(ok) == [True, True, True, False, False, False]
    assert list(new[ok]) == [50, 750, 799]
    # the same before the first segment
    old_start = np.array([50, 400, 700, 1000])
    omap = OffsetMap.from_anchors(old_start, old_start + 100, old_start + np.array([-5, 0, 0, 0]))
    assert omap.trusted_from == 400 and omap.trusted_to is None
    assert list(omap.map(np.array([10, 399, 400, 5000]))[1]) == [False, False, True, True]
    # an outlier inside a segment (a re-annotated gene) limits nothing
    old_start = np.array([100, 400, 700, 1000, 1650])
    omap = OffsetMap.from_anchors(old_start, old_start + 100, old_start + np.array([0, 0, 5, 0, 0]))
    assert list(omap.offset) == [0] and omap.trusted_from is None and omap.trusted_to is None
    assert omap.map(np.array([0, 3000]))[1].all()
