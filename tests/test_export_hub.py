"""UCSC track hub writer (GenArk and assembly modes) and the hubCheck-like validator."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genometracks.browser.hub import HubContainer, HubError, HubTrack, write_hub
from genometracks.browser.validate import main_validate, validate_hub
from genometracks.formats.bigbed import BedSchema, write_bed_outputs
from genometracks.formats.bigwig import write_bigwig
from genometracks.formats.twobit import read_twobit
from genometracks.io.paths import safe_name
from tests.kent import assert_hub_clean

SIZES = {"chrA": 1200, "chrB": 404}
SEQS = {"chrA": "ACGTTGCA" * 100 + "N" * 40 + "acgtacgt" * 45, "chrB": "NNNN" + "GATTACA" * 56 + "tttttttt"}
PEAKS = BedSchema("tssPeaks", "Predicted TSS peaks", (("float", "maxProb", "Highest probability"),))


def make_tracks(folder: Path, sizes: dict[str, int]) -> list:
    """Plus/minus bigWigs in a multiWig container and a peaks bigBed, with dotted user names."""
    folder.mkdir(parents=True, exist_ok=True)
    values = {c: np.repeat(np.float32([0.01, 0.9, 0.02]), [n // 2, 10, n - n // 2 - 10]) for c, n in sizes.items()}
    write_bigwig(folder / "tss.plus.bw", sizes, values)
    write_bigwig(folder / "tss.minus.bw", sizes, values)
    chrom = next(iter(sizes))
    peaks = pd.DataFrame(
        {"chrom": [chrom], "start": [100], "end": [110], "name": ["peak1"], "score": [900], "strand": ["+"], "maxProb": [0.9]}
    )
    write_bed_outputs(peaks, folder / "peaks", PEAKS, sizes)
    return [
        HubContainer(
            "tss_signal",
            "TSS signal",
            "Predicted TSS probability, both strands",
            [
                HubTrack("tss.plus", folder / "tss.plus.bw", "TSS +", "TSS probability, plus", (200, 0, 0)),
                HubTrack("tss.minus", folder / "tss.minus.bw", "TSS -", "TSS probability, minus", (0, 0, 200), negate=True),
            ],
            html="tss_signal",
        ),
        HubTrack(
            "tss peaks",
            folder / "peaks.bb",
            "TSS peaks",
            "Predicted TSS peaks",
            html="tss_peaks",
            visibility="pack",
            settings={"colorByStrand": "200,0,0 0,0,200"},
        ),
    ]


@pytest.fixture(scope="module")
def assembly_hub(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("assembly")
    fasta = root / "my genome.fa"
    fasta.write_text("".join(f">{n}\n{s}\n" for n, s in SEQS.items()))
    hub_txt = write_hub(
        root / "hub",
        "assembly",
        SIZES,
        make_tracks(root / "tracks", SIZES),
        fasta=fasta,
        organism="Synthetic bacterium",
        default_pos="chrA:1-500",
        description="test assembly",
    )
    return hub_txt.parent


@pytest.fixture(scope="module")
def genark_hub(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("genark")
    sizes = {"NC_000913.3": 4641652}
    return write_hub(root / "hub", "genark", sizes, make_tracks(root / "tracks", sizes)).parent


def stanzas(path: Path) -> list[dict[str, str]]:
    blocks = [b for b in path.read_text().split("\n\n") if b.strip()]
    return [dict(line.strip().split(" ", 1) for line in b.strip().splitlines()) for b in blocks]


def test_assembly_hub_layout(assembly_hub):
    assert_hub_clean(assembly_hub)
    assert (assembly_hub / "hub.txt").read_text().splitlines()[0] == "hub genometracks"
    genome = stanzas(assembly_hub / "genomes.txt")[0]
    assert genome["genome"] == "my_genome" and genome["twoBitPath"] == "my_genome/my_genome.2bit"
    assert genome["defaultPos"] == "chrA:1-500" and genome["organism"] == "Synthetic bacterium"
    assert read_twobit(assembly_hub / "my_genome" / "my_genome.2bit") == SEQS  # N blocks and soft-masking kept
    assert (assembly_hub / "my_genome" / "chrom.sizes").read_text() == "chrA\t1200\nchrB\t404\n"
    tracks = {s["track"]: s for s in stanzas(assembly_hub / "my_genome" / "trackDb.txt")}
    assert list(tracks) == ["tss_signal", "tss_plus", "tss_minus", "tss_peaks"]  # no dots, no spaces
    assert tracks["tss_signal"]["container"] == "multiWig" and tracks["tss_signal"]["type"] == "bigWig"
    assert tracks["tss_plus"]["parent"] == "tss_signal" and tracks["tss_plus"]["bigDataUrl"] == "tss_plus.bw"
    assert tracks["tss_minus"]["negateValues"] == "on" and "negateValues" not in tracks["tss_plus"]
    assert tracks["tss_peaks"]["type"] == "bigBed 6 +" and tracks["tss_peaks"]["group"] == "tss"
    assert (assembly_hub / "my_genome" / tracks["tss_peaks"]["html"]).read_text().startswith("<h2>")
    assert stanzas(assembly_hub / "my_genome" / "groups.txt")[0]["name"] == "tss"


def test_genark_hub(genark_hub):
    assert_hub_clean(genark_hub)
    assert stanzas(genark_hub / "genomes.txt") == [{"genome": "GCF_000005845.2", "trackDb": "GCF_000005845.2/trackDb.txt"}]
    tracks = {s["track"]: s for s in stanzas(genark_hub / "GCF_000005845.2" / "trackDb.txt")}
    assert "group" not in tracks["tss_peaks"]  # GenArk groups are UCSC's
    assert sorted(p.name for p in (genark_hub / "GCF_000005845.2").iterdir()) == [
        "html",
        "trackDb.txt",
        "tss_minus.bw",
        "tss_peaks.bb",
        "tss_peaks.ix",
        "tss_peaks.ixx",
        "tss_plus.bw",
    ]
    # name search: the bigBed's B+ tree index and its trix word index beside it (formats.bigbed_index, .trix)
    assert tracks["tss_peaks"]["searchIndex"] == "name" and tracks["tss_peaks"]["searchTrix"] == "tss_peaks.ix"


def test_genark_rejects_other_contig_names(tmp_path):
    sizes = {"U00096.3": 4641652}
    with pytest.raises(HubError, match="differ from GenArk GCF_000005845.2"):
        write_hub(tmp_path / "hub", "genark", sizes, make_tracks(tmp_path / "t", sizes))
    assert not (tmp_path / "hub").exists()


def test_safe_name():
    assert safe_name("tss.plus") == "tss_plus"
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("3' end") == "t_3_end"


def broken(hub: Path, tmp_path: Path, relpath: str, old: str, new: str) -> list[str]:
    copy = tmp_path / "hub"
    shutil.copytree(hub, copy)
    target = copy / relpath
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    return validate_hub(copy)


@pytest.mark.parametrize(
    "relpath, old, new, expected",
    [
        ("hub.txt", "hub genometracks\n", "", "first line must be 'hub <name>'"),
        ("hub.txt", "email genometracks@example.org\n", "", "required field 'email' missing"),
        ("genomes.txt", "defaultPos chrA:1-500\n", "", "lacks required field 'defaultPos'"),
        ("genomes.txt", "defaultPos chrA:1-500", "defaultPos chrA:1-5000", "defaultPos 'chrA:1-5000'"),
        ("genomes.txt", "twoBitPath my_genome/my_genome.2bit", "twoBitPath my_genome/x.2bit", "twoBitPath 'my_genome/x.2bit' not found"),
        ("my_genome/chrom.sizes", "chrB\t404", "chrB\t405", "chromSizes"),
        ("my_genome/trackDb.txt", "bigDataUrl tss_plus.bw", "bigDataUrl gone.bw", "bigDataUrl 'gone.bw' not found"),
        ("my_genome/trackDb.txt", "bigDataUrl tss_plus.bw", "bigDataUrl tss_peaks.bb", "is not a bigWig file"),
        ("my_genome/trackDb.txt", "type bigBed 6 +", "type bigBed 8", "declares 8 BED fields but 'tss_peaks.bb' defines 6"),
        ("my_genome/trackDb.txt", "type bigBed 6 +", "type bigBed 6", "type should be 'bigBed 6 +'"),
        ("my_genome/trackDb.txt", "parent tss_signal", "parent nosuch", "parent 'nosuch' is not defined"),
        ("my_genome/trackDb.txt", "track tss_minus", "track tss_plus", "duplicate track name 'tss_plus'"),
        ("my_genome/trackDb.txt", "track tss_peaks", "track tss.peaks", "track name contains '.'"),
        ("my_genome/trackDb.txt", "longLabel Predicted TSS peaks\n", "", "track 'tss_peaks': required field 'longLabel'"),
        ("my_genome/trackDb.txt", "type bigBed 6 +\n", "", "track 'tss_peaks': required field 'type' missing"),
        ("my_genome/trackDb.txt", "html html/tss_peaks.html", "html html/nothing", "html page 'html/nothing.html' not found"),
        ("my_genome/trackDb.txt", "group tss", "group nogroup", "group 'nogroup' is not defined"),
        # rules UCSC's hubCheck -checkSettings taught us (tests/test_kent.py runs hubCheck beside validate_hub)
        ("hub.txt", "descriptionUrl description.html\n", "", "missing hub overview description page (descriptionUrl"),
        ("hub.txt", "descriptionUrl description.html", "descriptionUrl none.html", "descriptionUrl page 'none.html' not found"),
        (
            "my_genome/trackDb.txt",
            "visibility pack",
            "visibility pack\ngraphType bar",
            "Setting 'graphType' is unknown/unsupported (did you mean 'graphTypeDefault' ?)",
        ),
        ("my_genome/trackDb.txt", "html html/tss_peaks.html\n", "", "missing description page for track"),
        ("my_genome/trackDb.txt", "visibility pack", "visibility packed", "visibility 'packed' is not one of"),
        # UCSC's trackDb library: labels of at most 17 and 76 characters (hubCheck does not check them)
        ("my_genome/trackDb.txt", "shortLabel TSS peaks\n", "shortLabel TSS peaks, all calls\n", "shortLabel is 20 characters"),
        (
            "my_genome/trackDb.txt",
            "longLabel Predicted TSS peaks\n",
            "longLabel " + "x" * 77 + "\n",
            "longLabel is 77 characters; UCSC shows at most 76",
        ),
        ("my_genome/chromAlias.txt", "chrA\tA", "chrA\tchrB", "alias 'chrB' is another sequence's name"),
        ("my_genome/chromAlias.txt", "chrB\tB", "chrZ\tB", "'chrZ' is not a sequence of the genome"),
    ],
)
def test_each_broken_hub_problem_found(assembly_hub, tmp_path, relpath, old, new, expected):
    problems = broken(assembly_hub, tmp_path, relpath, old, new)
    assert any(expected in p for p in problems), problems


def test_orphaned_container_and_missing_files(assembly_hub, tmp_path):
    copy = tmp_path / "hub"
    shutil.copytree(assembly_hub, copy)
    (copy / "my_genome" / "tss_peaks.bb").unlink()
    text = (copy / "my_genome" / "trackDb.txt").read_text()
    (copy / "my_genome" / "trackDb.txt").write_text(text.replace("parent tss_signal", "parent tss_peaks"))
    problems = validate_hub(copy)
    assert any("'tss_peaks.bb' not found" in p for p in problems)
    assert any("parent 'tss_peaks' is not a container" in p for p in problems)
    assert any("tss_signal': container has no child tracks" in p for p in problems)
    (copy / "genomes.txt").unlink()
    assert any("genomesFile 'genomes.txt' not found" in p for p in validate_hub(copy))


def test_wrong_chromosome_size_in_data(assembly_hub, tmp_path):
    copy = tmp_path / "hub"
    shutil.copytree(assembly_hub, copy)
    (copy / "my_genome" / "tss_plus.bw").unlink()
    write_bigwig(
        copy / "my_genome" / "tss_plus.bw",
        {"chrA": 1201, "chrB": 404},
        {"chrA": np.zeros(1201, np.float32), "chrB": np.zeros(404, np.float32)},
    )
    problems = validate_hub(copy)
    assert problems == [
        f"my_genome/trackDb.txt:{_line_of(copy, 'track tss_plus')}: track 'tss_plus': 'tss_plus.bw' gives 'chrA' size 1201, the genome 1200"
    ]


def _line_of(hub: Path, text: str) -> int:
    lines = (hub / "my_genome" / "trackDb.txt").read_text().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if line.strip() == text)


def test_main_validate_exit_codes(assembly_hub, tmp_path, capsys):
    assert main_validate([str(assembly_hub)]) == 0
    assert "hub is valid" in capsys.readouterr().out
    copy = tmp_path / "hub"
    shutil.copytree(assembly_hub, copy)
    (copy / "hub.txt").unlink()
    assert main_validate([str(copy)]) == 1
    assert "hub.txt: not found" in capsys.readouterr().err
    # hub.txt itself, as hubCheck takes it, is the hub; a missing folder is a usage error (2), not 1 problem
    assert main_validate([str(assembly_hub / "hub.txt")]) == 0
    assert main_validate([str(tmp_path / "nowhere")]) == 2
    assert "folder not found; pass the hub folder" in capsys.readouterr().err


def test_failed_rewrite_keeps_previous_hub(tmp_path):
    sizes = {"NC_000913.3": 4641652}
    tracks = make_tracks(tmp_path / "t", sizes)
    write_hub(tmp_path / "hub", "genark", sizes, tracks)
    before = (tmp_path / "hub" / "GCF_000005845.2" / "trackDb.txt").read_text()
    missing = tracks + [HubTrack("extra", tmp_path / "missing.bb", "x", "x")]
    with pytest.raises(HubError, match="missing.bb: track data file not found"):
        write_hub(tmp_path / "hub", "genark", sizes, missing)
    wrong = tracks + [HubTrack("other", tmp_path / "other.bw", "x", "x")]
    write_bigwig(tmp_path / "other.bw", {"NC_000913.3": 10}, {"NC_000913.3": np.zeros(10, np.float32)})
    with pytest.raises(HubError, match="size 10, the genome 4641652"):
        write_hub(tmp_path / "hub", "genark", sizes, wrong)
    assert (tmp_path / "hub" / "GCF_000005845.2" / "trackDb.txt").read_text() == before
    assert_hub_clean(tmp_path / "hub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub", "other.bw", "t"]


@pytest.mark.slow
def test_killed_export_leaves_previous_hub(tmp_path):
    """SIGKILL in the middle of writing a hub: the old hub stays whole and valid."""
    sizes = {"NC_000913.3": 4641652}
    make_tracks(tmp_path / "t", sizes)
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import genometracks.browser.hub as hub
        from test_export_hub import make_tracks
        sizes = {sizes!r}
        tracks = make_tracks(Path({str(tmp_path / "t")!r}), sizes)
        hub.write_hub({str(tmp_path / "hub")!r}, "genark", sizes, tracks, short_label="first")
        real = hub.link_or_copy
        def dying(src, dst):
            real(src, dst)
            if str(dst).endswith(".bw"):
                os.kill(os.getpid(), signal.SIGKILL)  # after the first data file, mid-hub
        hub.link_or_copy = dying
        hub.write_hub({str(tmp_path / "hub")!r}, "genark", sizes, tracks, short_label="second")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "shortLabel first" in (tmp_path / "hub" / "hub.txt").read_text()
    assert_hub_clean(tmp_path / "hub")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".hub.staging")]
    assert len(leftovers) == 1  # the dead run's staging folder ...
    write_hub(tmp_path / "hub", "genark", sizes, make_tracks(tmp_path / "t", sizes), short_label="third")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub", "t"]  # ... is cleaned up by the next run
    assert "shortLabel third" in (tmp_path / "hub" / "hub.txt").read_text()
    assert os.access(tmp_path / "hub" / "hub.txt", os.R_OK)


def _one_bigbed_hub(tmp_path, description: str):
    from genometracks.formats.bigbed import BedSchema, write_bigbed

    sizes = {"c1": 2000}
    fasta = tmp_path / "g.fa"
    fasta.write_text(">c1\n" + "ACGT" * 500 + "\n")
    bb = write_bigbed(
        [dict(chrom="c1", start=10, end=11, name="a", score=1, strand="+", motif="x")],
        tmp_path / "p.bb",
        BedSchema("tss_peaks", description, (("string", "motif", "motif; (as matched)"),)),
        sizes,
    )
    return write_hub(tmp_path / "hub", "assembly", sizes, [HubTrack("pk", bb, "p", "peaks", html="tss_peaks")], fasta=fasta)


def test_semicolons_and_brackets_in_autosql_comments_are_not_fields(tmp_path):
    # the validator counted every autoSql line holding a ';' as a field: a table description with one
    # made write_hub refuse a hub hubCheck accepts ("autoSql declares 8 fields but records have 7")
    hub_txt = _one_bigbed_hub(tmp_path, "TSS calls; local maxima (of the probability)")
    assert_hub_clean(hub_txt.parent)


def test_settings_separated_by_tabs_read_as_ucsc_reads_them(tmp_path):
    # UCSC splits a setting from its value at any white space; the validator split at a space only
    hub_txt = _one_bigbed_hub(tmp_path, "TSS calls")
    hub_dir = hub_txt.parent
    hub_txt.write_text(hub_txt.read_text().replace("hub ", "hub\t", 1).replace("\nemail ", "\nemail\t"))
    trackdb = next(hub_dir.rglob("trackDb.txt"))
    trackdb.write_text(trackdb.read_text().replace("\npriority ", "\npriority\t"))
    assert "\t" in hub_txt.read_text() and "priority\t" in trackdb.read_text()
    assert_hub_clean(hub_dir)
