"""`genometracks export` on a run directory: assembly hub (+ GenArk hub for E. coli), IGV session."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from genometracks.browser.export import export_run
from genometracks.genome.sequence import Genome
from genometracks.inference.peaks import peak_records
from genometracks.inference.predict import predict_genome, write_tracks
from genometracks.model import TransformerXL
from tests.kent import assert_hub_clean


@pytest.fixture()
def run_dir(tmp_path):
    rng = np.random.default_rng(0)
    fasta = tmp_path / "genome.fa"
    fasta.write_text(">chrA\n" + "".join(rng.choice(list("ACGT"), 3000)) + "\n>chrB\n" + "".join(rng.choice(list("ACGT"), 1200)) + "\n")
    genome = Genome.open(fasta, circular=["chrA"])
    torch.manual_seed(0)
    model = TransformerXL(n_layer=1, n_head=2, d_model=8, d_head=4, window=16).eval()
    probs, _ = predict_genome(model, genome, shift=20, seg_len=128, n_streams=2, progress=False)
    run = tmp_path / "run"
    write_tracks(probs, genome.chrom_sizes(), run / "tracks")
    import pandas as pd

    from genometracks.formats.bigbed import BedSchema, write_bed_outputs

    records = peak_records(
        {s: probs.strand(s) for s in "+-"}, float(np.quantile(probs.values["chrA"]["+"], 0.99)), 10, list(genome.contigs)
    )
    frame = pd.DataFrame(records, columns=["chrom", "start", "end", "name", "score", "strand"])
    write_bed_outputs(frame, run / "tracks" / "tss_peaks", BedSchema("tss_peaks", "peaks"), genome.chrom_sizes())
    return run, fasta, genome


def test_export_writes_a_valid_assembly_hub_and_igv_session(run_dir):
    run, fasta, genome = run_dir
    written = export_run(run, fasta, genome.chrom_sizes(), {"genome_mode": "assembly"}, "Test organism")
    assert written["hub"] == "hub/hub.txt" and "hub_genark" not in written  # not GCF_000005845.2
    assert_hub_clean(run / "hub")
    trackdb = (run / "hub" / "genome" / "trackDb.txt").read_text()
    assert "container multiWig" in trackdb and "negateValues on" in trackdb
    assert re.search(r"track tss_peaks\n(.*\n)*?type bigBed 6\n", trackdb)
    session = (run / "igv" / "session.xml").read_text()
    for path in re.findall(r'path="([^"]+)"', session):
        assert (run / "igv" / path).resolve().exists(), path


def test_export_refuses_a_genark_hub_for_contigs_genark_does_not_hold(run_dir, tmp_path):
    # export.genome_mode=genark on contigs other than E. coli's NC_000913.3: refused, no hub left behind
    # (the hub written on GenArk's assembly: tests/test_kent.py, test_genark_hub.py)
    run, fasta, genome = run_dir
    with pytest.raises(ValueError, match="differ from GenArk GCF_000005845.2"):
        export_run(run, fasta, genome.chrom_sizes(), {"genome_mode": "genark"}, "Test organism")
    assert not (run / "hub").exists() and not (run / "hub_genark").exists()


def test_igv_tracks_prefer_tabix_bed_and_fall_back_to_bigbed(tmp_path):
    from genometracks.browser.export import _igv_tracks

    for name in ("tss.plus.bw", "tss.minus.bw", "tss_peaks.bed.gz", "tss_peaks.bb", "tss_sigma.bb"):
        (tmp_path / name).write_bytes(b"x")
    tracks = {t.name: Path(t.path).name for t in _igv_tracks(tmp_path)}
    assert tracks == {
        "TSS + strand": "tss.plus.bw",
        "TSS - strand": "tss.minus.bw",
        "TSS peaks": "tss_peaks.bed.gz",
        "TSS sigma class": "tss_sigma.bb",
    }
    # with the plain BED of the calls (what `peaks` writes), IGV reads it whole and finds a call by its name
    (tmp_path / "tss_peaks.bed").write_bytes(b"x")
    assert {t.name: Path(t.path).name for t in _igv_tracks(tmp_path)}["TSS peaks"] == "tss_peaks.bed"
    # no calls: `peaks` leaves an empty plain BED and removes the others; no empty track in IGV
    (tmp_path / "tss_peaks.bed").write_bytes(b"")
    for name in ("tss_peaks.bed.gz", "tss_peaks.bb"):
        (tmp_path / name).unlink()
    assert "TSS peaks" not in {t.name for t in _igv_tracks(tmp_path)}


def test_a_plain_bed_is_loaded_whole_and_searchable_on_the_page(tmp_path):
    from genometracks.browser.igv import IgvTrack, _track_config

    plain = IgvTrack("TSS peaks", Path("tracks/tss_peaks.bed"))
    assert plain.kind == "bed"
    config = _track_config(plain, "../tracks/tss_peaks.bed", None)
    assert config["format"] == "bed" and config["indexed"] is False and config["searchable"] is True
    tabix = _track_config(IgvTrack("x", Path("tracks/x.bed.gz")), "../tracks/x.bed.gz", "../tracks/x.bed.gz.tbi")
    assert tabix["indexURL"] == "../tracks/x.bed.gz.tbi" and "indexed" not in tabix


def test_igv_track_styles_follow_what_igv_honours(tmp_path):
    """TSS tracks summarise zoomed-out pixels by their maximum; the sigma track keeps its itemRgb."""
    from genometracks.browser.export import _igv_tracks

    for name in ("tss.plus.bw", "tss.minus.bw", "tss_sigma.bb", "tss_sigma.bed.gz"):
        (tmp_path / name).write_bytes(b"x")
    tracks = {t.name: t for t in _igv_tracks(tmp_path)}
    assert tracks["TSS + strand"].window_function == tracks["TSS - strand"].window_function == "max"
    assert tracks["TSS - strand"].negate and tracks["TSS sigma class"].color is None
    assert Path(tracks["TSS sigma class"].path).name == "tss_sigma.bb"  # the bigBed carries itemRgb


@pytest.mark.parametrize(
    "settings, organism, message",
    [
        ({"genome_mode": "asembly"}, "Test organism", "export.genome_mode='asembly': choose one of assembly, genark, both"),
        ({"email": ""}, "Test organism", "export.email is empty; UCSC's hub.txt needs a contact address"),
        ({}, " ", "export.organism is empty"),
    ],
)
def test_export_settings_no_hub_can_have_are_refused_before_anything_is_written(run_dir, settings, organism, message):
    from genometracks.browser.hub import HubError

    run, fasta, genome = run_dir
    with pytest.raises(HubError, match=re.escape(message)):
        export_run(run, fasta, genome.chrom_sizes(), settings, organism)
    assert sorted(p.name for p in run.iterdir()) == ["tracks"]  # a misspelt mode wrote IGV and JBrowse views and no hub


def test_export_follows_a_symlinked_tracks_folder_and_a_relative_run_dir(run_dir, tmp_path, monkeypatch):
    # HPC scratch: DIR/tracks is a link to another file system; the views' paths go through the link
    run, fasta, genome = run_dir
    scratch = tmp_path / "scratch"
    (run / "tracks").rename(scratch)
    (run / "tracks").symlink_to(scratch, target_is_directory=True)
    export_run(run, fasta, genome.chrom_sizes(), {"genome_mode": "assembly"}, "Test organism")
    session = (run / "igv" / "session.xml").read_text()
    paths = re.findall(r'path="([^"]+)"', session)
    assert "../tracks/tss.plus.bw" in paths and all((run / "igv" / p).exists() for p in paths)
    # a relative run directory (library use): its track paths were joined to it twice
    monkeypatch.chdir(tmp_path)
    written = export_run(Path("run"), fasta, genome.chrom_sizes(), {"genome_mode": "assembly"}, "Test organism")
    assert written["igv"] == "igv/session.xml" and (run / "jbrowse" / "config.json").is_file()


def test_page_config_cannot_end_or_swallow_the_pages_scripts():
    import json

    from genometracks.browser.igv import _page

    title = "genometracks: Weird <!--<script> strain </script>"
    page = _page(title, {"title": title, "tracks": []})
    block = page.split('id="igv-config">')[1].split("</script>")[0]
    assert "<" not in block and json.loads(block)["title"] == title
