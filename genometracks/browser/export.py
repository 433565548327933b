"""`genometracks export run_dir=DIR`: the UCSC hub(s), the IGV session and the JBrowse 2 page of a run.

Collects what earlier stages wrote under DIR/tracks/ (strand bigWigs are required; the annotation's
genes, peaks, motif hits, sigma classes and attributions are added when present) and writes
DIR/hub/ (self-contained assembly hub), DIR/hub_genark/ (on UCSC's GenArk assembly, when the
contigs are GCF_000005845.2's), DIR/igv/, DIR/jbrowse/ and DIR/tracks/tss_calls.gff3 (the calls with
their gene context and sigma class, browser.calls_gff3). Every hub is validated before it replaces the last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from genometracks.browser.calls_gff3 import write_calls_gff3
from genometracks.browser.genark import GENARK_SIZES
from genometracks.browser.hub import HubContainer, HubError, HubTrack, write_hub
from genometracks.browser.igv import IgvTrack, write_igv
from genometracks.browser.jbrowse import JBrowseTrack, write_jbrowse
from genometracks.browser.locus import default_region, jbrowse_locus, ucsc_locus
from genometracks.data.dataset import open_genome
from genometracks.io.figures import STRAND_RGB
from genometracks.io.run_config import group_defaults
from genometracks.io.rundir import RunDir

PLUS_COLOUR, MINUS_COLOUR = STRAND_RGB["+"], STRAND_RGB["-"]


@dataclass(frozen=True)
class OptionalTrack:
    """A bigBed/bigWig an earlier stage may have written, with its hub labels."""

    name: str
    stem: str  # DIR/tracks/<stem>.bb|.bw
    suffix: str
    short_label: str
    long_label: str
    html: str
    group: str
    color: tuple[int, int, int]
    settings: tuple[tuple[str, str], ...] = ()
    # the fields JBrowse's search box finds this track's items by: a TSS call's name only in the peaks track
    # (the sigma and motif tracks repeat it: one name, one result, and JBrowse jumps to it)
    jbrowse_search: tuple[str, ...] = ()


# per-base contributions, positive and negative: zoomed out, UCSC draws each pixel's mean with whiskers to
# its minimum and maximum (the mean alone of signed values cancels to a flat line)
SIGNED_SETTINGS = (("autoScale", "on"), ("graphTypeDefault", "bar"), ("windowingFunction", "mean+whiskers"))

OPTIONAL_TRACKS = (
    OptionalTrack(
        "genes",
        "genes",
        ".bb",
        "Genes",
        "Genes of the annotation the TSS calls are classified by (data.annotation)",
        "genes",
        "genes",
        (12, 12, 120),
        jbrowse_search=("name", "locus_tag"),
    ),
    OptionalTrack(
        "tss_peaks",
        "tss_peaks",
        ".bb",
        "TSS peaks",
        "TSS calls: local maxima of the TSS probability",
        "tss_peaks",
        "tss",
        (120, 0, 120),
        jbrowse_search=("name",),
    ),
    OptionalTrack(
        "tss_sigma",
        "tss_sigma",
        ".bb",
        "TSS sigma class",
        "Sigma-factor class of each TSS call (CNN)",
        "tss_sigma",
        "tss",
        (0, 0, 0),
        (("itemRgb", "on"),),
        jbrowse_search=("sigma",),
    ),
    OptionalTrack(
        "sigma70_boxes",
        "sigma70_boxes",
        ".bb",
        "Sigma70 boxes",
        "Sigma70 -35/-10 boxes of TSS calls (DPInteract windows, FIMO q <= cut-off)",
        "sigma70_boxes",
        "tss",
        (0, 0, 0),
        (("itemRgb", "on"),),
    ),
    OptionalTrack(
        "motif_hits",
        "motif_hits",
        ".bb",
        "Head motif hits",
        "Attention-head words in the promoters of TSS calls (paler = weaker)",
        "motif_hits",
        "interpretation",
        (0, 110, 60),
        (("itemRgb", "on"),),
        jbrowse_search=("name", "matchedMotif"),
    ),
    OptionalTrack(
        "attribution_plus",
        "attribution.plus",
        ".bw",
        "Attribution +",
        "Gradient x input contribution of each base to plus-strand TSS calls",
        "attribution",
        "interpretation",
        (150, 60, 60),
        SIGNED_SETTINGS,
    ),
    OptionalTrack(
        "attribution_minus",
        "attribution.minus",
        ".bw",
        "Attribution -",
        "Gradient x input contribution of each base to minus-strand TSS calls",
        "attribution",
        "interpretation",
        (60, 60, 150),
        SIGNED_SETTINGS,
    ),
    OptionalTrack(
        "deeplift_plus",
        "deeplift.plus",
        ".bw",
        "DeepLIFT/SHAP +",
        "DeepLIFT/SHAP contribution of each base to plus-strand TSS calls",
        "deeplift",
        "interpretation",
        PLUS_COLOUR,
        SIGNED_SETTINGS,
    ),
    OptionalTrack(
        "deeplift_minus",
        "deeplift.minus",
        ".bw",
        "DeepLIFT/SHAP -",
        "DeepLIFT/SHAP contribution of each base to minus-strand TSS calls",
        "deeplift",
        "interpretation",
        MINUS_COLOUR,
        SIGNED_SETTINGS,
    ),
)


def hub_track(name: str, path: Path) -> HubTrack:
    """The HubTrack of optional track `name` (one of OPTIONAL_TRACKS) for the file at `path`."""
    t = {t.name: t for t in OPTIONAL_TRACKS}[name]
    return HubTrack(
        t.name,
        Path(path),
        t.short_label,
        t.long_label,
        t.color,
        html=t.html,
        group=t.group,
        settings=dict(t.settings),
        visibility="pack" if t.suffix == ".bb" else "full",
    )


def run_hub_tracks(tracks_dir: Path) -> list:
    """The hub tracks of a run's DIR/tracks/: the strand multiWig, then each optional track written."""
    run = RunDir(tracks_dir.parent)
    plus, minus = run.tss_bigwig("+"), run.tss_bigwig("-")
    for path in (plus, minus):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run `genometracks predict run_dir={tracks_dir.parent}` first")
    strands = HubContainer(
        "tss_signal",
        "TSS probability",
        "Per-base TSS probability, plus (up) and minus (down)",
        children=[
            HubTrack("tss_plus", plus, "TSS + strand", "TSS probability, plus strand", PLUS_COLOUR, html="tss_signal"),
            HubTrack("tss_minus", minus, "TSS - strand", "TSS probability, minus strand", MINUS_COLOUR, html="tss_signal", negate=True),
        ],
        html="tss_signal",
        settings={"windowingFunction": "maximum"},
    )
    out: list = [strands]
    for t in OPTIONAL_TRACKS:
        path = tracks_dir / f"{t.stem}{t.suffix}"
        if path.is_file():
            out.append(hub_track(t.name, path))
    return out


def _igv_tracks(tracks_dir: Path) -> list[IgvTrack]:
    run = RunDir(tracks_dir.parent)
    tracks = [
        # one track, one axis: + up and - down from the same zero line, as the hub's multiWig draws them
        IgvTrack("TSS + strand", run.tss_bigwig("+"), PLUS_COLOUR, overlay="TSS probability", window_function="max"),
        IgvTrack("TSS - strand", run.tss_bigwig("-"), MINUS_COLOUR, negate=True, overlay="TSS probability", window_function="max"),
    ]
    # features: a plain BED where written (the TSS calls: read whole, so IGV and igv.js find a call by its
    # name), else the tabix BED (IGV reads its extra columns), else bigBed; itemRgb tracks from the bigBed
    for t in OPTIONAL_TRACKS:
        item_rgb = ("itemRgb", "on") in t.settings  # drawn in the file's colours: no track colour
        for suffix in (".bb",) if item_rgb else (".bed", ".bed.gz", ".bb") if t.suffix == ".bb" else (t.suffix,):
            path = tracks_dir / f"{t.stem}{suffix}"
            if path.is_file() and (suffix != ".bed" or path.stat().st_size > 0):  # no calls: an empty plain BED, no track
                tracks.append(IgvTrack(t.short_label, path, None if item_rgb else t.color))
                break
    return tracks


def hub_overview(run_dir: Path, organism: str, tracks: list) -> str:
    """The hub description page (HTML fragment) from what the run's report is built from: the data
    summary, the test metrics (metrics.json) and the track list; it links to the run's report."""
    from html import escape

    def read(name: str) -> dict:
        try:
            return json.loads((run_dir / name).read_text())
        except (OSError, ValueError):
            return {}

    parts = [
        f"<p>Transcription start sites of <i>{escape(organism)}</i> predicted per base and strand by "
        "a segment-recurrent Transformer-XL (genometracks).</p>"
    ]
    data = read("data_summary.json")
    if data.get("total_length"):
        parts.append(f"<p>Genome: {int(data['total_length']):,} nt.</p>")
    metrics = read("metrics.json")
    test = (metrics.get("test") or {}).get("both") or {}
    rows = [(k, test[k]) for k in ("roc_auc", "pr_auc", "pr_auc_k4", "pr_auc_k10") if isinstance(test.get(k), (int, float))]
    if rows:
        cells = "".join(f"<tr><td>{escape(k)}</td><td>{v:.3f}</td></tr>" for k, v in rows)
        parts.append(
            f"<p>Held-out test region, both strands (labels '{escape(str(metrics.get('labels', '')))}'):"
            f'</p><table border="1" cellpadding="3">{cells}</table>'
        )
    items = "".join(f"<li><b>{escape(t.short_label)}</b>: {escape(t.long_label)}</li>" for t in tracks)
    parts.append(f"<p>Tracks:</p><ul>{items}</ul>")
    parts.append(
        "<p>The full report of the run (curves, heads, motifs, sigma classes) is "
        '<a href="../report.html">report.html</a> in the run directory (written by the report stage of '
        "<code>genometracks run</code>, or by <code>genometracks report run_dir=DIR</code>).</p>"
    )
    return "\n".join(parts) + "\n"


JBROWSE_CATEGORIES = {"tss": "TSS", "genes": "Genes"}  # by OptionalTrack.group; the rest: Interpretation


def _jbrowse_tracks(tracks_dir: Path) -> list:
    # one track per strand, the minus strand drawn downward (JBrowse's multi-wiggle would flip both);
    # zoomed out, each window shows its highest probability, as the hub and IGV do
    tracks = [
        JBrowseTrack("tss_plus", "TSS + strand", "wig", [("TSS + strand", tracks_dir / "tss.plus.bw", PLUS_COLOUR)], summary="max"),
        JBrowseTrack(
            "tss_minus", "TSS - strand", "wig", [("TSS - strand", tracks_dir / "tss.minus.bw", MINUS_COLOUR)], inverted=True, summary="max"
        ),
    ]
    for t in OPTIONAL_TRACKS:
        path = tracks_dir / f"{t.stem}{t.suffix}"
        if path.is_file():
            category = JBROWSE_CATEGORIES.get(t.group, "Interpretation")
            tracks.append(
                JBrowseTrack(
                    t.name,
                    t.short_label,
                    "features" if t.suffix == ".bb" else "wig",
                    [(t.short_label, path, t.color)],
                    category=category,
                    item_rgb=("itemRgb", "on") in t.settings,
                    search=t.jbrowse_search,
                )
            )
    return tracks


GENOME_MODES = ("assembly", "genark", "both")


def check_export_settings(e: DictConfig, organism: str) -> None:
    """One HubError naming the export.* key and the fix for a setting no hub can be written with."""
    if str(e.genome_mode) not in GENOME_MODES:
        raise HubError(f"export.genome_mode={e.genome_mode!r}: choose one of {', '.join(GENOME_MODES)}")
    if not str(e.email).strip():
        raise HubError("export.email is empty; UCSC's hub.txt needs a contact address: pass export.email=YOU@EXAMPLE.ORG")
    if not str(organism).strip():
        raise HubError("export.organism is empty (no data.organism?); pass export.organism='Genus species strain'")
    for key in ("hub_name", "short_label", "long_label"):
        if not str(e[key]).strip():
            raise HubError(f"export.{key} is empty; give it a value (conf/export/default.yaml has one)")


def genark_position_html(accession: str, locus: str, folder: str = "hub_genark") -> str:
    """A paragraph of the GenArk hub's description page: how to open it at `locus` (UCSC ignores
    defaultPos in a stanza without twoBitPath, so the hgTracks address carries the position); `folder`:
    the hub's folder in DIR (hub_genark beside an assembly hub, hub with export.genome_mode=genark)."""
    from html import escape
    from urllib.parse import quote

    url = f"https://genome.ucsc.edu/cgi-bin/hgTracks?genome={quote(accession)}&hubUrl=https://YOUR.HOST/DIR/{quote(folder)}/hub.txt&position={quote(locus)}"
    return (
        f"<p>This hub opens where UCSC's {escape(accession)} assembly opens (UCSC reads <code>defaultPos</code> only from "
        f"an assembly hub). To open it at the strongest TSS call with a motif hit beside it, {escape(locus)}, give the "
        f"position in the address: <code>{escape(url)}</code></p>\n"
    )


def export_run(run_dir: Path, fasta: Path, chrom_sizes: dict[str, int], cfg_export: DictConfig | dict, organism: str) -> dict[str, str]:
    """Write DIR/hub (assembly), DIR/hub_genark (when applicable), DIR/igv, DIR/jbrowse and the calls' GFF3
    (DIR/tracks/tss_calls.gff3, where there are calls); return their paths."""
    e = OmegaConf.merge(group_defaults("export"), cfg_export)  # keys not given: conf/export/default.yaml
    check_export_settings(e, organism)  # before anything is written
    run_dir = Path(run_dir).absolute()
    run = RunDir(run_dir)
    tracks_dir = run.tracks
    tracks = run_hub_tracks(tracks_dir)
    opening = ucsc_locus(default_region(tracks_dir, chrom_sizes))
    common = dict(
        hub_name=str(e.hub_name),
        short_label=str(e.short_label),
        long_label=str(e.long_label),
        email=str(e.email),
        overview_html=hub_overview(run_dir, organism, tracks),
    )
    written = {}
    mode = str(e.genome_mode)
    if mode in ("assembly", "both"):
        written["hub"] = write_hub(
            run.hub,
            "assembly",
            chrom_sizes,
            tracks,
            fasta=fasta,
            organism=organism,
            description=f"{organism} ({fasta.name})",
            default_pos=opening,
            **common,
        )
    accession = str(e.genark_accession)
    genark_ok = GENARK_SIZES.get(accession) == dict(chrom_sizes)
    if mode == "genark" or (mode in ("assembly", "both") and genark_ok):
        target = run.hub if mode == "genark" else run.hub_genark
        # UCSC reads defaultPos only from an assembly hub's stanza: the GenArk hub's page gives the link instead
        page = common["overview_html"] + genark_position_html(accession, opening, target.name)
        written["hub_genark"] = write_hub(
            target, "genark", chrom_sizes, tracks, genark_accession=accession, **(common | {"overview_html": page})
        )
    written.update(write_views(run_dir, fasta, chrom_sizes, f"genometracks: {organism}"))
    gff3 = write_calls_gff3(run, chrom_sizes)
    if gff3 is not None:
        written["gff3"] = gff3
    return {k: str(Path(v).relative_to(run_dir)) for k, v in written.items()}


def write_views(run_dir: Path, fasta: Path, chrom_sizes: dict[str, int], title: str) -> dict[str, Path]:
    """DIR/igv/ (IGV session, igv.js page) and DIR/jbrowse/ (JBrowse 2 view) of a run's tracks, both
    opening at `locus.default_region` (the strongest call with a motif hit beside it)."""
    run_dir = Path(run_dir).absolute()
    tracks_dir = RunDir(run_dir).tracks
    region = default_region(tracks_dir, chrom_sizes)
    igv = write_igv(run_dir, fasta, _igv_tracks(tracks_dir), locus=ucsc_locus(region), title=title)
    jbrowse = write_jbrowse(run_dir, fasta, chrom_sizes, _jbrowse_tracks(tracks_dir), locus=jbrowse_locus(region), title=title)
    return {"igv": igv["session.xml"], "jbrowse": jbrowse["index.html"]}


def export_command(cfg: DictConfig) -> dict:
    """`genometracks export run_dir=DIR [data overrides]`."""
    out = RunDir.checked(cfg).root
    genome, fasta, _ = open_genome(cfg)
    organism = str(cfg.export.organism)  # default: the data set's `organism`
    written = export_run(out, fasta, genome.chrom_sizes(), cfg.export, organism)
    print(json.dumps(written))
    return written
