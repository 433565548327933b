"""JBrowse 2 outputs for a run directory: `jbrowse/config.json` (assembly and tracks, JBrowse 2's
config format) and `jbrowse/index.html` (the linear genome view, `@jbrowse/react-linear-genome-view2`,
in a browser; see `genometracks serve`).

The assembly is `jbrowse/genome.2bit` (written from the FASTA, contigs named as in every output) with
`jbrowse/aliases.txt` (RefSeq, INSDC, chr-style and original FASTA names). Tracks are referenced where
they lie in DIR (`../tracks/...`): TSS probability as one track per strand (minus drawn inverted), and
peaks, sigma classes (in their itemRgb colours), motif hits and attribution when present. Each bigBed
with name-search indexes gets JBrowse's own trix files (`<trackId>.ix/.ixx`, `textSearching`), so the
search box (and `index.html?locus=NAME`) finds a TSS call, a sigma class or a motif by name, in any case.

The viewer is the package's self-contained UMD bundle, fetched from the npm registry with
`npm pack` (the tarball only; no dependency tree) into the user cache and copied beside the page,
as igv.js is (genometracks.browser.igv.ensure_igv_js). Never committed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from genometracks.browser.bundles import cache_root, npm_dist_bundle
from genometracks.browser.chromalias import alias_list, fasta_original_names
from genometracks.browser.status_page import status_page
from genometracks.formats.bigbed_index import autosql_field_names, searchable_fields
from genometracks.formats.trix import jbrowse_trix_text
from genometracks.formats.twobit import write_twobit
from genometracks.io.atomic import link_or_copy, staged_dir
from genometracks.io.paths import safe_name

JBROWSE_VERSION = "4.1.13"
_PACKAGE = "@jbrowse/react-linear-genome-view2"
_BUNDLE = "react-linear-genome-view.umd.production.min.js"


class JBrowseError(ValueError):
    """JBrowse outputs cannot be written as asked; the message names the file and the fix."""


@dataclass
class JBrowseTrack:
    """A track file inside the run directory. kind: 'wig' (one bigWig) or 'features' (a bigBed);
    paths = [(label, file, colour)], one. `item_rgb`: draw features in the file's colours. For a
    wig: `inverted` draws it downward (a minus strand, as the hub's negateValues and IGV's negated
    file do), `summary` is how JBrowse sums up a zoomed-out window ('max' keeps a TSS's peak
    visible; None: JBrowse's default, whiskers of min/mean/max). For a bigBed, `search` names the
    fields its search box finds items by (among those the bigBed has name indexes on; () for all)."""

    track_id: str
    name: str
    kind: str
    paths: Sequence[tuple[str, Path, tuple[int, int, int]]]
    category: str = "TSS"
    item_rgb: bool = False
    inverted: bool = False
    summary: str | None = None
    search: Sequence[str] = ()


def ensure_jbrowse_js(version: str = JBROWSE_VERSION) -> Path:
    """Path of the viewer's UMD bundle: $GENOMETRACKS_JBROWSE_JS if set, else the npm package's
    `dist/` file in the cache (`<cache>/jbrowse/<version>/`), fetched with `npm pack` when absent."""
    return npm_dist_bundle(_PACKAGE, version, _BUNDLE, "GENOMETRACKS_JBROWSE_JS", cache_root() / "jbrowse" / version, JBrowseError)


def _rel(run_dir: Path, folder: Path, path: Path, what: str) -> str:
    path = Path(os.path.abspath(path if path.is_absolute() else run_dir / path))  # symlinks kept: DIR/tracks may be one
    if Path(os.path.abspath(run_dir)) not in path.parents:
        raise JBrowseError(f"{path}: {what} lies outside the run directory {run_dir}; write tracks under DIR")
    if not path.is_file():
        raise JBrowseError(f"{path}: {what} file not found; run export first")
    return os.path.relpath(path, os.path.abspath(folder))


def _rgb(colour: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*map(int, colour))


def searchable_records(bigbed: Path, only: Sequence[str] = ()) -> list[tuple[str, int, int, list[str]]]:
    """(contig, start, end, values of the fields it has name-search indexes on, or of those of `only`) of
    every record of a bigBed written with `BedSchema.search` ([] when it has none): what JBrowse's text
    search is built from."""
    import pyBigWig

    fields = [f for f in searchable_fields(bigbed) if not only or f in only]
    if not fields:
        return []
    with pyBigWig.open(str(bigbed)) as bb:
        names = autosql_field_names(bb.SQL().decode(errors="replace")) if bb.SQL() else []
        columns = [names.index(f) - 3 for f in fields if f in names]
        out = []
        for chrom, size in bb.chroms().items():
            for start, end, rest in bb.entries(chrom, 0, size) or []:
                values = rest.split("\t")
                out.append((chrom, start, end, [values[c] for c in columns if c < len(values)]))
    return out


def text_search_adapter(track_id: str, assembly: str) -> dict:
    """A track's `textSearching` config: JBrowse's trix adapter over `<track_id>.ix/.ixx` in DIR/jbrowse/."""
    location = {"locationType": "UriLocation"}
    return {
        "textSearchAdapter": {
            "type": "TrixTextSearchAdapter",
            "textSearchAdapterId": f"{track_id}-index",
            "ixFilePath": {"uri": f"{track_id}.ix", **location},
            "ixxFilePath": {"uri": f"{track_id}.ixx", **location},
            "metaFilePath": {"uri": f"{track_id}_meta.json", **location},
            "assemblyNames": [assembly],
            "tracks": [track_id],
        }
    }


def write_text_search(stage: Path, run_dir: Path, tracks: Sequence[JBrowseTrack], configs: list[dict]) -> None:
    """For each bigBed track with name-search indexes: `<trackId>.ix/.ixx` (and the meta.json JBrowse's
    adapter names) in the staged DIR/jbrowse/, and its config's `textSearching`; the search box then finds
    a TSS call, motif or sigma class by name, in any case."""
    for track, config in zip(tracks, configs):
        if track.kind != "features":
            continue
        source = Path(track.paths[0][1])
        bigbed = source if source.is_absolute() else run_dir / source
        records = searchable_records(bigbed, track.search)
        ix, ixx = jbrowse_trix_text(records, config["trackId"]) if records else ("", "")
        if not ix:
            continue
        (stage / f"{config['trackId']}.ix").write_text(ix)
        (stage / f"{config['trackId']}.ixx").write_text(ixx)
        fields = [f for f in searchable_fields(bigbed) if not track.search or f in track.search]
        meta = {"tracks": [{"trackId": config["trackId"], "attributesIndexed": fields}]}
        (stage / f"{config['trackId']}_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        config["textSearching"] = text_search_adapter(config["trackId"], config["assemblyNames"][0])


def track_configs(run_dir: Path, folder: Path, assembly: str, tracks: Sequence[JBrowseTrack]) -> list[dict]:
    """JBrowse 2 track configurations (URIs relative to `folder`, i.e. DIR/jbrowse/)."""
    configs = []
    for t in tracks:
        base = {"trackId": safe_name(t.track_id), "name": t.name, "assemblyNames": [assembly], "category": [t.category]}
        files = [(label, _rel(run_dir, folder, Path(p), f"track {t.name!r}"), colour) for label, p, colour in t.paths]
        if t.kind == "wig":
            label, uri, colour = files[0]
            # renderer settings live under the display's `renderers` (a display-level summaryScoreMode is ignored)
            renderer = {"type": "XYPlotRenderer", "color": _rgb(colour)}
            if t.summary is not None:
                renderer["summaryScoreMode"] = t.summary
            display = {"type": "LinearWiggleDisplay", "displayId": f"{base['trackId']}-display", "renderers": {"XYPlotRenderer": renderer}}
            if t.inverted:
                display["inverted"] = True
            configs.append(
                {
                    **base,
                    "type": "QuantitativeTrack",
                    "adapter": {"type": "BigWigAdapter", "bigWigLocation": {"uri": uri, "locationType": "UriLocation"}},
                    "displays": [display],
                }
            )
        elif t.kind == "features":
            label, uri, colour = files[0]
            color = (
                ("jexl:get(feature,'itemRgb') ? 'rgb(' + get(feature,'itemRgb') + ')' : '" + _rgb(colour) + "'")
                if t.item_rgb
                else _rgb(colour)
            )
            configs.append(
                {
                    **base,
                    "type": "FeatureTrack",
                    "adapter": {"type": "BigBedAdapter", "bigBedLocation": {"uri": uri, "locationType": "UriLocation"}},
                    "displays": [
                        {
                            "type": "LinearBasicDisplay",
                            "displayId": f"{base['trackId']}-display",
                            "renderer": {"type": "SvgFeatureRenderer", "color1": color},
                        }
                    ],
                }
            )
        else:
            raise JBrowseError(f"track {t.name!r}: kind {t.kind!r} is not wig or features")
    return configs


def write_jbrowse(
    run_dir: str | Path,
    fasta: str | Path,
    chrom_sizes: Mapping[str, int],
    tracks: Sequence[JBrowseTrack],
    locus: str | None = None,
    title: str = "genometracks",
    version: str = JBROWSE_VERSION,
) -> dict[str, Path]:
    """Write DIR/jbrowse/ (config.json, index.html, the viewer bundle, genome.2bit, aliases.txt)
    atomically as one folder. `locus` is JBrowse syntax (`chrom:start..end`, 1-based); default: the
    first 20 kb of the first contig."""

    run_dir = Path(run_dir).absolute()  # track paths are DIR/...: relative to the working directory, not DIR
    folder = run_dir / "jbrowse"
    assembly = safe_name(Path(fasta).name.split(".")[0], prefix="genome")
    configs = track_configs(run_dir, folder, assembly, tracks)
    script = ensure_jbrowse_js(version)
    first, size = next(iter(chrom_sizes.items()))
    locus = locus or f"{first}:1..{min(size, 20000)}"
    with staged_dir(folder) as stage:
        write_twobit(stage / "genome.2bit", Path(fasta))
        aliases = alias_list(chrom_sizes, fasta_original_names(fasta))
        sequence_id = f"{assembly}-ReferenceSequenceTrack"
        (stage / "aliases.txt").write_text("".join("\t".join([name, *names]) + "\n" for name, names in aliases.items() if names))
        write_text_search(stage, run_dir, tracks, configs)
        config = {
            "assemblies": [
                {
                    "name": assembly,
                    "displayName": title,
                    "sequence": {
                        "type": "ReferenceSequenceTrack",
                        "trackId": sequence_id,
                        "adapter": {"type": "TwoBitAdapter", "twoBitLocation": {"uri": "genome.2bit", "locationType": "UriLocation"}},
                    },
                    "refNameAliases": {
                        "adapter": {"type": "RefNameAliasAdapter", "location": {"uri": "aliases.txt", "locationType": "UriLocation"}}
                    },
                }
            ],
            "tracks": configs,
            # JBrowse Web's session: one linear genome view at the locus with every track shown; the page
            # (the embedded view) reads its locus from it too
            "defaultSession": {"name": title, "views": [launch_view(assembly, locus, [sequence_id] + [t["trackId"] for t in configs])]},
            "configuration": {"rpc": {"defaultDriver": "MainThreadRpcDriver"}},
        }
        (stage / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        link_or_copy(script, stage / "jbrowse.min.js")
        license_file = script.with_name(script.name + ".LICENSE.txt")
        if license_file.is_file():
            link_or_copy(license_file, stage / "jbrowse.min.js.LICENSE.txt")
        (stage / "index.html").write_text(_PAGE.replace("@TITLE@", _escape(title)))
    return {name: folder / name for name in ("config.json", "index.html", "jbrowse.min.js", "genome.2bit")}


def launch_view(assembly: str, locus: str, track_ids: list[str]) -> dict:
    """A linear genome view as JBrowse Web's `defaultSession.views` entry: opened on `assembly` at
    `locus` ('chrom:start..end', 1-based) with `track_ids` shown (its `init`, read once when the view
    is made)."""
    return {"id": "linearGenomeView", "type": "LinearGenomeView", "init": {"assembly": assembly, "loc": locus, "tracks": track_ids}}


def _escape(text: str) -> str:
    from html import escape

    return escape(text)


# jbrowse/index.html: fetches config.json, shows every track, and records in window.__jbState and
# <pre id="jb-status"> the features each track's adapter loads in the view's region (JBrowse's own
# CoreGetFeatures RPC; genometracks.browser.status_page) and, per bigWig track, whether the view draws it
# inverted and how it sums up a zoomed-out window (`displays`)
_PAGE = status_page(
    script="jbrowse.min.js",
    view_id="jbrowse",
    status_id="jb-status",
    state="__jbState",
    dataset_key="jbStatus",
    field="assembly",
    open_view="""\
    if (typeof JBrowseReactLinearGenomeView === "undefined") throw new Error("jbrowse.min.js did not load");
    const {createViewState, JBrowseLinearGenomeView, React, createRoot} = JBrowseReactLinearGenomeView;
    const cfg = await (await fetch("config.json")).json();
    const assembly = cfg.assemblies[0];
    const launch = cfg.defaultSession.views[0];  // JBrowse Web's session, as the embedded view takes it
    const viewState = createViewState({assembly, tracks: cfg.tracks, location: launch.init.loc,
                                       configuration: cfg.configuration,
                                       defaultSession: {name: cfg.defaultSession.name, view: {id: launch.id, type: launch.type}}});
    window.__jbView = viewState;
    createRoot(document.getElementById("jbrowse")).render(
      React.createElement(JBrowseLinearGenomeView, {viewState}));
    const view = viewState.session.views[0];
    for (let i = 0; i < 200 && !view.initialized; i++) await new Promise(r => setTimeout(r, 50));
    if (!view.initialized) throw new Error("the linear genome view did not initialise");
    state.assembly = assembly.name;
    view.showTrack(assembly.sequence.trackId);
    for (const t of cfg.tracks) view.showTrack(t.trackId);
    const region = view.dynamicBlocks.contentBlocks[0] || view.displayedRegions[0];
    state.locus = `${region.refName}:${Math.round(region.start) + 1}..${Math.round(region.end)}`;
    const rpc = viewState.session.rpcManager;
    const all = [{name: "Reference sequence", adapter: assembly.sequence.adapter}, ...cfg.tracks];
""",
    tracks="all",
    load="""\
        const features = await rpc.call("genometracks", "CoreGetFeatures", {
          sessionId: "genometracks", adapterConfig: t.adapter,
          regions: [{assemblyName: assembly.name, refName: region.refName, start: region.start, end: region.end}]});
        if (t.type === "QuantitativeTrack") {  // how the view draws it: upside down? zoomed-out summary?
          const display = view.tracks.find(x => x.configuration.trackId === t.trackId).displays[0];
          state.displays = state.displays || {};
          state.displays[t.name] = {inverted: Boolean(display.scaleOpts.inverted),
                                    summaryScoreMode: display.rendererConfig.summaryScoreMode};
        }
""",
    count="features.length",
    finish="""\
    // index.html?locus=TERM: a locus, or a name the tracks' text search knows (a TSS call, a motif, a
    // sigma class; any case); '+' in a name is %2B in an address
    const wanted = new URLSearchParams(location.search).get("locus");
    if (wanted) {
      state.search = {term: wanted, found: true};
      const model = viewState.session.assemblyManager.get(assembly.name);  // the assembly's model, not its name
      try { await view.navToSearchString({input: wanted, assembly: model}); }
      catch (e) { state.search = {term: wanted, found: false, why: String(e && e.message || e)}; }
      const moved = view.dynamicBlocks.contentBlocks[0] || view.displayedRegions[0];
      state.locus = `${moved.refName}:${Math.round(moved.start) + 1}..${Math.round(moved.end)}`;
    }
""",
)
