"""JBrowse 2: `export` writes DIR/jbrowse/ (config.json + the linear genome view page); `serve` on
loopback, the page in headless Chromium, the features each track's adapter loads counted by JBrowse
itself (its CoreGetFeatures RPC), as tests/test_browser.py does for igv.js; a screenshot is checked
for both strands and the sigma colours and kept in tests/artefacts/jbrowse.png.

Needs Debian's `chromium` and `@jbrowse/react-linear-genome-view2` from the npm registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genometracks.browser.jbrowse import JBrowseError, ensure_jbrowse_js
from genometracks.browser.serve import serve
from tests import browser_run as br
from tests.test_browser import CHROMIUM, chromium

ARTEFACTS = Path(__file__).parent / "artefacts"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("jbrowse")

    def fetch_bundle():
        try:
            ensure_jbrowse_js()
        except JBrowseError as err:
            pytest.skip(f"JBrowse 2 could not be fetched from the npm registry: {err}")

    _, _, written = br.exported_run(root, "this test reads the JBrowse page", fetch_bundle)
    return root, written


def test_config_has_the_assembly_and_every_track(run):
    root, written = run
    assert written["jbrowse"] == "jbrowse/index.html"
    folder = root / "run" / "jbrowse"
    config = json.loads((folder / "config.json").read_text())
    assembly = config["assemblies"][0]
    assert assembly["sequence"]["adapter"]["type"] == "TwoBitAdapter"
    assert (folder / assembly["sequence"]["adapter"]["twoBitLocation"]["uri"]).is_file()
    aliases = (folder / "aliases.txt").read_text()
    assert br.HEADERS[br.CHROM] in aliases  # the FASTA's NCBI-style name resolves to its accession
    tracks = {t["name"]: t for t in config["tracks"]}
    plus, minus = tracks["TSS + strand"], tracks["TSS - strand"]
    assert plus["type"] == minus["type"] == "QuantitativeTrack"
    assert plus["adapter"]["bigWigLocation"]["uri"] == "../tracks/tss.plus.bw"
    assert minus["adapter"]["bigWigLocation"]["uri"] == "../tracks/tss.minus.bw"
    assert "inverted" not in plus["displays"][0] and minus["displays"][0]["inverted"] is True  # minus drawn downward
    for track in (plus, minus):
        assert track["displays"][0]["renderers"]["XYPlotRenderer"]["summaryScoreMode"] == "max"
    assert {"TSS peaks", "TSS sigma class", "Head motif hits", "Attribution"} <= set(tracks)
    assert "itemRgb" in tracks["TSS sigma class"]["displays"][0]["renderer"]["color1"]
    for track in config["tracks"]:
        adapter = track["adapter"]
        for sub in adapter.get("subadapters", [adapter]):
            location = sub.get("bigWigLocation") or sub.get("bigBedLocation")
            assert (folder / location["uri"]).resolve().is_file()


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed: `apt-get install -y chromium` (scripts/install.sh --test installs it)"
)
@pytest.mark.slow
def test_jbrowse_page_loads_every_track(run, tmp_path):
    import html
    import re

    import matplotlib.image

    from genometracks.browser.locus import default_region

    root, _ = run
    with serve(root) as server:
        url = server.url + "run/jbrowse/index.html"
        result = chromium(["--virtual-time-budget=30000", "--dump-dom", url], tmp_path / "profile")
        match = re.search(r'<pre id="jb-status">(.*?)</pre>', result.stdout, re.S)
        assert match, f"no jb-status in the page (exit {result.returncode}): {result.stderr[-2000:]}"
        state = json.loads(html.unescape(match.group(1)))
        ARTEFACTS.mkdir(exist_ok=True)
        shot = ARTEFACTS / "jbrowse.png"
        shot.unlink(missing_ok=True)
        chromium(
            ["--virtual-time-budget=30000", "--window-size=1200,900", "--hide-scrollbars", f"--screenshot={shot}", url],
            tmp_path / "profile2",
        )
    assert state["status"] == "ready" and state["errors"] == [], state
    chrom, span = state["locus"].split(":")
    start, end = (int(x.replace(",", "")) for x in span.split(".."))
    # the view opens at the call with a motif hit in its promoter (browser.locus): + call at 1000, hit 960-966
    assert (chrom, start - 1, end) == default_region(root / "run" / "tracks", br.LENGTHS) == (br.CHROM, 0, 2000)
    tracks = state["tracks"]
    assert all(t["status"] == "loaded" for t in tracks.values()), tracks
    assert tracks["Reference sequence"]["features"] >= 1
    assert tracks["TSS + strand"]["features"] == tracks["TSS - strand"]["features"] == 2000  # one value per base of the view
    # what the view itself reads from the configuration: the minus strand downward, peaks kept when zoomed out
    assert state["displays"]["TSS + strand"] == {"inverted": False, "summaryScoreMode": "max"}
    assert state["displays"]["TSS - strand"] == {"inverted": True, "summaryScoreMode": "max"}
    assert state["displays"]["Attribution"]["summaryScoreMode"] == "whiskers"  # signed: JBrowse's default
    assert tracks["Attribution"]["features"] == 2000
    peaks = br.peak_frame()
    in_view = int(((peaks["chrom"] == br.CHROM) & (peaks["start"] < 2000)).sum())
    assert in_view == 2 and tracks["TSS peaks"]["features"] == tracks["TSS sigma class"]["features"] == in_view
    assert tracks["Head motif hits"]["features"] == len(br.MOTIF_HITS) == 2  # both hits lie in the view
    pixels = np.round(matplotlib.image.imread(str(shot))[..., :3] * 255).astype(int)

    def count(colour):
        return int((np.abs(pixels - np.array(colour)).sum(axis=-1) < 30).sum())

    from genometracks.browser.export import MINUS_COLOUR, PLUS_COLOUR
    from genometracks.sigma.track import SIGMA_COLOURS

    assert count(PLUS_COLOUR) > 50 and count(MINUS_COLOUR) > 50
    assert count(SIGMA_COLOURS["sigma70"]) > 0 and count(SIGMA_COLOURS["sigma38"]) > 0
