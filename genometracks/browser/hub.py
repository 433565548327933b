"""UCSC track hub writer: hub.txt, genomes.txt, <genome>/trackDb.txt and the files they name.

Two genome modes: "genark" (tracks on UCSC's GenArk assembly, e.g. GCF_000005845.2 for E. coli
K-12 MG1655) and "assembly" (a self-contained assembly hub: our own .2bit, chrom sizes, groups).
The hub is built in a staging folder, checked with `validate_hub`, then swapped in whole.
"""

from __future__ import annotations

import html as html_escape
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from genometracks.browser.chromalias import fasta_original_names, write_chrom_alias
from genometracks.browser.genark import GENARK_SIZES
from genometracks.browser.validate import validate_hub
from genometracks.formats.bigbed import bigbed_field_counts
from genometracks.formats.bigbed_index import searchable_fields
from genometracks.formats.trix import trix_paths
from genometracks.formats.twobit import write_twobit
from genometracks.io.atomic import link_or_copy, staged_dir
from genometracks.io.paths import hub_static_dir, safe_name

GROUP_LABELS = {"tss": "TSS predictions", "genes": "Genes (genome annotation)", "interpretation": "Motifs and attribution"}
_BIGWIG_MAGIC, _BIGBED_MAGIC = 0x888FFC26, 0x8789F2EB


class HubError(ValueError):
    """A hub cannot be written as asked; the message names the track or file and the fix."""


@dataclass
class HubTrack:
    """One bigWig or bigBed track; `source` is copied (hard-linked) into the hub as `<name>.bw|.bb`.

    `html` names a description page `hub/<html>.html`; `settings` adds trackDb lines as given."""

    name: str
    source: Path
    short_label: str
    long_label: str
    color: tuple[int, int, int] = (0, 0, 0)
    html: str | None = None
    negate: bool = False
    visibility: str = "full"
    group: str = "tss"
    settings: dict[str, str] = field(default_factory=dict)


@dataclass
class HubContainer:
    """A multiWig container overlaying bigWig children (e.g. plus and minus strand)."""

    name: str
    short_label: str
    long_label: str
    children: list[HubTrack]
    html: str | None = None
    visibility: str = "full"
    group: str = "tss"
    settings: dict[str, str] = field(default_factory=dict)


def _file_kind(path: Path) -> str:
    """'bigWig' or 'bigBed' from the file's magic number."""
    if not Path(path).is_file():
        raise HubError(f"{path}: track data file not found; run predict/export first")
    with open(path, "rb") as handle:
        head = handle.read(4).ljust(4, b"\0")
    magics = {int.from_bytes(head, "little"), int.from_bytes(head, "big")}
    if _BIGWIG_MAGIC in magics:
        return "bigWig"
    if _BIGBED_MAGIC in magics:
        return "bigBed"
    raise HubError(f"{path}: neither a bigWig nor a bigBed file")


def _line(key: str, value: object, indent: str) -> str:
    text = " ".join(str(value).split())  # one line, single spaces
    if not text:
        raise HubError(f"hub setting {key!r} has an empty value; give it one (hub.txt, genomes.txt and trackDb.txt need every value)")
    return f"{indent}{key} {text}\n"


class _Writer:
    """Builds one hub inside a staging folder."""

    def __init__(self, stage: Path, genome: str, mode: str) -> None:
        self.stage, self.genome, self.mode = stage, genome, mode
        self.gdir = stage / genome
        (self.gdir / "html").mkdir(parents=True)
        self.groups: list[str] = []
        self.names: set[str] = set()

    def _claim(self, name: str) -> str:
        safe = safe_name(name)
        if safe in self.names:
            raise HubError(f"track name {name!r} (as {safe!r}) is used twice; give each track a unique name")
        self.names.add(safe)
        return safe

    def _page(self, stem: str | None) -> str | None:
        if stem is None:
            return None
        source = hub_static_dir() / f"{safe_name(stem)}.html"
        if not source.is_file():
            raise HubError(f"{source}: description page not found; add it to hub/ or set html=None")
        target = self.gdir / "html" / source.name
        if not target.exists():  # pages are shared by tracks (a container and its children)
            shutil.copyfile(source, target)  # a copy: never hard-link the repository's own files
        return f"html/{source.name}"

    def _common(self, obj: HubTrack | HubContainer, indent: str, top: bool) -> str:
        text = _line("shortLabel", obj.short_label, indent) + _line("longLabel", obj.long_label, indent)
        page = self._page(obj.html)
        if page:
            text += _line("html", page, indent)
        if top:
            text += _line("visibility", obj.visibility, indent)
            if self.mode == "assembly":
                text += _line("group", safe_name(obj.group), indent)
                if safe_name(obj.group) not in self.groups:
                    self.groups.append(safe_name(obj.group))
        for key, value in obj.settings.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key):
                raise HubError(f"track {obj.name!r}: setting name {key!r} is not a trackDb setting name")
            text += _line(key, value, indent)
        return text

    def track(self, track: HubTrack, indent: str = "", parent: str | None = None, priority: int = 0) -> str:
        name = self._claim(track.name)
        kind = _file_kind(Path(track.source))
        if parent and kind != "bigWig":
            raise HubError(f"track {track.name!r}: a multiWig child must be a bigWig, {track.source} is a {kind}")
        target = self.gdir / (name + (".bw" if kind == "bigWig" else ".bb"))
        link_or_copy(track.source, target)
        if kind == "bigBed":
            field_count, defined = bigbed_field_counts(target)
            kind_line = f"bigBed {defined}" + (" +" if field_count > defined else "")
        else:
            kind_line = "bigWig"
        text = _line("track", name, indent)
        if parent:
            text += _line("parent", parent, indent)
        text += _line("type", kind_line, indent) + _line("bigDataUrl", target.name, indent)
        text += _line("color", ",".join(str(int(c)) for c in track.color), indent)
        if track.negate:
            text += _line("negateValues", "on", indent)
        if kind == "bigBed" and "searchIndex" not in track.settings:
            searchable = searchable_fields(target)  # UCSC's position box finds items by these fields
            if searchable:
                text += _line("searchIndex", ",".join(searchable), indent)
                words = trix_paths(track.source)
                if "searchTrix" not in track.settings and all(p.is_file() for p in words):  # ... in any case
                    for source, suffix in zip(words, (".ix", ".ixx")):
                        link_or_copy(source, self.gdir / (name + suffix))
                    text += _line("searchTrix", name + ".ix", indent)
        if not parent:
            text += _line("priority", priority, indent)
        return text + self._common(track, indent, top=parent is None) + "\n"

    def container(self, box: HubContainer, priority: int) -> str:
        if not box.children:
            raise HubError(f"multiWig container {box.name!r} has no children")
        name = self._claim(box.name)
        text = _line("track", name, "") + _line("container", "multiWig", "") + _line("type", "bigWig", "")
        defaults = {
            "aggregate": "transparentOverlay",
            "showSubtrackColorOnUi": "on",
            "autoScale": "on",
            "alwaysZero": "on",
            "maxHeightPixels": "100:60:8",
        }
        for key, value in defaults.items():
            if key not in box.settings:
                text += _line(key, value, "")
        text += _line("priority", priority, "") + self._common(box, "", top=True) + "\n"
        return text + "".join(self.track(child, "    ", parent=name) for child in box.children)


@dataclass
class HubGenome:
    """One genome of a hub with its tracks. genome_mode "genark": on UCSC's `genark_accession` (contig
    names and sizes must match it where known); "assembly": our own .2bit from `fasta`, named
    `genome_name` (default: the FASTA's stem)."""

    genome_mode: str
    chrom_sizes: Mapping[str, int]
    tracks: Sequence[HubTrack | HubContainer]
    fasta: str | Path | None = None
    genome_name: str | None = None
    organism: str = "Escherichia coli"
    description: str = "Genome assembly"
    default_pos: str | None = None
    genark_accession: str = "GCF_000005845.2"

    def hub_name(self) -> str:
        """The genome's name in genomes.txt (and its folder in the hub)."""
        if self.genome_mode == "genark":
            if not re.fullmatch(r"GC[AF]_\d{9}\.\d+", self.genark_accession):
                raise HubError(f"{self.genark_accession!r} is not a GenArk accession such as GCF_000005845.2")
            known = GENARK_SIZES.get(self.genark_accession)
            if known is not None and dict(self.chrom_sizes) != known:
                raise HubError(
                    f"contigs {dict(self.chrom_sizes)} differ from GenArk {self.genark_accession} "
                    f"{known}; rename the FASTA records to match or use genome_mode='assembly'"
                )
            return self.genark_accession
        if self.genome_mode != "assembly":
            raise HubError(f"genome_mode {self.genome_mode!r}: use 'genark' or 'assembly'")
        if self.fasta is None:
            raise HubError("genome_mode 'assembly' needs the genome FASTA (fasta=...)")
        return safe_name(self.genome_name or Path(self.fasta).name.split(".")[0], prefix="g")


def write_hub(
    hub_dir: str | Path,
    genome_mode: str,
    chrom_sizes: Mapping[str, int],
    tracks: Sequence[HubTrack | HubContainer],
    fasta: str | Path | None = None,
    hub_name: str = "genometracks",
    short_label: str = "genometracks TSS",
    long_label: str = "Predicted transcription start sites (genometracks)",
    email: str = "genometracks@example.org",
    organism: str = "Escherichia coli",
    default_pos: str | None = None,
    genome_name: str | None = None,
    description: str = "Genome assembly",
    genark_accession: str = "GCF_000005845.2",
    overview_html: str | None = None,
) -> Path:
    """Write a complete one-genome hub at `hub_dir` atomically and return the path of its hub.txt.

    genome_mode "genark": tracks on UCSC's `genark_accession` (contig names and sizes must match it);
    "assembly": needs `fasta`; writes `<genome>.2bit`, chrom.sizes, chromAlias.txt (RefSeq, INSDC,
    chr-style and the FASTA's original names) and groups.txt.
    `overview_html` (an HTML fragment) is the hub's description page (`descriptionUrl`,
    description.html beside hub.txt); by default a page listing the tracks.
    Raises HubError (the previous hub is kept) if the finished hub fails `validate_hub`."""
    if default_pos and genome_mode != "assembly":  # not dropped in silence
        raise HubError(
            f"default_pos={default_pos!r} with genome_mode {genome_mode!r}: UCSC reads defaultPos only from an assembly hub's "
            "stanza; leave it out (a GenArk hub opens at the assembly's own position; add &position= to the hgTracks address)"
        )
    genome = HubGenome(genome_mode, chrom_sizes, tracks, fasta, genome_name, organism, description, default_pos, genark_accession)
    return write_hub_genomes(
        hub_dir, [genome], hub_name=hub_name, short_label=short_label, long_label=long_label, email=email, overview_html=overview_html
    )


def write_hub_genomes(
    hub_dir: str | Path,
    genomes: Sequence[HubGenome],
    hub_name: str = "genometracks",
    short_label: str = "genometracks TSS",
    long_label: str = "Predicted transcription start sites (genometracks)",
    email: str = "genometracks@example.org",
    overview_html: str | None = None,
) -> Path:
    """Write a hub of one or more genomes at `hub_dir` atomically (genomes.txt holds one stanza per
    genome, in the given order; each genome has its own trackDb.txt) and return its hub.txt path.
    Raises HubError (the previous hub is kept) if the finished hub fails `validate_hub`."""
    if not genomes:
        raise HubError(f"{hub_dir}: a hub needs at least one genome")
    names = [g.hub_name() for g in genomes]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise HubError(
            f"{hub_dir}: genome {twice[0]!r} would appear twice in genomes.txt; give each genome its own name (or GenArk accession)"
        )
    hub_dir = Path(hub_dir)
    with staged_dir(hub_dir) as stage:
        stanzas = []
        for order, (entry, genome) in enumerate(zip(genomes, names), 1):
            writer = _Writer(stage, genome, entry.genome_mode)
            body = "".join(
                writer.container(t, 10 * (i + 1)) if isinstance(t, HubContainer) else writer.track(t, priority=10 * (i + 1))
                for i, t in enumerate(entry.tracks)
            )
            (writer.gdir / "trackDb.txt").write_text(body)
            stanza: dict[str, object] = {"genome": genome, "trackDb": f"{genome}/trackDb.txt"}
            if entry.genome_mode == "assembly":
                first, size = next(iter(entry.chrom_sizes.items()))
                default_pos = entry.default_pos or f"{first}:1-{min(size, 20000)}"
                stanza.update(
                    _assembly_files(writer, Path(str(entry.fasta)), entry.chrom_sizes, entry.organism, entry.description, default_pos)
                )
                stanza["orderKey"] = order
            stanzas.append("".join(_line(k, v, "") for k, v in stanza.items()))
        (stage / "description.html").write_text(_overview_page(long_label, overview_html, genomes[0].tracks))
        hub = {
            "hub": safe_name(hub_name),
            "shortLabel": short_label,
            "longLabel": long_label,
            "genomesFile": "genomes.txt",
            "email": email,
            "descriptionUrl": "description.html",
        }
        (stage / "hub.txt").write_text("".join(_line(k, v, "") for k, v in hub.items()))
        (stage / "genomes.txt").write_text("\n".join(stanzas))
        problems = validate_hub(stage)
        if problems:
            raise HubError(f"{hub_dir}: the hub would not be valid (previous hub kept):\n  " + "\n  ".join(problems))
    return hub_dir / "hub.txt"


def _overview_page(title: str, fragment: str | None, tracks: Sequence[HubTrack | HubContainer]) -> str:
    """The hub's description page (hub.txt `descriptionUrl`): `fragment`, else the track list."""
    if fragment is None:
        items = "".join(f"<li><b>{html_escape.escape(t.short_label)}</b>: {html_escape.escape(t.long_label)}</li>\n" for t in tracks)
        fragment = f"<p>Tracks of this hub:</p>\n<ul>\n{items}</ul>\n"
    return (
        f'<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{html_escape.escape(title)}'
        f"</title></head>\n<body>\n<h2>{html_escape.escape(title)}</h2>\n{fragment}</body>\n</html>\n"
    )


def _assembly_files(
    writer: _Writer, fasta: Path, chrom_sizes: Mapping[str, int], organism: str, description: str, default_pos: str
) -> dict[str, str]:
    """Write <genome>.2bit, chrom.sizes, chromAlias.txt, groups.txt and description.html; return the
    genomes.txt fields."""

    genome, gdir = writer.genome, writer.gdir
    write_twobit(gdir / f"{genome}.2bit", fasta)
    (gdir / "chrom.sizes").write_text("".join(f"{c}\t{n}\n" for c, n in chrom_sizes.items()))
    write_chrom_alias(gdir / "chromAlias.txt", chrom_sizes, fasta_original_names(fasta))
    groups = writer.groups or ["tss"]
    (gdir / "groups.txt").write_text(
        "\n".join(
            _line("name", g, "")
            + _line("label", GROUP_LABELS.get(g, g), "")
            + _line("priority", i + 1, "")
            + _line("defaultIsClosed", 0, "")
            for i, g in enumerate(groups)
        )
    )
    page = (
        f"<h2>{html_escape.escape(organism)}</h2>\n<p>{html_escape.escape(description)}</p>\n"
        f"<p>Sequences: {html_escape.escape(', '.join(f'{c} ({n:,} nt)' for c, n in chrom_sizes.items()))}</p>\n"
    )
    (gdir / "description.html").write_text(page)
    return {
        "twoBitPath": f"{genome}/{genome}.2bit",
        "chromSizes": f"{genome}/chrom.sizes",
        "chromAlias": f"{genome}/chromAlias.txt",
        "groups": f"{genome}/groups.txt",
        "organism": organism,
        "description": description,
        "scientificName": organism,
        "defaultPos": default_pos,
        "orderKey": 1,
        "htmlPath": f"{genome}/description.html",
    }
