"""IGV outputs for a run directory: `igv/session.xml` (IGV desktop), `igv/batch.txt` (loads the session
and snapshots a locus) and `igv/index.html` (igv.js in a browser; see `genometracks serve`).

Everything is relative to `DIR/igv/`: the genome FASTA and its .fai are copied to `igv/genome/` (with
the hub's chromAlias table, which the igv.js page reads as its reference's `aliasURL`),
tracks are referenced where they lie inside DIR (e.g. `../tracks/tss.plus.bw`). igv.js comes from
the npm registry (`npm install igv@IGV_JS_VERSION` into the user cache) and is copied beside the page.

What IGV desktop 2.16 honours (checked under Xvfb, tests/test_igv_desktop.py): it resolves a session's
`path` against the session file but an `index` against its working directory, so no `index` is
written (IGV finds `<file>.tbi` itself); it ignores `flipAxis`, so a negated track is written as
negative values (`igv/<name>.neg.bw`, window function `min`, drawn below the axis); a track `color`
overrides a bigBed's itemRgb, so `color=None` writes none; a session without the sequence track
drops it. batch.txt loads only local files (no `new`, which fetches IGV's default network genome), and
prefs.properties makes our genome IGV's default, which IGV loads before any batch command runs.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from genometracks.browser.bundles import cache_root, ensure_bundle
from genometracks.browser.chromalias import fasta_original_names, write_chrom_alias
from genometracks.browser.locus import igvjs_locus
from genometracks.browser.status_page import script_json, status_page
from genometracks.formats.bigwig import read_bigwig, write_bigwig
from genometracks.formats.trix import trix_paths
from genometracks.genome.sequence import GenomeError, read_fasta_letters
from genometracks.io.atomic import link_or_copy, staged_dir
from genometracks.io.paths import safe_name
from genometracks.io.rundir import RunDir

IGV_JS_VERSION = "3.8.10"


class IgvError(ValueError):
    """IGV outputs cannot be written as asked; the message names the file and the fix."""


@dataclass
class IgvTrack:
    """A track file inside the run directory: .bw/.bigwig (signal), .bb/.bigbed, .bed.gz (+ .tbi), or a
    plain .bed (read whole, so IGV and igv.js index its feature names for search: the TSS calls).

    `negate` draws the track below the axis (its values negated); signal tracks sharing an `overlay`
    name are drawn as one track of that name, on one axis (IGV's merged track: a strand pair up and
    down from one zero line, as the hub's multiWig); `color` None keeps the features' own colours
    (itemRgb); `window_function` is how a zoomed-out pixel summarises its bases ('max' for a TSS
    signal, whose peaks the mean would flatten)."""

    name: str
    path: Path
    color: tuple[int, int, int] | None = (0, 0, 0)
    negate: bool = False
    overlay: str | None = None
    window_function: str = "mean"

    @property
    def kind(self) -> str:
        name = Path(self.path).name.lower()
        kinds = ((".bw", "bigwig"), (".bigwig", "bigwig"), (".bb", "bigbed"), (".bigbed", "bigbed"), (".bed.gz", "bed"), (".bed", "bed"))
        for suffix, kind in kinds:
            if name.endswith(suffix):
                return kind
        raise IgvError(f"{self.path}: track {self.name!r} is not a .bw, .bb, .bed.gz or .bed file")


def ensure_igv_js(version: str = IGV_JS_VERSION) -> Path:
    """Path of igv.min.js: $GENOMETRACKS_IGV_JS if set, else the npm package in the cache
    (`<cache>/igv-js/<version>/node_modules/igv/dist/igv.min.js`), installed with npm when absent."""
    relpath = "node_modules/igv/dist/igv.min.js"

    def install(npm: str, stage: Path) -> None:
        result = subprocess.run(
            [npm, "install", "--prefix", str(stage), f"igv@{version}", "--no-audit", "--no-fund", "--ignore-scripts", "--no-save"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0 or not (stage / relpath).is_file():
            raise IgvError(
                f"npm install igv@{version} failed (exit {result.returncode}): "
                f"{result.stderr.strip()[-800:]}; check network access to the npm registry "
                "or set GENOMETRACKS_IGV_JS"
            )

    return ensure_bundle(
        env="GENOMETRACKS_IGV_JS",
        name="igv.min.js",
        package="igv.js",
        folder=cache_root() / "igv-js" / version,
        relpath=relpath,
        error=IgvError,
        fetch=install,
    )


def _copy_fasta(fasta: Path, folder: Path) -> Path:
    """Copy (plain) or decompress (.gz/.bgz) the FASTA into `folder` and index it (.fai)."""
    import pysam

    if not fasta.is_file():
        raise IgvError(f"{fasta}: genome FASTA not found")

    name = safe_name(fasta.name.split(".")[0], prefix="genome") + ".fa"
    target = folder / name
    if fasta_original_names(fasta):  # NCBI-style names: the copy carries their accessions
        _write_even_fasta(fasta, target)
    elif fasta.suffix in {".gz", ".bgz"}:
        with gzip.open(fasta, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:  # a copy, not a hard link: a FASTA edited in place would change the session's reference under its .fai
        shutil.copyfile(fasta, target)
    if not _faidx_ready(target):  # uneven or blank lines: faidx refuses them (htslib says so on stderr)
        target.unlink()
        _write_even_fasta(fasta, target)
    try:
        pysam.faidx(str(target))
    except pysam.utils.SamtoolsError:  # anything else faidx refuses: IGV needs a reformatted copy
        target.unlink()
        _write_even_fasta(fasta, target)
        pysam.faidx(str(target))
    return target


def _faidx_ready(fasta: Path) -> bool:
    """True when every record of a plain FASTA has lines of one length (the last may be shorter) and
    no blank line inside it: the layout a .fai index can describe."""
    with open(fasta, "rb") as handle:
        width = last = None
        for line in handle:
            if line.startswith(b">"):
                width = last = None
                continue
            length = len(line.rstrip(b"\r\n"))
            if length == 0 or (last is not None and last != width) or (width is not None and length > width):
                return False
            width = length if width is None else width
            last = length
    return True


def _write_even_fasta(fasta: Path, target: Path, width: int = 60) -> None:
    """Rewrite `fasta` at `target` with `width`-letter lines and LF ends (letters and case kept)."""
    try:
        records = read_fasta_letters(fasta)
    except GenomeError as err:
        raise IgvError(str(err)) from None
    with open(target, "wb") as out:
        for name, seq in records.items():
            out.write(b">" + name.encode() + b"\n")
            out.write(b"".join(seq[i : i + width] + b"\n" for i in range(0, len(seq), width)))


def write_negated_bigwig(source: Path, target: Path) -> Path:
    """A copy of bigWig `source` with every value negated (IGV desktop draws negatives below the axis)."""
    import pyBigWig

    handle = pyBigWig.open(str(source))
    sizes = dict(handle.chroms())
    handle.close()
    values = {c: np.nan_to_num(-read_bigwig(source, c), nan=0.0) for c in sizes}
    return write_bigwig(target, sizes, values)


def _relative(run_dir: Path, igv_dir: Path, track: IgvTrack) -> tuple[str, str | None]:
    """(path, index path or None) of a track relative to igv/, after checking the files exist in DIR: a
    .bed.gz's tabix index, or a bigBed's trix word index (X.ix beside X.bb, for igv.js's case-blind search)."""
    kind = track.kind  # raises for an unknown file type
    path = Path(track.path)
    path = Path(os.path.abspath(path if path.is_absolute() else run_dir / path))  # symlinks kept: DIR/tracks may be one
    if Path(os.path.abspath(run_dir)) not in path.parents:
        raise IgvError(
            f"{path}: track {track.name!r} lies outside the run directory {run_dir}; "
            "write tracks under DIR so the session and `serve` can reach them"
        )
    if not path.is_file():
        raise IgvError(f"{path}: track {track.name!r} file not found; run export first")
    index = None
    if kind == "bed" and path.name.lower().endswith(".gz"):
        tbi = path.with_name(path.name + ".tbi")
        if not tbi.is_file():
            raise IgvError(f"{tbi}: tabix index of track {track.name!r} not found")
        index = os.path.relpath(tbi, os.path.abspath(igv_dir))
    if kind == "bigbed" and all(p.is_file() for p in trix_paths(path)):
        index = os.path.relpath(trix_paths(path)[0], os.path.abspath(igv_dir))
    return os.path.relpath(path, os.path.abspath(igv_dir)), index


def _panel_items(tracks: Sequence[IgvTrack]) -> list[tuple[str | None, list[int]]]:
    """The tracks as drawn, in order: (overlay name, [track indices]) for each overlay (at its first
    member's place), (None, [i]) for a track of its own."""
    items: list[tuple[str | None, list[int]]] = []
    where: dict[str, int] = {}
    for i, track in enumerate(tracks):
        if track.overlay and track.kind == "bigwig":
            if track.overlay not in where:
                where[track.overlay] = len(items)
                items.append((track.overlay, []))
            items[where[track.overlay]][1].append(i)
        else:
            items.append((None, [i]))
    return items


def _signal_element(parent: ET.Element, track: IgvTrack, path: str) -> None:
    """A bigWig's <Track> (DataSourceTrack) with its colour, window function and zero-based range."""
    color = {"color": ",".join(str(int(c)) for c in track.color)} if track.color is not None else {}
    element = ET.SubElement(
        parent,
        "Track",
        attributeKey=track.name,
        autoScale="true",
        clazz="org.broad.igv.track.DataSourceTrack",
        **color,
        height="80",
        id=path,
        name=track.name,
        renderer="BAR_CHART",
        visible="true",
        windowFunction=track.window_function,
    )
    ET.SubElement(
        element,
        "DataRange",
        baseline="0.0",
        drawBaseline="true",
        flipAxis="false",
        maximum="0.0" if track.negate else "1.0",
        minimum="-1.0" if track.negate else "0.0",
        type="LINEAR",
    )


def _session_xml(genome: str, locus: str, tracks: Sequence[IgvTrack], paths: list[tuple[str, str | None]]) -> str:
    session = ET.Element("Session", genome=genome, locus=locus, version="8")
    resources = ET.SubElement(session, "Resources")
    panel = ET.SubElement(session, "Panel", name="DataPanel")
    for track, (path, _index) in zip(tracks, paths):  # no `index`: IGV finds <file>.tbi beside the file
        ET.SubElement(
            resources, "Resource", name=track.name, path=path, type={"bigwig": "bigwig", "bigbed": "bigbed", "bed": "bed"}[track.kind]
        )
    for overlay, members in _panel_items(tracks):
        if overlay is not None:
            # IGV's MergedTracks: only name-like attributes on it (its setters of height, scale and window
            # function reach members it does not have yet while the session is read); alpha 1 keeps the
            # members' colours opaque (IGV's default halves them)
            merged = ET.SubElement(
                panel,
                "Track",
                alpha="1.0",
                attributeKey=overlay,
                clazz="org.broad.igv.track.MergedTracks",
                id=f"overlay_{safe_name(overlay)}",
                name=overlay,
                visible="true",
            )
            for i in members:
                _signal_element(merged, tracks[i], paths[i][0])
            continue
        track, path = tracks[members[0]], paths[members[0]][0]
        if track.kind == "bigwig":
            _signal_element(panel, track, path)
        else:
            color = {"color": ",".join(str(int(c)) for c in track.color)} if track.color is not None else {}
            ET.SubElement(
                panel,
                "Track",
                attributeKey=track.name,
                clazz="org.broad.igv.track.FeatureTrack",
                **color,
                displayMode="EXPANDED",
                id=path,
                name=track.name,
                visible="true",
            )
    features = ET.SubElement(session, "Panel", name="FeaturePanel")  # keeps the reference sequence track
    ET.SubElement(
        features,
        "Track",
        attributeKey="Reference sequence",
        clazz="org.broad.igv.track.SequenceTrack",
        fontSize="10",
        id="Reference sequence",
        name="Reference sequence",
        sequenceTranslationStrandValue="POSITIVE",
        shouldShowTranslation="false",
        visible="true",
    )
    ET.indent(session)
    return '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + ET.tostring(session, encoding="unicode") + "\n"


def _track_config(track: IgvTrack, path: str, index: str | None) -> dict:
    """One igv.js track config."""
    config = {"name": track.name, "url": path}
    if track.color is not None:  # none: igv.js draws bigBed items in their itemRgb
        config["color"] = "rgb({},{},{})".format(*map(int, track.color))
    if track.kind == "bigwig":  # a negated track holds negative values: drawn below the axis
        config.update(type="wig", format="bigwig", height=80, windowFunction=track.window_function)
    else:
        config.update(type="annotation", format="bigbed" if track.kind == "bigbed" else "bed", displayMode="EXPANDED")
        if index and track.kind == "bigbed":  # igv.js upper-cases a search: the trix maps any case to the name
            config.update(trixURL=index)
        elif index:
            config.update(indexURL=index)
        elif track.kind == "bed":  # a plain BED, loaded whole: its names can be searched
            config.update(indexed=False, searchable=True)
    return config


def _page_tracks(tracks: Sequence[IgvTrack], paths: list[tuple[str, str | None]]) -> list[dict]:
    """igv.js track configs: an overlay as one merged track, autoscaled over its members together."""
    configs = []
    for overlay, members in _panel_items(tracks):
        if overlay is None:
            configs.append(_track_config(tracks[members[0]], *paths[members[0]]))
        else:
            parts = [_track_config(tracks[i], *paths[i]) for i in members]
            # alpha 1: the members' own colours (igv.js halves them by default)
            configs.append({"name": overlay, "type": "merged", "height": 80, "autoscale": True, "alpha": 1, "tracks": parts})
    return configs


def write_igv(
    run_dir: str | Path,
    fasta: str | Path,
    tracks: Sequence[IgvTrack],
    locus: str | None = None,
    snapshot_locus: str | None = None,
    title: str = "genometracks",
    igv_version: str = IGV_JS_VERSION,
) -> dict[str, Path]:
    """Write DIR/igv/ (session.xml, batch.txt, index.html, igv.min.js, genome/) atomically as one folder.

    `locus` (IGV syntax, 1-based, e.g. 'NC_000913.3:1-20000') defaults to the first 20 kb."""
    run_dir = Path(run_dir).absolute()  # track paths are DIR/...: relative to the working directory, not DIR
    igv_dir = RunDir(run_dir).igv
    names = [t.name for t in tracks]
    if len(set(names)) != len(names):
        raise IgvError(f"track names must be unique, got {names}")
    paths = [_relative(run_dir, igv_dir, t) for t in tracks]
    igv_js = ensure_igv_js(igv_version)
    with staged_dir(igv_dir) as stage:
        (stage / "genome").mkdir()
        tracks, paths = list(tracks), list(paths)
        for i, track in enumerate(tracks):
            if track.negate and track.kind == "bigwig":  # IGV ignores flipAxis: write the values negated
                name = f"{safe_name(Path(track.path).name.split('.bw')[0].split('.bigwig')[0])}.neg.bw"
                source = Path(track.path) if Path(track.path).is_absolute() else run_dir / track.path
                write_negated_bigwig(source, stage / name)
                tracks[i] = replace(track, window_function="min" if track.window_function == "max" else track.window_function)
                paths[i] = (name, None)
        fasta_copy = _copy_fasta(Path(fasta), stage / "genome")
        fai = [line.split("\t") for line in (stage / "genome" / (fasta_copy.name + ".fai")).read_text().splitlines() if line]
        # the hub's chromAlias table (UCSC's format, which igv.js reads too): files keyed by U00096.3, chr-style or
        # the FASTA's own names load on the page
        write_chrom_alias(stage / "genome" / "chromAlias.txt", {row[0]: int(row[1]) for row in fai}, fasta_original_names(Path(fasta)))
        first = fai[0]
        locus = locus or f"{first[0]}:1-{min(int(first[1]), 20000)}"
        genome = f"genome/{fasta_copy.name}"
        # IGV desktop reads the alias table through a JSON genome (its `aliasURL`; paths relative to the JSON)
        desktop_genome = f"genome/{DESKTOP_GENOME}"
        (stage / desktop_genome).write_text(
            json.dumps(desktop_genome_json(safe_name(fasta_copy.stem), title, fasta_copy.name), indent=1) + "\n"
        )
        (stage / "session.xml").write_text(_session_xml(desktop_genome, locus, tracks, paths))
        snap = snapshot_locus or locus
        # IGV loads its default genome (hg19, from the network) before a batch runs; prefs.properties
        # makes ours the default, so nothing is fetched: `igv -o prefs.properties -b batch.txt`
        (stage / "prefs.properties").write_text(
            f"DEFAULT_GENOME_KEY={desktop_genome}\nAUTO_UPDATE_GENOMES=FALSE\nSHOW_GENOME_SERVER_WARNING=FALSE\n"
        )
        (stage / "batch.txt").write_text(
            "# IGV batch script, local files only: run snapshot.sh (from any folder), or from this folder "
            "`igv -o prefs.properties -b batch.txt`\n"
            f"genome {desktop_genome}\nload session.xml\nsnapshotDirectory snapshots\ngoto {snap}\n"
            f"snapshot {safe_name(snap)}.png\nexit\n"
        )
        # from any folder: IGV reads the default-genome preference against its working directory (started
        # elsewhere it looked for genome/genome.json there and waited), so the script runs it from here
        script = stage / "snapshot.sh"
        script.write_text(
            "#!/bin/sh\n# IGV desktop: this folder's session at its locus, a PNG into snapshots/, then exit (offline)\n"
            'cd "$(dirname "$0")" && exec igv -o prefs.properties -b batch.txt "$@"\n'
        )
        script.chmod(0o755)
        link_or_copy(igv_js, stage / "igv.min.js")
        config = {
            "title": title,
            "locus": igvjs_locus(locus),
            "tracks": _page_tracks(tracks, paths),
            "reference": {
                "id": safe_name(fasta_copy.stem),
                "name": title,
                "fastaURL": genome,
                "indexURL": genome + ".fai",
                "aliasURL": "genome/chromAlias.txt",  # igv.js 3 reads `aliasURL` (it has no `chromAliasURL`)
            },
        }
        (stage / "index.html").write_text(_page(title, config))
    return {name: igv_dir / name for name in ("session.xml", "batch.txt", "prefs.properties", "snapshot.sh", "index.html", "igv.min.js")}


DESKTOP_GENOME = "genome.json"


def desktop_genome_json(genome_id: str, name: str, fasta: str) -> dict:
    """IGV desktop's JSON genome for igv/genome/: the FASTA copy, its .fai and the chromAlias table
    (`aliasURL`: each row's names are one contig), paths relative to the JSON file."""
    return {"id": genome_id, "name": name, "fastaURL": fasta, "indexURL": fasta + ".fai", "aliasURL": "chromAlias.txt"}


def _page(title: str, config: dict) -> str:
    from html import escape

    data = script_json(config)
    return _PAGE.replace("@TITLE@", escape(title)).replace("@CONFIG@", data)


# igv/index.html: igv.js's view of the reference and tracks of the JSON config in the page, its load state
# in window.__igvState and <pre id="igv-status"> (genometracks.browser.status_page)
_PAGE = status_page(
    script="igv.min.js",
    view_id="igv-div",
    status_id="igv-status",
    state="__igvState",
    dataset_key="igvStatus",
    field="genome",
    data='<script type="application/json" id="igv-config">@CONFIG@</script>\n',
    open_view="""\
    if (typeof igv === "undefined") throw new Error("igv.min.js did not load");
    const cfg = JSON.parse(document.getElementById("igv-config").textContent);
    const browser = await igv.createBrowser(document.getElementById("igv-div"),
      {reference: cfg.reference, locus: cfg.locus, tracks: [], showSampleNames: false});
    window.__igvBrowser = browser;
    state.genome = browser.genome.id;
    const frame = browser.referenceFrameList[0];
    state.locus = `${frame.chr}:${Math.round(frame.start)}-${Math.round(frame.end)}`;
""",
    tracks="cfg.tracks",
    load="""\
        const track = await browser.loadTrack(t);
        const features = await track.getFeatures(frame.chr, Math.floor(frame.start), Math.ceil(frame.end),
                                                 frame.bpPerPixel);
        if (t.type === "merged") {  // a merged track's features: one list per member (MergedFeatureCollection)
          features.featureArrays.forEach((part, i) => {
            state.tracks[t.tracks[i].name] = {status: "loaded", features: part.length}; });
        }
""",
    count="features ? (t.type === 'merged' ? features.featureArrays.reduce((n, part) => n + part.length, 0) : features.length) : 0",
    finish="""\
    // index.html?locus=TERM: a locus or a feature name (a TSS call, a motif hit) found through the
    // tracks' name indexes (bigBed trix + extra indexes, any case; plain BEDs read whole); '+' in a name is %2B in a URL
    const wanted = new URLSearchParams(location.search).get("locus");
    if (wanted) {
      state.search = {term: wanted, found: await browser.search(wanted)};
      const moved = browser.referenceFrameList[0];
      state.locus = `${moved.chr}:${Math.round(moved.start)}-${Math.round(moved.end)}`;
    }
""",
)
