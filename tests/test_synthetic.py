"""The planted-promoter generator: boxes at exact offsets from each TSS on both strands, read back
from the written FASTA; counts, spacing, determinism, and the spec checks."""

from __future__ import annotations

import numpy as np
import pytest

from genometracks.data.streams import build_labels
from genometracks.genome.sequence import Genome
from genometracks.labels.synthetic import SyntheticError, SyntheticSpec, make_synthetic, write_synthetic

COMP = str.maketrans("ACGT", "TGCA")


def on_strand(seq: str, start: int, end: int, strand: str) -> str:
    """Letters of forward [start, end) read 5'→3' on `strand` (plain string ops)."""
    piece = seq[start:end]
    return piece if strand == "+" else piece[::-1].translate(COMP)


def upstream(seq: str, tss: int, strand: str, frm: int, to: int) -> str:
    """Letters at promoter positions frm..to (relative to +1, no 0; frm < to < 0) on `strand`."""
    if strand == "+":
        return seq[tss + frm : tss + to + 1]
    return seq[tss - to : tss - frm + 1][::-1].translate(COMP)


@pytest.mark.parametrize("minus35, minus10, offset", [("TTGACA", "TATAAT", 7), ("GGCCAT", "CAGCTTAG", 5)])
def test_boxes_at_exact_offsets_on_both_strands(tmp_path, minus35, minus10, offset):
    spec = SyntheticSpec(
        length=30_000, n_contigs=2, density=2e-3, minus35=minus35, minus10=minus10, spacer=(15, 19), tss_offset=offset, seed=3
    )
    fasta, bed = write_synthetic(spec, tmp_path)
    genome = Genome.open(fasta, circular=spec.circular_contigs)
    seqs = {name: genome.sequence(name, 0, c.length) for name, c in genome.contigs.items()}
    rows = [line.split("\t") for line in bed.read_text().splitlines()]
    assert len(rows) == 2 * 2 * 60  # 2 contigs x 2 strands x round(0.002 * 30000)
    l10, l35 = len(minus10), len(minus35)
    spacers = []
    for chrom, start, end, _name, _score, strand in rows:
        tss = int(start)
        assert int(end) == tss + 1 and strand in "+-"
        # the -10 box ends `offset` nt before +1: positions -(offset+l10-1) .. -offset
        assert upstream(seqs[chrom], tss, strand, -(offset + l10 - 1), -offset) == minus10
        spacer = next(
            s
            for s in range(15, 20)
            if upstream(seqs[chrom], tss, strand, -(offset + l10 - 1) - s - l35, -(offset + l10 - 1) - s - 1) == minus35
        )
        spacers.append(spacer)
    assert set(spacers) == set(range(15, 20))
    assert {r[5] for r in rows} == {"+", "-"} and sum(r[5] == "-" for r in rows) == 120


def test_planted_boxes_dict_and_the_tss_layout():
    spec = SyntheticSpec(length=5_000, n_contigs=1, density=1e-3, minus35="ACGTAC", minus10="GGGAAA", seed=1)
    seqs, sites, boxes = make_synthetic(spec)
    seq = seqs["syn1"]
    assert len(seq) == 5_000 and len(sites) == 10 and set(sites.strand) == {"+", "-"}
    for i in range(len(sites)):
        tss, strand, s = int(boxes["tss"][i]), boxes["strand"][i], int(boxes["spacer"][i])
        b35, b10 = int(boxes["minus35_start"][i]), int(boxes["minus10_start"][i])
        assert tss == sites.pos[i] and strand == sites.strand[i]
        assert on_strand(seq, b35, b35 + 6, strand) == "ACGTAC" == boxes["minus35_seq"][i]
        assert on_strand(seq, b10, b10 + 6, strand) == "GGGAAA" == boxes["minus10_seq"][i]
        if strand == "+":  # -10 box is -12..-7, TSS 7 nt after its last base; spacer between the boxes
            assert (b10 + 5 + 7, b10 - (b35 + 6)) == (tss, s)
        else:
            assert (b10 - 7, b35 - (b10 + 6)) == (tss, s)


def test_no_overlapping_plants_and_labels_count():
    spec = SyntheticSpec(length=20_000, n_contigs=2, density=5e-3, seed=2)
    seqs, sites, boxes = make_synthetic(spec)
    for chrom in ("syn1", "syn2"):
        sel = boxes["chrom"] == chrom
        lo = np.minimum(boxes["minus35_start"][sel], boxes["tss"][sel])
        hi = np.maximum(boxes["minus35_start"][sel] + 6, boxes["tss"][sel] + 1)
        order = np.argsort(lo)
        assert (lo[order][1:] >= hi[order][:-1]).all()
    genome = Genome.from_sequences(seqs, circular=spec.circular_contigs)
    assert [c.circular for c in genome.contigs.values()] == [True, False]
    labels = build_labels(genome, sites, 20)
    # circular syn1 keeps every TSS; linear syn2 loses those within 20 nt of the strand's 3' end
    lost = np.count_nonzero(
        (sites.chrom == "syn2") & (((sites.strand == "+") & (sites.pos >= 20_000 - 20)) | ((sites.strand == "-") & (sites.pos < 20)))
    )
    assert sum(int(v.sum()) for v in labels.values()) == len(sites) - lost


def test_gc_and_mutation_rate():
    seqs, _, boxes = make_synthetic(SyntheticSpec(length=50_000, n_contigs=1, density=0.0, gc=0.7, seed=4))
    gc = sum(seqs["syn1"].count(c) for c in "GC") / 50_000
    assert abs(gc - 0.7) < 0.01 and len(boxes["tss"]) == 0
    _, _, boxes = make_synthetic(SyntheticSpec(length=20_000, n_contigs=1, density=2e-3, mutation_rate=1.0))
    assert all(sum(a == b for a, b in zip(s, "TATAAT")) == 0 for s in boxes["minus10_seq"])
    _, _, boxes = make_synthetic(SyntheticSpec(length=50_000, n_contigs=1, density=4e-3, mutation_rate=0.2))
    changed = np.mean([a != b for s in boxes["minus35_seq"] for a, b in zip(s, "TTGACA")])
    assert 0.15 < changed < 0.25  # 2,400 box letters, each changed with probability 0.2


def test_files_are_deterministic_and_80_wide(tmp_path):
    spec = SyntheticSpec(length=1_000, n_contigs=2, seed=9)
    a = [p.read_bytes() for p in write_synthetic(spec, tmp_path / "a")]
    b = [p.read_bytes() for p in write_synthetic(SyntheticSpec(length=1_000, n_contigs=2, seed=9), tmp_path / "b")]
    c = [p.read_bytes() for p in write_synthetic(SyntheticSpec(length=1_000, n_contigs=2, seed=10), tmp_path / "c")]
    assert a == b and a[0] != c[0]
    lines = a[0].decode().splitlines()
    assert lines[0] == ">syn1" and lines[14] == ">syn2" and [len(x) for x in lines[1:14]] == [80] * 12 + [40]
    assert not list((tmp_path / "a").glob("*.tmp"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"minus10": "TAXAAT"}, "minus10"),
        ({"spacer": (19, 15)}, "spacer"),
        ({"gc": 1.5}, "gc"),
        ({"mutation_rate": -0.1}, "mutation_rate"),
        ({"length": 0}, "length"),
        ({"tss_offset": 0}, "tss_offset"),
        ({"density": -1.0}, "density"),
    ],
)
def test_bad_spec(kwargs, match):
    with pytest.raises(SyntheticError, match=match):
        SyntheticSpec(**kwargs)


def test_density_too_high():
    with pytest.raises(SyntheticError, match="lower the density"):
        make_synthetic(SyntheticSpec(length=1_000, n_contigs=1, density=0.05))
