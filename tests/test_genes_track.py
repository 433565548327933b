"""The annotation's genes as a browser track (inference.genes_track): records, the bigBed read back by
pyBigWig and kent, name search, and the track in the hub, the IGV session and the JBrowse view."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from genometracks.formats.bigbed_index import find_named_records, searchable_fields
from genometracks.formats.trix import trix_paths
from genometracks.inference.genes_track import GENES_SCHEMA, gene_records, write_genes_track
from genometracks.io.paths import shared_data
from genometracks.labels.genes import GeneSet, read_genes
from tests.kent import HAVE_KENT, assert_hub_clean, kent
from tests.test_gene_context import L, two_gene_genome  # contig 'c' of L nt with geneA (+) and geneB (-)

ECOLI = shared_data() / "ecoli_k12"


def _genes(*rows: tuple[str, int, int, str, str, str]) -> GeneSet:
    """A GeneSet from (chrom, start, end, strand, name, locus_tag) rows (0-based half-open)."""
    cols = list(zip(*rows, strict=True))
    return GeneSet(
        chrom=np.array(cols[0], object),
        start=np.array(cols[1], np.int64),
        end=np.array(cols[2], np.int64),
        strand=np.array(cols[3], "<U1"),
        name=np.array(cols[4], object),
        locus_tag=np.array(cols[5], object),
        source="hand-made",
    )


SIZES = {"chr_b": 5_000, "chr_a": 1_000}
GENES = _genes(
    ("chr_b", 100, 400, "+", "dnaA", "b0001"),
    ("chr_a", 900, 1_100, "-", "oriX", "t2"),  # across chr_a's origin (circular): 900-1000 and 0-100
    ("chr_a", 200, 300, "+", "", "t3"),  # no name: the locus tag names it
    ("chr_b", 50, 80, "-", "rrsA", ""),  # no locus tag: '.'
)


def test_records_name_every_gene_cut_at_the_origin_and_sorted():
    frame = gene_records(GENES, SIZES)
    assert list(frame.columns) == list(GENES_SCHEMA.columns)
    assert frame.values.tolist() == [
        ["chr_a", 0, 100, "oriX", 0, "-", "t2"],
        ["chr_a", 200, 300, "t3", 0, "+", "t3"],
        ["chr_a", 900, 1_000, "oriX", 0, "-", "t2"],
        ["chr_b", 50, 80, "rrsA", 0, "-", "."],
        ["chr_b", 100, 400, "dnaA", 0, "+", "b0001"],
    ]


def test_bigbed_reads_back_with_pybigwig_and_kent_and_finds_genes_by_name_or_locus_tag(tmp_path):
    path = write_genes_track(tmp_path, GENES, SIZES)
    assert path == tmp_path / "genes.bb"
    with pyBigWig.open(str(path)) as bb:
        assert bb.chroms() == SIZES
        assert [(s, e, rest.split("\t")) for s, e, rest in bb.entries("chr_a", 0, 1_000)] == [
            (0, 100, ["oriX", "0", "-", "t2"]),
            (200, 300, ["t3", "0", "+", "t3"]),
            (900, 1_000, ["oriX", "0", "-", "t2"]),
        ]
        assert "locus_tag" in bb.SQL().decode()
    assert searchable_fields(path) == ["name", "locus_tag"]
    assert len(find_named_records(path, "name", "dnaA")) == 1  # the data block holding it
    assert len(find_named_records(path, "locus_tag", "b0001")) == 1 and find_named_records(path, "name", "b0001") == []
    assert all(p.is_file() for p in trix_paths(path))  # the case-blind word index of UCSC and igv.js
    # the plain BED6 IGV reads whole (and so searches by name): the same genes, the same order
    assert (tmp_path / "genes.bed").read_text().splitlines() == [
        "chr_a\t0\t100\toriX\t0\t-",
        "chr_a\t200\t300\tt3\t0\t+",
        "chr_a\t900\t1000\toriX\t0\t-",
        "chr_b\t50\t80\trrsA\t0\t-",
        "chr_b\t100\t400\tdnaA\t0\t+",
    ]
    if HAVE_KENT:
        out = tmp_path / "back.bed"
        assert kent("bigBedToBed", path, out).returncode == 0
        assert out.read_text().splitlines()[:2] == ["chr_a\t0\t100\toriX\t0\t-\tt2", "chr_a\t200\t300\tt3\t0\t+\tt3"]
        info = kent("bigBedInfo", "-extraIndex", path)
        assert info.returncode == 0 and "fieldCount: 7" in info.stdout and "definedFieldCount: 6" in info.stdout
        assert [line.split()[0] for line in info.stdout.splitlines() if line.startswith(" ")][:2] == ["name", "locus_tag"]


def test_no_annotation_removes_an_earlier_track(tmp_path):
    write_genes_track(tmp_path, GENES, SIZES)
    assert write_genes_track(tmp_path, None, SIZES) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _run_with_annotation(tmp_path: Path, annotation: bool = True):
    """A custom genome's run with TSS tracks and the peaks stage run, with or without a GFF3."""
    from genometracks.formats.bigwig import write_bigwig
    from genometracks.inference.peaks import peaks_command
    from tests.conftest import compose

    fasta, gff = two_gene_genome(tmp_path, seed=3)
    run = tmp_path / "run"
    signal = {s: {"c": np.full(L, 0.01, np.float32)} for s in "+-"}
    signal["+"]["c"][950] = signal["-"]["c"][6049] = 0.9
    for strand, word in (("+", "plus"), ("-", "minus")):
        write_bigwig(run / "tracks" / f"tss.{word}.bw", {"c": L}, signal[strand])
    overrides = ["data=custom", f"data.fasta={fasta}", "predict.peaks.threshold=0.5", f"run_dir={run}"]
    cfg = compose(*overrides, *([f"data.annotation={gff}"] if annotation else []))
    summary = peaks_command(cfg)
    return run, fasta, summary


def test_peaks_writes_the_genes_track_and_export_shows_it_in_every_browser(tmp_path):
    from genometracks.browser.export import export_run

    run, fasta, summary = _run_with_annotation(tmp_path)
    assert summary["files"]["genes"] == "tracks/genes.bb"
    with pyBigWig.open(str(run / "tracks" / "genes.bb")) as bb:
        assert [(s, e, rest) for s, e, rest in bb.entries("c", 0, L)] == [
            (1000, 2000, "geneA\t0\t+\ttA"),
            (5000, 6000, "geneB\t0\t-\ttB"),
        ]
    export_run(run, fasta, {"c": L}, {"email": "a@b.org"}, "Testus genomicus")
    hub = run / "hub"
    genome = next(p for p in hub.iterdir() if p.is_dir())
    stanzas = {s.split("\n")[0].split()[1]: s for s in (genome / "trackDb.txt").read_text().split("\n\n") if s.strip()}
    genes = dict(line.split(" ", 1) for line in stanzas["genes"].splitlines())
    assert genes["type"] == "bigBed 6 +" and genes["bigDataUrl"] == "genes.bb"
    assert genes["searchIndex"] == "name,locus_tag" and genes["searchTrix"] == "genes.ix"
    assert genes["group"] == "genes" and genes["color"] == "12,12,120" and genes["html"] == "html/genes.html"
    # drawn right below the TSS probability, above the calls
    order = {name: int(dict(line.split(" ", 1) for line in s.splitlines())["priority"]) for name, s in stanzas.items() if "priority" in s}
    assert order["tss_signal"] < order["genes"] < order["tss_peaks"]
    assert "name genes\nlabel Genes (genome annotation)" in (genome / "groups.txt").read_text()
    assert_hub_clean(hub)
    session = ET.parse(run / "igv" / "session.xml").getroot()
    resources = [r.get("path") for r in session.iter("Resource")]
    assert any(p.endswith("tracks/genes.bed") for p in resources)  # read whole: IGV finds a gene by name
    config = json.loads((run / "jbrowse" / "config.json").read_text())
    track = next(t for t in config["tracks"] if t["trackId"] == "genes")
    assert track["category"] == ["Genes"] and "textSearching" in track
    # a run given no annotation after one with it: the genes go from the tracks and from the views
    run, fasta, summary = _run_with_annotation(tmp_path, annotation=False)
    assert "genes" not in summary["files"] and not list((run / "tracks").glob("genes.*"))
    export_run(run, fasta, {"c": L}, {"email": "a@b.org"}, "Testus genomicus")
    assert "track genes" not in (genome / "trackDb.txt").read_text()
    assert "genes.b" not in (run / "igv" / "session.xml").read_text()


@pytest.mark.skipif(not (ECOLI / "refseq_annotation").is_dir(), reason="shared E. coli data absent")
def test_ecoli_refseq_genes_track_finds_lacz_where_the_gff3_puts_it(tmp_path):
    sizes = {"NC_000913.3": 4_641_652}
    genes = read_genes(ECOLI / "refseq_annotation" / "NC_000913.3.gff.gz", sizes, frozenset(sizes))
    path = write_genes_track(tmp_path, genes, sizes)
    with pyBigWig.open(str(path)) as bb:
        assert len(bb.entries("NC_000913.3", 0, 4_641_652)) == 4_639  # the GFF3's gene + pseudogene rows
        assert ("lacZ\t0\t-\tb0344") in [rest for _, _, rest in bb.entries("NC_000913.3", 363_230, 366_305)]
    # GFF3 363231-366305 (1-based, closed) is 363230-366305 (0-based, half-open)
    assert find_named_records(path, "name", "lacZ") == find_named_records(path, "locus_tag", "b0344")
    assert len(find_named_records(path, "name", "lacZ")) == 1
