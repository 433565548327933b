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


def in_chromium(test):
    """A test that drives headless Chromium: slow tier, skipped (a failure in CI) without Chromium."""
    reason = "Chromium is not installed: `apt-get install -y chromium` (scripts/install.sh --test installs it)"
    return pytest.mark.slow(pytest.mark.skipif(CHROMIUM is None, reason=reason)(test))


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


def page_state(url: str, profile: Path) -> dict:
    """The JBrowse page's load state (<pre id="jb-status">) once Chromium finds it idle."""
    import html
    import re

    result = chromium(["--virtual-time-budget=30000", "--dump-dom", url], profile)
    match = re.search(r'<pre id="jb-status">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no jb-status in the page (exit {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1)))


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
    assert {"TSS peaks", "TSS sigma class", "Head motif hits", "Attribution +", "Attribution -"} <= set(tracks)
    assert "itemRgb" in tracks["TSS sigma class"]["displays"][0]["renderer"]["color1"]
    # JBrowse Web's session layout: one linear genome view opened at the page's locus with every track
    (view,) = config["defaultSession"]["views"]
    assert view["type"] == "LinearGenomeView" and view["init"]["assembly"] == assembly["name"] and "location" not in config
    assert view["init"]["tracks"] == [assembly["sequence"]["trackId"]] + [t["trackId"] for t in config["tracks"]]
    assert view["init"]["loc"] == f"{br.CHROM}:1..2000"
    for track in config["tracks"]:
        adapter = track["adapter"]
        for sub in adapter.get("subadapters", [adapter]):
            location = sub.get("bigWigLocation") or sub.get("bigBedLocation")
            assert (folder / location["uri"]).resolve().is_file()


@in_chromium
def test_jbrowse_page_loads_every_track(run, tmp_path):
    import matplotlib.image

    from genometracks.browser.locus import default_region

    root, _ = run
    with serve(root) as server:
        url = server.url + "run/jbrowse/index.html"
        state = page_state(url, tmp_path / "profile")
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
    for name in ("Attribution +", "Attribution -"):
        assert state["displays"][name]["summaryScoreMode"] == "whiskers"  # signed: JBrowse's default
        assert tracks[name]["features"] == 2000
    peaks = br.peak_frame()
    in_view = int(((peaks["chrom"] == br.CHROM) & (peaks["start"] < 2000)).sum())
    assert in_view == 2 and tracks["TSS peaks"]["features"] == tracks["TSS sigma class"]["features"] == in_view
    assert tracks["Head motif hits"]["features"] == len(br.MOTIF_HITS) == 2  # both hits lie in the view
    assert tracks["Genes"]["features"] == sum(start < 2000 for start, *_ in br.GENES) == 2
    pixels = np.round(matplotlib.image.imread(str(shot))[..., :3] * 255).astype(int)

    def count(colour):
        return int((np.abs(pixels - np.array(colour)).sum(axis=-1) < 30).sum())

    from genometracks.browser.export import MINUS_COLOUR, PLUS_COLOUR
    from genometracks.sigma.track import SIGMA_COLOURS

    assert count(PLUS_COLOUR) > 50 and count(MINUS_COLOUR) > 50
    assert count(SIGMA_COLOURS["sigma70"]) > 0 and count(SIGMA_COLOURS["sigma38"]) > 0


def test_text_search_files_index_every_searchable_value(run):
    """JBrowse 2 searches trix files of its own (payload: location, track, names); the config names them."""
    root, _ = run
    folder = root / "run" / "jbrowse"
    config = json.loads((folder / "config.json").read_text())
    tracks = {t["name"]: t for t in config["tracks"]}
    peaks = tracks["TSS peaks"]
    adapter = peaks["textSearching"]["textSearchAdapter"]
    assert adapter["type"] == "TrixTextSearchAdapter" and adapter["tracks"] == [peaks["trackId"]]
    ix = (folder / adapter["ixFilePath"]["uri"]).read_text()
    assert (folder / adapter["ixxFilePath"]["uri"]).read_text().endswith("0000000000\n")
    # TSS_4001+ at 0-based 4000: '+' URI-encoded in the payload, the word lower-case, the location 1-based
    line = next(line for line in ix.splitlines() if line.startswith("tss_4001+ "))
    assert line == f'tss_4001+ ["{br.CHROM.replace(".", ".")}%3A4001..4001"|"{peaks["trackId"]}"|"TSS_4001%2B"],1'
    assert len(ix.splitlines()) == len(br.peak_frame())
    hits = tracks["Head motif hits"]["textSearching"]["textSearchAdapter"]
    words = [line.split(" ")[0] for line in (folder / hits["ixFilePath"]["uri"]).read_text().splitlines()]
    # by name and motif; the call's name (its tss column) only in the peaks track: one name, one result
    assert words == sorted(words) and "l0h0_m1" in words and "m1" in words and not any(w.startswith("tss_") for w in words)
    sigma = tracks["TSS sigma class"]["textSearching"]["textSearchAdapter"]
    words = {line.split(" ")[0] for line in (folder / sigma["ixFilePath"]["uri"]).read_text().splitlines()}
    assert words == {"sigma70", "sigma38"}
    assert all(t.get("textSearching") is None for t in config["tracks"] if t["type"] == "QuantitativeTrack")
    genes = tracks["Genes"]["textSearching"]["textSearchAdapter"]
    lines = (folder / genes["ixFilePath"]["uri"]).read_text().splitlines()
    # a gene by its name or its locus tag, at its 1-based location
    assert {line.split(" ")[0] for line in lines} == {w.lower() for _, _, _, name, tag in br.GENES for w in (name, tag)}
    assert next(line for line in lines if line.startswith("rpoz ")).startswith(f'rpoz ["{br.CHROM}%3A4101..5200"')


@in_chromium
def test_the_page_finds_a_call_by_name_in_any_case(run, tmp_path):
    root, _ = run
    with serve(root) as server:
        state = page_state(server.url + "run/jbrowse/index.html?locus=tss_4001%2B", tmp_path / "profile")
    assert state["errors"] == [] and state["search"] == {"term": "tss_4001+", "found": True}, state
    chrom, span = state["locus"].split(":")
    start, end = (int(x.replace(",", "")) for x in span.split(".."))
    assert chrom == br.CHROM and start <= 4001 <= end and start > 2000, state  # moved from 1..2000 to the call


@in_chromium
@pytest.mark.parametrize("term", ["rpoz", "syn_0003"])
def test_the_page_finds_a_gene_by_its_name_or_locus_tag(run, tmp_path, term):
    root, _ = run
    with serve(root) as server:
        state = page_state(server.url + f"run/jbrowse/index.html?locus={term}", tmp_path / "profile")
    assert state["errors"] == [] and state["search"] == {"term": term, "found": True}, state
    chrom, span = state["locus"].split(":")
    start, end = (int(x.replace(",", "")) for x in span.split(".."))
    assert chrom == br.CHROM and start <= 4101 and end >= 5200, state  # rpoZ, 4101-5200 (1-based)


APP_PACKAGE, APP_VERSION, APP_BUNDLE = "@jbrowse/react-app2", "4.3.0", "react-app.umd.production.min.js"
# the full JBrowse app (JBrowse Web's code as a component) opening DIR/jbrowse/config.json the way JBrowse
# Web does (createViewState({config})), then reporting its session's first view
APP_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>JBrowse app</title></head>
<body style="margin:0"><div id="app" style="width:1200px"></div><pre id="app-status"></pre>
<script src="app.js"></script>
<script>
(async () => {
  const out = {status: "error", errors: []};
  try {
    const {createViewState, JBrowseApp, React, createRoot} = JBrowseReactApp;
    const config = await (await fetch("config.json")).json();
    const state = createViewState({config});
    createRoot(document.getElementById("app")).render(React.createElement(JBrowseApp, {viewState: state}));
    const session = state.session;
    for (let i = 0; i < 4000 && !(session.views[0] && session.views[0].initialized && session.views[0].tracks.length); i++) {
      if (i === 100 && !session.views.length) break;  // JBrowse made no view of the configuration's session
      if (i % 100 === 0) document.getElementById("app-status").textContent = JSON.stringify({...out, waited_ms: 50 * i});
      await new Promise(r => setTimeout(r, 50));
    }
    out.views = session.views.map(v => v.type);
    const view = session.views[0];
    if (!view) throw new Error("the session has no view");
    out.initialized = view.initialized;
    out.assembly = view.assemblyNames[0];
    out.locus = view.visibleLocStrings;
    out.tracks = view.tracks.map(t => t.configuration.trackId);
    out.inverted = Object.fromEntries(view.tracks.filter(t => t.displays[0].scaleOpts)
      .map(t => [t.configuration.trackId, Boolean(t.displays[0].scaleOpts.inverted)]));
    out.status = "ready";
  } catch (e) { out.errors.push(String(e && e.stack || e)); }
  document.getElementById("app-status").textContent = JSON.stringify(out);
})();
</script></body></html>
"""


@in_chromium
def test_config_opens_in_the_full_jbrowse_app_at_the_locus_with_every_track(run, tmp_path):
    import html
    import re
    import shutil

    from genometracks.browser.bundles import cache_root, npm_dist_bundle

    try:
        folder = cache_root() / "jbrowse-app" / APP_VERSION
        bundle = npm_dist_bundle(APP_PACKAGE, APP_VERSION, APP_BUNDLE, "GENOMETRACKS_JBROWSE_APP_JS", folder, JBrowseError)
    except JBrowseError as err:
        pytest.skip(f"the JBrowse app could not be fetched from the npm registry: {err}")
    root, _ = run
    folder = root / "run" / "jbrowse"
    shutil.copyfile(bundle, folder / "app.js")
    (folder / "app.html").write_text(APP_PAGE)
    try:
        with serve(root) as server:
            result = chromium(
                # the page waits up to 200 s of virtual time for the view; the budget leaves it room on a busy host
                ["--virtual-time-budget=300000", "--window-size=1200,900", "--dump-dom", server.url + "run/jbrowse/app.html"],
                tmp_path / "p",
            )
    finally:
        (folder / "app.js").unlink()
        (folder / "app.html").unlink()
    match = re.search(r'<pre id="app-status">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no app-status in the page (exit {result.returncode}): {result.stderr[-2000:]}"
    state = json.loads(html.unescape(match.group(1)))
    assert state["status"] == "ready" and state["errors"] == [], state
    config = json.loads((folder / "config.json").read_text())
    assert state["views"] == ["LinearGenomeView"] and state["assembly"] == config["assemblies"][0]["name"]
    # the call with a motif hit in its promoter (browser.locus), 1..2,000: JBrowse narrows the window by
    # the pixels its track labels take once drawn (1..1,975 measured at 1,200 px)
    chrom, span = state["locus"].split(":")
    start, end = (int(x.replace(",", "")) for x in span.split(".."))
    assert chrom == br.CHROM and start == 1 and 1900 <= end <= 2000, state["locus"]
    expected = [config["assemblies"][0]["sequence"]["trackId"]] + [t["trackId"] for t in config["tracks"]]
    assert state["tracks"] == expected
    ids = {t["name"]: t["trackId"] for t in config["tracks"]}
    assert state["inverted"][ids["TSS - strand"]] is True and state["inverted"][ids["TSS + strand"]] is False
