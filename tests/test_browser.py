"""Real browser: `serve` on loopback, the igv.js page in headless Chromium, every track loaded.

The page records igv.js's state as JSON in <pre id="igv-status"> (see genometracks.browser.igv);
Chromium's --dump-dom returns the DOM once the page is idle. A screenshot is kept in tests/artefacts/.
Needs Debian's `chromium` (installed by .ci/run) and igv.js from the npm registry.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genometracks.browser.igv import IgvError, IgvTrack, ensure_igv_js, write_igv
from genometracks.browser.serve import serve
from genometracks.formats.bigbed import BedSchema, write_bed_outputs
from genometracks.formats.bigwig import write_bigwig

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome")) if p), None)
pytestmark = [
    pytest.mark.slow,  # drives headless Chromium
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Chromium is not installed: `apt-get install -y chromium` (.ci/run installs it); the real-browser test needs it",
    ),
]
ARTEFACTS = Path(__file__).parent / "artefacts"
RED, BLUE = (200, 0, 0), (0, 0, 200)


def make_run(run: Path, a: str = "chrA", b: str = "chrB") -> tuple[Path, list[IgvTrack]]:
    """Two contigs named `a` and `b` (3,000 and 900 nt), both strands' bigWigs, two peaks on `a`."""
    rng = np.random.default_rng(3)
    seqs = {a: "".join(rng.choice(list("ACGT"), 3000)), b: "".join(rng.choice(list("ACGT"), 900))}
    sizes = {c: len(s) for c, s in seqs.items()}
    fasta = run.parent / f"{run.name}.fa"
    fasta.write_text("".join(f">{n}\n" + "\n".join(s[i : i + 70] for i in range(0, len(s), 70)) + "\n" for n, s in seqs.items()))
    plus = {c: (0.2 + 0.8 * (np.arange(n) % 50 < 10)).astype(np.float32) for c, n in sizes.items()}
    minus = {c: rng.random(n).astype(np.float32) for c, n in sizes.items()}
    write_bigwig(run / "tracks" / "tss.plus.bw", sizes, plus)
    write_bigwig(run / "tracks" / "tss.minus.bw", sizes, minus)
    peaks = pd.DataFrame(
        {
            "chrom": [a, a],
            "start": [40, 150],
            "end": [60, 170],
            "name": ["p1", "p2"],
            "score": [400, 1000],
            "strand": ["+", "-"],
            "maxProb": [0.6, 0.99],
        }
    )
    schema = BedSchema("tssPeaks", "TSS peaks", (("float", "maxProb", "Highest probability"),))
    write_bed_outputs(peaks, run / "tracks" / "peaks", schema, sizes)
    peaks.iloc[:, :6].to_csv(run / "tracks" / "calls.bed", sep="\t", header=False, index=False)  # plain: read whole, searchable
    # a user's BED keyed by another name of chrA ("A", its chr-style partner in the alias table)
    import pysam

    (run / "tracks" / "user.bed").write_text("A\t100\t120\tmine\t0\t+\nA\t2000\t2010\tfar\t0\t+\n")
    pysam.tabix_index(str(run / "tracks" / "user.bed"), preset="bed", force=True)
    tracks = [
        IgvTrack("TSS +", Path("tracks/tss.plus.bw"), RED, overlay="TSS"),
        IgvTrack("TSS -", Path("tracks/tss.minus.bw"), BLUE, negate=True, overlay="TSS"),
        IgvTrack("Peaks", Path("tracks/peaks.bed.gz"), (0, 120, 0)),
        IgvTrack("Peaks bigBed", Path("tracks/peaks.bb"), (120, 0, 120)),
        IgvTrack("User BED", Path("tracks/user.bed.gz"), (0, 0, 0)),
        IgvTrack("Calls", Path("tracks/calls.bed"), (0, 90, 0)),
    ]
    return fasta, tracks


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    try:
        ensure_igv_js()
    except IgvError as err:
        pytest.skip(f"igv.js could not be installed from the npm registry: {err}")
    root = tmp_path_factory.mktemp("site")
    for name in ("good", "broken"):
        fasta, tracks = make_run(root / name)
        write_igv(root / name, fasta, tracks, locus="chrA:1-300", title=f"genometracks {name}")
    fasta, tracks = make_run(root / "colon", "scaffold:1", "plasmid:2")  # an assembler's names
    write_igv(root / "colon", fasta, tracks, locus="scaffold:1:1-300", title="genometracks colon")
    # NCBI names: the chromosome is NC_000913.3, known as U00096.3 only through the alias table
    fasta, tracks = make_run(root / "ncbi", "NC_000913.3", "NC_000914.1")
    fasta.write_text(fasta.read_text().replace(">NC_000913.3", ">gi|556503834|ref|NC_000913.3| Escherichia coli", 1))
    import pysam

    (root / "ncbi" / "tracks" / "user.bed").write_text("U00096.3\t100\t120\tmine\t0\t+\nU00096.3\t2000\t2010\tfar\t0\t+\n")
    pysam.tabix_index(str(root / "ncbi" / "tracks" / "user.bed"), preset="bed", force=True)
    write_igv(root / "ncbi", fasta, tracks, locus="U00096.3:1-300", title="genometracks ncbi")
    (root / "broken" / "igv" / "tss_minus.neg.bw").unlink()  # the page must report this track failing
    # names that only a bigBed holds, in the cases the project writes (motif hits, sigma classes, calls)
    fasta, tracks = make_run(root / "search")
    named = pd.DataFrame(
        {
            "chrom": ["chrA", "chrA", "chrA"],
            "start": [1500, 2200, 2800],
            "end": [1510, 2210, 2801],
            "name": ["L0H2_RpoD-10", "sigma70", "TSS_2801+"],
            "score": [500, 500, 500],
            "strand": ["+", "-", "+"],
        }
    )
    from genometracks.formats.bigbed import write_bigbed

    write_bigbed(named, root / "search" / "tracks" / "named.bb", BedSchema("named", "named items"), {"chrA": 3000, "chrB": 900})
    write_igv(root / "search", fasta, [IgvTrack("Named", Path("tracks/named.bb"), None)], locus="chrA:1-300", title="genometracks search")
    with serve(root) as server:
        yield server, root


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=45)


def page_state(url: str, profile: Path) -> dict:
    result = chromium(["--dump-dom", url], profile)
    match = re.search(r'<pre id="igv-status">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no igv-status in the page (exit {result.returncode}): {result.stderr[-2000:]}"
    assert match.group(1) != "loading", "igv.js never finished loading within the time budget"
    return json.loads(html.unescape(match.group(1)))


def test_igv_page_loads_every_track(site, tmp_path):
    server, _ = site
    state = page_state(server.url + "good/igv/index.html", tmp_path / "profile")
    assert state["errors"] == [] and state["status"] == "ready", state
    assert state["genome"] == "good" and state["locus"] == "chrA:0-300", state  # the page's chrA:1-300 (status 0-based)
    tracks = state["tracks"]
    assert set(tracks) == {"TSS", "TSS +", "TSS -", "Peaks", "Peaks bigBed", "User BED", "Calls"}  # the strands: one merged track
    assert tracks["Calls"]["features"] == 2  # the plain BED, loaded whole
    assert all(t["status"] == "loaded" for t in tracks.values())
    # in view chrA:1-300: plus = runs of 10 high + 40 low bases (12 spans), minus = one value per base
    assert tracks["TSS +"]["features"] == 12 and tracks["TSS -"]["features"] == 300 and tracks["TSS"]["features"] == 312
    assert tracks["Peaks"]["features"] == 2 and tracks["Peaks bigBed"]["features"] == 2
    assert tracks["User BED"]["features"] == 1  # chrom "A": chrA under another name (chr-style), found on the page


def test_a_name_in_the_url_is_found_in_any_case_through_the_bigbeds_indexes(site, tmp_path):
    """igv.js upper-cases what it searches, and a bigBed's B+ tree keys are case-sensitive: only upper-case
    names were found. The trix index beside the bigBed (X.ix, `trixURL`) maps any case to the name."""
    server, _ = site
    where = {"L0H2_RpoD-10": (1500, 1510), "sigma70": (2200, 2210), "TSS_2801+": (2800, 2801)}
    for name, term in (
        ("L0H2_RpoD-10", "L0H2_RpoD-10"),
        ("L0H2_RpoD-10", "l0h2_rpod-10"),
        ("sigma70", "SIGMA70"),
        ("sigma70", "sigma70"),
        ("TSS_2801+", "tss_2801%2B"),  # '+' is %2B in an address
    ):
        state = page_state(server.url + f"search/igv/index.html?locus={term}", tmp_path / f"profile_{len(term)}_{term[:3]}")
        assert state["errors"] == [] and state["search"]["found"] is True, (term, state)
        chrom, span = state["locus"].split(":")
        start, end = map(int, span.split("-"))
        # igv.js shows the feature with 1,000 nt of flank on each side (its default `flanking`), cut at 0
        assert (chrom, start, end) == ("chrA", max(0, where[name][0] - 1000), where[name][1] + 1000), (term, state)
    state = page_state(server.url + "search/igv/index.html?locus=nowhere", tmp_path / "profile_none")
    assert state["search"] == {"term": "nowhere", "found": False} and state["locus"].startswith("chrA:"), state


def test_contig_names_with_a_colon_open_at_their_locus(site, tmp_path):
    # igv.js splits 'scaffold:1:1-300' at its first ':' and opened the whole genome (no features)
    server, _ = site
    state = page_state(server.url + "colon/igv/index.html", tmp_path / "profile")
    assert state["locus"] == "scaffold:1:0-300", state  # chrA:1-300's view: the status reports a 0-based start
    assert state["tracks"]["Peaks"]["features"] == 2 and state["tracks"]["TSS +"]["features"] == 12


def test_the_alias_table_names_the_contig_for_the_locus_and_a_users_bed(site, tmp_path):
    # igv.js reads the reference's `aliasURL`; the page wrote `chromAliasURL`, which it ignores, so a
    # BED keyed by U00096.3 drew nothing and the locus U00096.3:1-300 was not found
    server, _ = site
    state = page_state(server.url + "ncbi/igv/index.html", tmp_path / "profile")
    assert state["errors"] == [] and state["locus"] == "NC_000913.3:0-300", state
    assert state["tracks"]["User BED"]["features"] == 1 and state["tracks"]["Peaks"]["features"] == 2


def test_broken_track_is_reported(site, tmp_path):
    server, _ = site
    state = page_state(server.url + "broken/igv/index.html", tmp_path / "profile")
    assert state["status"] == "error"
    assert state["tracks"]["TSS"]["status"] == "error"  # the merged track whose minus member is missing
    assert state["tracks"]["Peaks"]["status"] == "loaded"


def test_screenshot_shows_both_strands(site, tmp_path):
    import matplotlib.image

    server, _ = site
    ARTEFACTS.mkdir(exist_ok=True)
    shot = ARTEFACTS / "igv_browser.png"
    shot.unlink(missing_ok=True)
    result = chromium(
        ["--window-size=1200,800", "--hide-scrollbars", f"--screenshot={shot}", server.url + "good/igv/index.html"], tmp_path / "profile"
    )
    assert shot.is_file(), result.stderr[-2000:]
    pixels = np.round(matplotlib.image.imread(str(shot))[..., :3] * 255).astype(int)

    def count(color):
        return int((np.abs(pixels - np.array(color)).sum(axis=-1) < 30).sum())

    assert count(RED) > 1000 and count(BLUE) > 1000  # plus and minus tracks were drawn
