"""The browsers' status page: each browser's pieces in one frame, only the caller's placeholders left."""

import re

from genometracks.browser import igv, jbrowse
from genometracks.browser.status_page import status_page


def test_pages_keep_only_the_callers_placeholders():
    assert sorted(set(re.findall(r"@[A-Z]+@", igv._PAGE))) == ["@CONFIG@", "@TITLE@"]
    assert re.findall(r"@[A-Z]+@", jbrowse._PAGE) == ["@TITLE@"]


def test_each_browser_reports_in_its_own_names():
    for page, state, status, key in (
        (igv._PAGE, "__igvState", "igv-status", "igvStatus"),
        (jbrowse._PAGE, "__jbState", "jb-status", "jbStatus"),
    ):
        assert f"window.{state} = state;" in page and f'<pre id="{status}">loading</pre>' in page
        assert f"document.body.dataset.{key} = state.status;" in page
        assert page.count('state.tracks[t.name] = {status: "error"') == 1  # one loop per page


def test_pieces_land_in_order():
    page = status_page(
        script="x.js",
        view_id="v",
        status_id="s",
        state="__x",
        dataset_key="xStatus",
        field="genome",
        open_view="    OPEN();\n",
        tracks="cfg.tracks",
        load="        const features = LOAD(t);\n",
        count="features.length",
        data="<!-- data -->\n",
    )
    assert (
        page.index("<!-- data -->\n<script>")
        < page.index("OPEN();")
        < page.index("for (const t of cfg.tracks)")
        < page.index("LOAD(t);")
        < page.index("features: features.length}")
    )
    assert '{status: "loading", genome: null, locus: null' in page and '<script src="x.js">' in page
