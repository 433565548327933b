"""IGV session, batch script and igv.js page: relative paths that resolve, colours, negation, autoscale."""

from __future__ import annotations

import gzip
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genometracks.browser.igv import IgvError, IgvTrack, ensure_igv_js, write_igv
from genometracks.formats.bigbed import BedSchema, write_bed_outputs
from genometracks.formats.bigwig import write_bigwig

SEQS = {"chrA": "ACGT" * 300, "chrB": "GGCCAATT" * 50}


def make_run(run: Path, gz: bool = False) -> tuple[Path, list[IgvTrack]]:
    """A tiny run directory: genome FASTA outside it, tracks under DIR/tracks."""
    sizes = {c: len(s) for c, s in SEQS.items()}
    fasta = run.parent / ("genome.fa.gz" if gz else "genome.fa")
    text = "".join(f">{n}\n" + "\n".join(s[i : i + 60] for i in range(0, len(s), 60)) + "\n" for n, s in SEQS.items())
    fasta.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    values = {c: np.linspace(0, 1, n, dtype=np.float32) for c, n in sizes.items()}
    write_bigwig(run / "tracks" / "tss.plus.bw", sizes, values)
    write_bigwig(run / "tracks" / "tss.minus.bw", sizes, {c: 1 - v for c, v in values.items()})  # strands told apart
    peaks = pd.DataFrame(
        {"chrom": ["chrA", "chrA"], "start": [10, 700], "end": [20, 712], "name": ["p1", "p2"], "score": [500, 900], "strand": ["+", "-"]}
    )
    write_bed_outputs(peaks, run / "tracks" / "peaks", BedSchema("tssPeaks", "peaks"), sizes)
    tracks = [
        IgvTrack("TSS +", run / "tracks" / "tss.plus.bw", (200, 0, 0), overlay="TSS"),
        IgvTrack("TSS -", Path("tracks/tss.minus.bw"), (0, 0, 200), negate=True, overlay="TSS"),
        IgvTrack("Peaks", Path("tracks/peaks.bed.gz"), (0, 120, 0)),
        IgvTrack("Peaks (bigBed)", Path("tracks/peaks.bb")),
    ]
    return fasta, tracks


@pytest.fixture
def fake_igv_js(tmp_path, monkeypatch):
    script = tmp_path / "igv.min.js"
    script.write_text("/* stand-in for igv.js */")
    monkeypatch.setenv("GENOMETRACKS_IGV_JS", str(script))
    return script


def test_session_paths_resolve_and_tracks_styled(tmp_path, fake_igv_js):
    run = tmp_path / "run"
    fasta, tracks = make_run(run)
    out = write_igv(run, fasta, tracks, locus="chrA:1-1000")
    igv_dir = run / "igv"
    session = ET.parse(out["session.xml"]).getroot()
    assert session.get("locus") == "chrA:1-1000"
    assert session.get("genome") == "genome/genome.json"  # IGV desktop's JSON genome: FASTA, index and aliases
    described = json.loads((igv_dir / "genome" / "genome.json").read_text())
    assert described == {
        "id": "genome",
        "name": "genometracks",  # write_igv's title
        "fastaURL": "genome.fa",
        "indexURL": "genome.fa.fai",
        "aliasURL": "chromAlias.txt",
    }
    for key in ("fastaURL", "indexURL", "aliasURL"):  # relative to the JSON file, as IGV resolves them
        assert (igv_dir / "genome" / described[key]).is_file()
    genome = igv_dir / "genome" / described["fastaURL"]
    assert genome.read_text().startswith(">chrA")
    fai = Path(str(genome) + ".fai").read_text().splitlines()
    assert [line.split("\t")[:2] for line in fai] == [["chrA", "1200"], ["chrB", "400"]]
    resources = session.find("Resources")
    for resource in resources:
        assert not Path(resource.get("path")).is_absolute()
        assert (igv_dir / resource.get("path")).resolve().is_file()  # never a missing file
    bed = next(r for r in resources if r.get("name") == "Peaks")
    # no `index`: IGV resolves it against its working directory, but finds <file>.tbi itself
    assert bed.get("type") == "bed" and "index" not in bed.attrib
    assert (igv_dir / (bed.get("path") + ".tbi")).resolve().is_file()
    # the strands are one merged track (one axis, + up and - down), in the place of its first member
    data_panel = session.find("Panel[@name='DataPanel']")
    assert [t.get("name") for t in data_panel] == ["TSS", "Peaks", "Peaks (bigBed)"]
    merged = data_panel[0]
    assert merged.get("clazz") == "org.broad.igv.track.MergedTracks" and merged.get("alpha") == "1.0"
    # IGV applies a merged track's height, scale and window function to members it has not read yet: none on it
    assert not {"height", "autoScale", "windowFunction", "renderer"} & set(merged.attrib) and merged.find("DataRange") is None
    panel = {t.get("name"): t for t in [*merged, *data_panel[1:]]}
    assert [t.get("name") for t in merged] == ["TSS +", "TSS -"]
    assert panel["TSS +"].get("color") == "200,0,0" and panel["TSS -"].get("color") == "0,0,200"
    # IGV desktop ignores flipAxis: the minus track is a negated copy, drawn below the axis
    minus = panel["TSS -"].find("DataRange")
    assert minus.get("flipAxis") == "false" and float(minus.get("minimum")) < 0 and float(minus.get("maximum")) == 0
    assert panel["TSS -"].get("id") == "tss_minus.neg.bw"
    import numpy as np

    from genometracks.formats.bigwig import read_bigwig

    np.testing.assert_array_equal(read_bigwig(igv_dir / "tss_minus.neg.bw", "chrA"), -read_bigwig(run / "tracks" / "tss.minus.bw", "chrA"))
    assert panel["TSS +"].find("DataRange").get("flipAxis") == "false"
    sequence = session.find("Panel[@name='FeaturePanel']/Track")
    assert sequence.get("clazz") == "org.broad.igv.track.SequenceTrack"  # the session keeps the sequence
    assert panel["TSS +"].get("autoScale") == panel["TSS -"].get("autoScale") == "true"
    assert {panel[n].get("id") for n in ("TSS +", "TSS -")} <= {r.get("path") for r in resources}  # members are its resources


def test_batch_script_and_page_config(tmp_path, fake_igv_js):
    run = tmp_path / "run"
    fasta, tracks = make_run(run)
    out = write_igv(run, fasta, tracks, snapshot_locus="chrA:11-20")
    assert out["batch.txt"].read_text().splitlines()[1:] == [
        "genome genome/genome.json",
        "load session.xml",
        "snapshotDirectory snapshots",
        "goto chrA:11-20",
        "snapshot chrA_11_20.png",
        "exit",
    ]
    assert out["igv.min.js"].read_text() == fake_igv_js.read_text()
    html = out["index.html"].read_text()
    assert '<script src="igv.min.js"></script>' in html
    config = json.loads(re.search(r'id="igv-config">(.*?)</script>', html, re.S).group(1))
    assert config["locus"] == "chrA:1-1200"  # default: first contig, up to 20 kb
    igv_dir = run / "igv"
    assert (igv_dir / config["reference"]["fastaURL"]).is_file()
    assert (igv_dir / config["reference"]["indexURL"]).is_file()
    merged = config["tracks"][0]
    assert merged["type"] == "merged" and merged["name"] == "TSS" and merged["autoscale"] is True and merged["alpha"] == 1
    by_name = {t["name"]: t for t in [*merged["tracks"], *config["tracks"][1:]]}
    assert "flipAxis" not in by_name["TSS -"] and by_name["TSS -"]["url"] == "tss_minus.neg.bw"
    assert by_name["TSS -"]["color"] == "rgb(0,0,200)" and by_name["TSS +"]["type"] == "wig"
    assert by_name["Peaks"]["format"] == "bed" and by_name["Peaks (bigBed)"]["format"] == "bigbed"
    for track in by_name.values():
        assert (igv_dir / track["url"]).resolve().is_file()
        if "indexURL" in track:
            assert (igv_dir / track["indexURL"]).resolve().is_file()


def test_gzipped_fasta_is_decompressed(tmp_path, fake_igv_js):
    run = tmp_path / "run"
    fasta, tracks = make_run(run, gz=True)
    write_igv(run, fasta, tracks[:1])
    assert (run / "igv" / "genome" / "genome.fa").read_text().replace("\n", "").endswith(SEQS["chrB"])


def test_the_session_genome_is_a_copy_not_a_link_to_the_users_fasta(tmp_path, fake_igv_js):
    # a hard link: a record appended to the user's FASTA appeared in the session's genome, past its .fai
    run = tmp_path / "run"
    fasta, tracks = make_run(run)
    write_igv(run, fasta, tracks[:1])
    copy = next((run / "igv" / "genome").glob("*.fa"))
    assert copy.stat().st_ino != fasta.stat().st_ino and copy.read_bytes() == fasta.read_bytes()
    with open(fasta, "a") as handle:
        handle.write(">extra\nACGT\n")
    assert ">extra" not in copy.read_text()


def test_refuses_missing_or_outside_files(tmp_path, fake_igv_js):
    run = tmp_path / "run"
    fasta, tracks = make_run(run)
    outside = tmp_path / "outside.bw"
    outside.write_bytes((run / "tracks" / "tss.plus.bw").read_bytes())
    with pytest.raises(IgvError, match="outside the run directory"):
        write_igv(run, fasta, [IgvTrack("x", outside)])
    with pytest.raises(IgvError, match="outside the run directory"):
        write_igv(run, fasta, [IgvTrack("x", Path("../outside.bw"))])
    with pytest.raises(IgvError, match="file not found"):
        write_igv(run, fasta, [IgvTrack("x", Path("tracks/none.bw"))])
    (run / "tracks" / "peaks.bed.gz.tbi").unlink()
    with pytest.raises(IgvError, match="tabix index"):
        write_igv(run, fasta, tracks)
    with pytest.raises(IgvError, match="not a .bw, .bb, .bed.gz or .bed file"):
        write_igv(run, fasta, [IgvTrack("x", fasta.with_suffix(".txt"))])
    with pytest.raises(IgvError, match="unique"):
        write_igv(run, fasta, [tracks[0], tracks[0]])
    assert not (run / "igv").exists()


def test_previous_session_kept_on_failure(tmp_path, fake_igv_js):
    run = tmp_path / "run"
    fasta, tracks = make_run(run)
    write_igv(run, fasta, tracks)
    before = (run / "igv" / "session.xml").read_text()
    with pytest.raises(IgvError):
        write_igv(run, tmp_path / "no_such.fa", tracks)
    assert (run / "igv" / "session.xml").read_text() == before


def test_igv_js_override_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("GENOMETRACKS_IGV_JS", str(tmp_path / "nothing.js"))
    with pytest.raises(IgvError, match="GENOMETRACKS_IGV_JS"):
        ensure_igv_js()


@pytest.mark.parametrize(
    "layout, rewritten",
    [("ACGTAC\nACGTAC\nACG\n", False), ("ACGTAC\nACG\nACGTAC\n", True), ("ACG\nACGTAC\n", True), ("ACGTAC\n\nACGTAC\n", True)],
)
def test_genome_copy_is_indexable_without_htslib_noise(tmp_path, fake_igv_js, capfd, layout, rewritten):
    """A ragged FASTA is rewritten in even 60-letter lines before faidx sees it: same letters, a
    valid .fai, and no `[E::fai_build_core]` line from htslib on stderr (captured at the fd level)."""
    import pysam

    run = tmp_path / "run"
    _, tracks = make_run(run)
    fasta = tmp_path / "ragged.fa"
    fasta.write_text(">chrA\n" + layout + ">chrB\nACGT\n")
    write_igv(run, fasta, tracks[:1])
    copy = run / "igv" / "genome" / "ragged.fa"
    letters = {"chrA": layout.replace("\n", ""), "chrB": "ACGT"}
    with pysam.FastaFile(str(copy)) as indexed:
        assert {name: indexed.fetch(name) for name in indexed.references} == letters
    assert (copy.read_text() == fasta.read_text()) is not rewritten
    assert "[E::" not in capfd.readouterr().err


def test_page_reference_carries_the_alias_table(tmp_path, fake_igv_js):
    run = tmp_path / "run"
    _, tracks = make_run(run)
    fasta = tmp_path / "ncbi.fa"  # an NCBI-style header: the contig is NC_000913.3, known as U00096.3 too
    fasta.write_text(">gi|556503834|ref|NC_000913.3| Escherichia coli\n" + "ACGT" * 30 + "\n")
    write_bigwig(run / "tracks" / "tss.plus.bw", {"NC_000913.3": 120}, {"NC_000913.3": np.zeros(120, np.float32)})
    out = write_igv(run, fasta, tracks[:1])
    html = out["index.html"].read_text()
    reference = json.loads(re.search(r'id="igv-config">(.*?)</script>', html, re.S).group(1))["reference"]
    aliases = (run / "igv" / reference["aliasURL"]).read_text().splitlines()
    assert aliases[0].startswith("# sequenceName\t")  # UCSC's chromAlias format, which igv.js reads
    row = dict(zip(aliases[0][2:].split("\t"), aliases[1].split("\t")))
    assert row["sequenceName"] == "NC_000913.3" and row["genbank"] == "U00096.3" and row["fasta"] == "gi|556503834|ref|NC_000913.3|"
