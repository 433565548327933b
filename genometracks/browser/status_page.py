"""The HTML page that opens a genome browser's JavaScript view and reports how its tracks loaded, shared
by `igv/index.html` (igv.js) and `jbrowse/index.html` (JBrowse 2's linear genome view).

The page keeps its load state in `window.<state>` and in `<pre id="<status>">` (JSON): status 'loading',
then 'ready' once the genome and every track loaded (each track with the number of features in view),
or 'error' with the messages of what failed; `document.body.dataset` mirrors the status for tests and
snapshots. `status_page` builds the page from the browser's own pieces; `@TITLE@` (and any placeholder
the pieces hold) is left for the caller to fill.
"""

from __future__ import annotations

import json


def script_json(value: object) -> str:
    """JSON for a <script type="application/json"> block: every '<' written as \\u003c, so no text in
    it (a title holding '</script>' or '<!--<script') can end or swallow the page's scripts."""
    return json.dumps(value, indent=1).replace("<", "\\u003c")


_FRAME = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@TITLE@</title>
<style>body{font-family:sans-serif;margin:8px} #@STATUS@{font-size:11px;color:#666;white-space:pre-wrap}</style>
<script src="@SCRIPT@"></script>
</head>
<body>
<div id="@VIEW@"></div>
<pre id="@STATUS@">loading</pre>
@DATA@<script>
(async () => {
  const state = {status: "loading", @FIELD@: null, locus: null, tracks: {}, errors: []};
  window.@STATE@ = state;
  const show = () => {
    document.getElementById("@STATUS@").textContent = JSON.stringify(state);
    document.body.dataset.@DATASET@ = state.status;
  };
  window.addEventListener("error", e => { state.errors.push(String(e.message)); show(); });
  window.addEventListener("unhandledrejection", e => { state.errors.push(String(e.reason)); show(); });
  try {
@OPEN@
    for (const t of @TRACKS@) {
      try {
@LOAD@
        state.tracks[t.name] = {status: "loaded", features: @COUNT@};
      } catch (e) {
        state.tracks[t.name] = {status: "error", message: String(e && e.message || e)};
        state.errors.push(`${t.name}: ${e && e.message || e}`);
      }
      show();
    }
@FINISH@
    state.status = state.errors.length ? "error" : "ready";
  } catch (e) {
    state.status = "error";
    state.errors.push(String(e && e.message || e));
  }
  show();
})();
</script>
</body>
</html>
"""


def status_page(
    *,
    script: str,
    view_id: str,
    status_id: str,
    state: str,
    dataset_key: str,
    field: str,
    open_view: str,
    tracks: str,
    load: str,
    count: str,
    data: str = "",
    finish: str = "",
) -> str:
    """The page's HTML with `@TITLE@` left to fill.

    script: the browser's bundle beside the page; view_id, status_id: ids of the view's <div> and the
    status <pre>; state: the window property holding the state; dataset_key: the body data attribute
    (camelCase) mirroring the status; field: the state's genome key (set by open_view); open_view: JS
    lines (4-space indent) that open the view and set state.<field> and state.locus; tracks: the JS
    expression of the tracks to check, each with a `name`; load: JS lines (8-space indent) that load
    track `t` into `features`; count: the JS expression of its feature count; data: HTML placed before
    the page's script (e.g. a JSON <script> block), with its own newline; finish: JS lines (4-space
    indent) run once every track has loaded, before the status is set.
    """
    pieces = {
        "@SCRIPT@": script,
        "@VIEW@": view_id,
        "@STATUS@": status_id,
        "@STATE@": state,
        "@DATASET@": dataset_key,
        "@FIELD@": field,
        "@DATA@": data,
        "@OPEN@": open_view.rstrip("\n"),
        "@TRACKS@": tracks,
        "@LOAD@": load.rstrip("\n"),
        "@COUNT@": count,
        "@FINISH@": finish.rstrip("\n"),
    }
    page = _FRAME
    for key, value in pieces.items():
        page = page.replace(key, value)
    return page
