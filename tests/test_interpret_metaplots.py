"""Metaplot windows on both strands (wrap, linear ends), medians, CDS coverage and coding medians."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from genometracks.genome.intervals import Interval, SiteSet
from genometracks.genome.sequence import Genome
from genometracks.interpret import metaplots as MP


def _genome_and_tracks():
    g = Genome.from_sequences({"lin": "A" * 10, "circ": "C" * 8}, circular=["circ"])
    tracks = {
        "lin": {"+": np.arange(10, dtype=np.float32), "-": 100 + np.arange(10, dtype=np.float32)},
        "circ": {"+": np.arange(8, dtype=np.float32), "-": 100 + np.arange(8, dtype=np.float32)},
    }
    return g, tracks


def test_site_windows_sense_antisense_both_strands():
    g, tracks = _genome_and_tracks()
    sites = SiteSet(["lin", "lin", "circ", "circ"], [4, 4, 0, 7], ["+", "-", "+", "-"])
    sense, anti = MP.site_windows(tracks, g, sites, flank=2)  # columns r = -2..2
    assert sense[0].tolist() == [2, 3, 4, 5, 6]  # '+': forward p + r
    assert anti[0].tolist() == [102, 103, 104, 105, 106]
    assert sense[1].tolist() == [106, 105, 104, 103, 102]  # '-': forward p - r, upstream = higher coordinates
    assert anti[1].tolist() == [6, 5, 4, 3, 2]
    assert sense[2].tolist() == [6, 7, 0, 1, 2]  # circular wrap
    assert sense[3].tolist() == [101, 100, 107, 106, 105]  # '-' at 7: forward 9, 8, 7, 6, 5 → 1, 0, 7, 6, 5
    edge = SiteSet(["lin"], [1], ["-"])
    sense, anti = MP.site_windows(tracks, g, edge, flank=2)  # forward 3, 2, 1, 0, -1
    assert sense[0, :4].tolist() == [103, 102, 101, 100] and np.isnan(sense[0, 4]) and np.isnan(anti[0, 4])


def test_metaplot_table_medians_and_counts():
    g, tracks = _genome_and_tracks()
    sets = {"A": SiteSet(["lin", "lin", "lin"], [2, 4, 9], ["+", "+", "+"]), "B": SiteSet(["lin"], [5], ["-"])}
    table = MP.metaplot_table(tracks, g, sets, flank=1)
    a = table[table["set"] == "A"]
    assert a["position"].tolist() == [-1, 0, 1]
    assert a["sense_median"].tolist() == [3, 4, 4]  # (1, 3, 8), (2, 4, 9), (3, 5, NaN)
    assert a["n_sites"].tolist() == [3, 3, 2]
    b = table[table["set"] == "B"]
    assert b["sense_median"].tolist() == [106, 105, 104] and b["antisense_median"].tolist() == [6, 5, 4]


def test_sites_in_regions():
    sites = SiteSet(["x", "x", "y"], [5, 15, 5], ["+", "-", "+"])
    kept = MP.sites_in(sites, [Interval("x", 0, 10), Interval("y", 6, 9)])
    assert kept.pos.tolist() == [5] and kept.chrom.tolist() == ["x"]


def _gff(path, rows):
    text = "##gff-version 3\n" + "".join("\t".join(r) + "\n" for r in rows)
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    return path


def test_read_cds_and_coding_medians(tmp_path):
    g = Genome.from_sequences({"chr": "A" * 20})
    gff = _gff(
        tmp_path / "a.gff.gz",
        [
            ["chr", "RefSeq", "gene", "1", "20", ".", "+", ".", "ID=g"],
            ["chr", "RefSeq", "CDS", "3", "6", ".", "+", "0", "ID=c1"],  # forward [2, 6)
            ["chr", "RefSeq", "CDS", "5", "10", ".", "-", "0", "ID=c2"],  # forward [4, 10)
        ],
    )
    cds = MP.read_cds(gff, g)
    assert np.flatnonzero(cds["chr"]["+"]).tolist() == [2, 3, 4, 5]
    assert np.flatnonzero(cds["chr"]["-"]).tolist() == list(range(4, 10))
    tracks = {"chr": {"+": np.arange(20, dtype=np.float32), "-": 100 + np.arange(20, dtype=np.float32)}}
    med = MP.coding_medians(tracks, cds, [Interval("chr", 0, 12)])
    # '+': coding 2..5; antisense-only 6..9; non-coding 0, 1, 10, 11. '-': coding 4..9; antisense-only 2, 3
    assert med["coding"]["positions"] == 10 and med["coding"]["median"] == pytest.approx(
        np.median([2, 3, 4, 5] + [104, 105, 106, 107, 108, 109])
    )
    assert med["antisense_coding"]["median"] == pytest.approx(np.median([6, 7, 8, 9, 102, 103]))
    assert med["non_coding"]["median"] == pytest.approx(np.median([0, 1, 10, 11, 100, 101, 110, 111]))


def test_read_cds_bad_record_names_it(tmp_path):
    g = Genome.from_sequences({"chr": "A" * 20})
    gff = _gff(tmp_path / "b.gff.gz", [["chr", "R", "CDS", "9", "3", ".", "+", "0", "ID=bad"]])
    with pytest.raises(MP.MetaplotError, match=r"b\.gff\.gz: CDS record chr:9-3 \+: need 1 <= start <= end"):
        MP.read_cds(gff, g)
    # another assembly's annotation: a CDS past the 20-nt contig (was a bare IndexError, or silently clipped)
    for start in ("15", "25"):
        past = _gff(tmp_path / "p.gff.gz", [["chr", "R", "CDS", start, "30", ".", "+", "0", "ID=x"]])
        with pytest.raises(MP.MetaplotError, match=rf"p\.gff\.gz: CDS record chr:{start}-30 ends past the end of chr \(20 nt\)"):
            MP.read_cds(past, g)
    # on a circular contig GFF3 writes a CDS across the origin with end > length: it covers both ends
    circ = Genome.from_sequences({"chr": "A" * 20}, circular=["chr"])
    cds = MP.read_cds(_gff(tmp_path / "o.gff.gz", [["chr", "R", "CDS", "18", "23", ".", "-", "0", "ID=o"]]), circ)
    assert np.flatnonzero(cds["chr"]["-"]).tolist() == [0, 1, 2, 17, 18, 19] and not cds["chr"]["+"].any()
    with pytest.raises(MP.MetaplotError, match="no CDS rows"):
        MP.read_cds(_gff(tmp_path / "c.gff.gz", [["chr", "R", "gene", "1", "3", ".", "+", ".", "ID=g"]]), g)


def test_plot_metaplots_writes_a_png_with_one_panel_per_set(tmp_path):
    import matplotlib.image

    g, tracks = _genome_and_tracks()
    table = MP.metaplot_table(tracks, g, {"TSS": SiteSet(["lin"], [4], ["+"]), "TTS": SiteSet(["lin"], [5], ["-"])}, 2)
    MP.plot_metaplots(table, tmp_path / "m.png")
    image = matplotlib.image.imread(tmp_path / "m.png")
    assert image.shape[1] == 1000 and image.shape[0] == 320 and image.std() > 0.05  # two 5-inch panels at 100 dpi
    from PIL import Image

    assert Image.open(tmp_path / "m.png").text["Title"] == "TSS (n = 1), TTS (n = 1)"
