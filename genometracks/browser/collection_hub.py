"""One UCSC hub for a collection of genomes: `COLL/hub/` (hub.txt, genomes.txt with one stanza per
genome, each genome's trackDb.txt, .2bit and chromAlias) and `COLL/index.html`, the page listing every
genome with its status and links to its hub genome, IGV session, igv.js page and JBrowse 2 view.

Each genome's tracks come from its own run directory (`COLL/<name>/tracks/`). Every genome gets the
same track set: the tracks present in every finished genome (the strand bigWigs always; peaks and
the rest where all have them; the page names any track left out and why). A genome with a GenArk
accession is placed on that UCSC assembly (its contigs must be the assembly's), the others get their
own .2bit. The hub is built aside, validated and swapped in whole; the page is written atomically.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pyBigWig

from genometracks.browser.export import run_hub_tracks, write_views
from genometracks.browser.hub import HubError, HubGenome, write_hub_genomes
from genometracks.browser.locus import default_region, ucsc_locus
from genometracks.io.atomic import write_text_atomic
from genometracks.io.rundir import CollectionDir, RunDir


@dataclass
class Member:
    """A genome of the collection, as its job left it (status 'ok' or 'failed', from the summary)."""

    name: str
    run_dir: Path
    fasta: Path
    accession: str | None = None
    status: str = "ok"
    positions: int | None = None
    peaks: int | None = None
    seconds: float | None = None
    error: str = ""


def _chrom_sizes(run_dir: Path) -> dict[str, int]:
    with pyBigWig.open(str(RunDir(run_dir).tss_bigwig("+"))) as bw:
        return dict(bw.chroms())


def _names(tracks: list) -> list[str]:
    return [t.name for t in tracks]


def _common_tracks(per_member: dict[str, list]) -> tuple[list, dict[str, list[str]]]:
    """(the tracks every member has, in the first member's order; {track some members lack: [those members]}).
    Each member's hub keeps all of its own tracks: a genome with no TSS call (no peaks bigBed) must not
    take the calls away from the others."""
    sets = [set(_names(tracks)) for tracks in per_member.values()]
    common = set.intersection(*sets)
    partial = {
        track: sorted(name for name, tracks in per_member.items() if track not in _names(tracks)) for track in set.union(*sets) - common
    }
    return [t for t in next(iter(per_member.values())) if t.name in common], partial


def write_collection_hub(
    coll: CollectionDir, members: list[Member], hub_name: str, short_label: str, long_label: str, email: str
) -> dict[str, object]:
    """Write COLL/hub/ from the members with status 'ok' (their IGV and JBrowse views are written where
    missing) and COLL/index.html listing every member; returns what was written."""
    coll_dir = coll.root
    done = [m for m in members if m.status == "ok"]
    if not done:  # an earlier hub and index page would go on showing genomes as finished
        if coll.hub.exists():  # renamed away in one step, then removed
            gone = coll.hub.with_name(f".{coll.hub.name}.removed-{os.getpid()}")
            os.replace(coll.hub, gone)
            shutil.rmtree(gone, ignore_errors=True)
        write_text_atomic(coll.index_html, _index_page(coll_dir, members, {}, long_label, [], {}))
        raise HubError(
            f"{coll_dir}: no genome of the collection finished, so there is no hub to write; see summary.tsv for each genome's error"
        )
    per_member = {m.name: run_hub_tracks(RunDir(m.run_dir).tracks) for m in done}
    common, left_out = _common_tracks(per_member)
    genomes, hub_names = [], {}
    for m in done:
        sizes = _chrom_sizes(m.run_dir)
        run = RunDir(m.run_dir)
        if not (run.igv / "session.xml").is_file() or not (run.jbrowse / "config.json").is_file():
            write_views(m.run_dir, m.fasta, sizes, f"genometracks: {m.name}")
        entry = HubGenome(
            "genark" if m.accession else "assembly",
            sizes,
            per_member[m.name],
            fasta=m.fasta,
            genome_name=m.name,
            organism=m.name,
            description=f"{m.name} ({m.fasta.name})",
            default_pos=None if m.accession else ucsc_locus(default_region(run.tracks, sizes)),  # UCSC reads it from assembly stanzas only
            genark_accession=m.accession or "GCF_000005845.2",
        )
        try:
            hub_names[m.name] = entry.hub_name()
        except HubError as err:
            raise HubError(f"genome {m.name!r} ({m.run_dir}): {err}") from None
        genomes.append(entry)
    overview = _overview(members, hub_names, common, left_out)
    hub_txt = write_hub_genomes(
        coll.hub, genomes, hub_name=hub_name, short_label=short_label, long_label=long_label, email=email, overview_html=overview
    )
    index = write_text_atomic(coll.index_html, _index_page(coll_dir, members, hub_names, long_label, common, left_out))
    return {
        "hub": str(hub_txt.relative_to(coll_dir)),
        "index": str(index.relative_to(coll_dir)),
        "genomes": [hub_names[m.name] for m in done],
        "tracks": _names(common),
        "left_out": left_out,
    }


def _track_list(tracks: list, left_out: dict[str, list[str]]) -> str:
    items = "".join(f"<li><b>{escape(t.short_label)}</b>: {escape(t.long_label)}</li>" for t in tracks)
    missing = "".join(f"<li>{escape(name)}: not written for {escape(', '.join(who))}</li>" for name, who in sorted(left_out.items()))
    text = f"<p>Tracks of every genome:</p><ul>{items}</ul>"
    if missing:
        text += f"<p>Tracks of some genomes only (each genome's hub shows what it has):</p><ul>{missing}</ul>"
    return text


def _overview(members: list[Member], hub_names: dict[str, str], tracks: list, left_out: dict) -> str:
    """The hub's description page: the genomes and their tracks, linking to the collection's index page."""
    rows = "".join(
        f"<li>{escape(hub_names.get(m.name, m.name))}: {escape(m.name)}{'' if m.status == 'ok' else ' (failed, not in the hub)'}</li>"
        for m in members
    )
    return (
        f"<p>TSS predictions of {len(hub_names)} genome(s) by genometracks (a segment-recurrent "
        f"Transformer-XL).</p><ul>{rows}</ul>{_track_list(tracks, left_out)}"
        '<p>Per-genome IGV sessions and JBrowse 2 views: <a href="../index.html">index.html</a> of the '
        "collection.</p>\n"
    )


def _link(coll_dir: Path, path: Path, label: str) -> str:
    if not path.is_file():
        return ""
    return f'<a href="{escape(path.relative_to(coll_dir).as_posix())}">{escape(label)}</a>'


def _index_page(coll_dir: Path, members: list[Member], hub_names: dict[str, str], title: str, tracks: list, left_out: dict) -> str:
    head = (
        "<tr><th>genome</th><th>status</th><th>hub genome</th><th>positions</th><th>peaks</th>"
        "<th>seconds</th><th>views</th><th>error</th></tr>"
    )
    rows = []
    for m in members:
        run = RunDir(m.run_dir)
        links = (
            " ".join(
                x
                for x in (
                    _link(coll_dir, run.igv / "session.xml", "IGV session"),
                    _link(coll_dir, run.igv / "index.html", "igv.js"),
                    _link(coll_dir, run.jbrowse / "index.html", "JBrowse 2"),
                    _link(coll_dir, run.report_html, "report"),
                )
                if x
            )
            if m.status == "ok"
            else ""
        )
        cells = [
            escape(m.name),
            escape(m.status),
            escape(hub_names.get(m.name, "")),
            "" if m.positions is None else f"{m.positions:,}",
            "" if m.peaks is None else f"{m.peaks:,}",
            "" if m.seconds is None else f"{m.seconds:.1f}",
            links,
            escape(m.error),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    ok = sum(m.status == "ok" for m in members)
    return (
        f'<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{escape(title)}</title>'
        "<style>body{font-family:sans-serif} td,th{padding:2px 8px;text-align:left}</style></head>\n<body>\n"
        f"<h2>{escape(title)}</h2>\n<p>{ok} of {len(members)} genome(s) finished. "
        + (
            'UCSC track hub: <a href="hub/hub.txt">hub/hub.txt</a> (serve this folder at a public URL and paste '
            "<code>URL/hub/hub.txt</code> into <i>My Data &rarr; Track Hubs &rarr; My Hubs</i>; "
            "<code>genometracks serve DIR</code> serves it locally for igv.js and JBrowse 2).</p>\n"
            if ok
            else "No hub: no genome finished (the error column says why).</p>\n"
        )
        + f'<table border="1">\n{head}\n'
        + "\n".join(rows)
        + "\n</table>\n"
        f"{_track_list(tracks, left_out)}\n</body>\n</html>\n"
    )
