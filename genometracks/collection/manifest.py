"""A collection's genomes: a manifest TSV, or the FASTAs of `-m data.fasta=a.fa,b.fa`.

Manifest columns, tab-separated, one genome per line (a header line starting with `name` and lines
starting with `#` are skipped; empty optional columns may be left out):

    name    FASTA    [GenArk accession]    [TSS BED]    [genes GFF3]

The genes GFF3 (`data.annotation`) places the genome's TSS calls among its genes (`tracks/tss_context.tsv`,
the GFF3 of the calls); any column may be left empty to skip it.

`name` becomes the genome's folder under the collection directory and its genome name in the hub, so
it holds letters, digits and `_` and starts with a letter. Relative paths are read against the
manifest's folder. A FASTA that does not exist is not a manifest error: that genome's job fails and
the others run (the summary lists it). Every other problem of a row is one error line naming the
file, the line (1-based) and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from genometracks.io.atomic import write_text_atomic
from genometracks.io.paths import safe_name

COLUMNS = ("name", "fasta", "accession", "tss", "annotation")
ACCESSION = re.compile(r"GC[AF]_\d{9}\.\d+")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# folders of the collection directory itself: no genome may take their names
RESERVED = {"hub", "manifest", "summary", "index"}


class ManifestError(ValueError):
    """A manifest row (or FASTA list) that cannot describe a genome; the message names file, line and fix."""


@dataclass(frozen=True)
class Genome:
    """One genome of a collection: absolute FASTA path, optional GenArk accession, TSS file and genes GFF3."""

    name: str
    fasta: Path
    accession: str | None = None
    tss: Path | None = None
    annotation: Path | None = None


def _path(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).absolute()


def _check_name(name: str, where: str, seen: dict[str, str], from_files: bool = False) -> None:
    """Refuse a name that cannot be a folder and hub genome, a reserved one, or one used twice (`from_files`:
    the names come from FASTA file names, so the fix is to rename a file or write a manifest)."""
    if not NAME.fullmatch(name):
        raise ManifestError(
            f"{where}: genome name {name!r} must be letters, digits and _ starting with a letter "
            f"(it becomes a folder and a hub genome name); e.g. {safe_name(name, prefix='g')}"
        )
    if name.lower() in RESERVED:
        raise ManifestError(f"{where}: genome name {name!r} is reserved for the collection's own files; rename it, e.g. {name}_1")
    if name.lower() in seen:
        fix = (
            "rename one of the files, or list the genomes in manifest=FILE.tsv with names of your own"
            if from_files
            else "give every genome its own name"
        )
        raise ManifestError(f"{where}: genome name {name!r} is used again (first at {seen[name.lower()]}); {fix}")
    seen[name.lower()] = where


def read_manifest(path: str | Path) -> list[Genome]:
    """The genomes of a manifest TSV, in file order (see the module doc; ManifestError on a bad row)."""
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise ManifestError(
            f"{path}: manifest not found; pass manifest=PATH.tsv (columns: name, FASTA, optional GenArk accession, optional TSS BED, "
            "optional genes GFF3)"
        )
    genomes: list[Genome] = []
    seen: dict[str, str] = {}
    accessions: dict[str, str] = {}
    text = path.read_bytes().decode("utf-8-sig", errors="replace")  # a spreadsheet's "UTF-8" export starts with a BOM
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        where = f"{path} line {number}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        if not seen and [c.lower() for c in cells[:2]] == ["name", "fasta"]:
            continue  # the header line (a genome named 'name' is refused as reserved below)
        while cells and not cells[-1]:
            cells.pop()
        if len(cells) < 2 or len(cells) > len(COLUMNS):
            hint = " (columns are separated by tabs, not spaces)" if len(cells) == 1 and " " in line.strip() else ""
            raise ManifestError(
                f"{where}: {len(cells)} column(s); expected 2 to 5 tab-separated columns: name, "
                f"FASTA, optional GenArk accession, optional TSS BED, optional genes GFF3{hint}"
            )
        name, fasta = cells[0], cells[1]
        _check_name(name, where, seen)
        if not fasta:
            raise ManifestError(f"{where}: genome {name!r} has no FASTA path in column 2; add the path")
        accession = cells[2] if len(cells) > 2 and cells[2] else None
        if accession is not None:
            if not ACCESSION.fullmatch(accession):
                raise ManifestError(
                    f"{where}: {accession!r} is not a GenArk accession (GCF_000005845.2 or "
                    "GCA_...); fix column 3 or leave it empty for an assembly hub of the FASTA"
                )
            if accession in accessions:
                raise ManifestError(
                    f"{where}: accession {accession} is already genome {accessions[accession]!r}; "
                    "one hub genome per accession: leave column 3 empty for one of them"
                )
            accessions[accession] = name
        tss = _path(cells[3], path.parent) if len(cells) > 3 and cells[3] else None
        annotation = _path(cells[4], path.parent) if len(cells) > 4 and cells[4] else None
        genomes.append(Genome(name, _path(fasta, path.parent), accession, tss, annotation))
    if not genomes:
        raise ManifestError(f"{path}: no genomes; write one line per genome: name<TAB>FASTA[<TAB>accession<TAB>TSS BED<TAB>genes GFF3]")
    return genomes


def from_fastas(fastas: list[str], base: Path) -> list[Genome]:
    """Genomes of `-m data.fasta=a.fa,b.fa`, each named after its file (a.fa → a, isolate-2.fa.gz → isolate_2)."""
    genomes: list[Genome] = []
    seen: dict[str, str] = {}
    for fasta in fastas:
        path = _path(fasta, base)
        stem = path.name
        for suffix in (".gz", ".bgz", ".fasta", ".fa", ".fna", ".fas"):
            stem = stem[: -len(suffix)] if stem.lower().endswith(suffix) and len(stem) > len(suffix) else stem
        name = safe_name(stem, prefix="g")
        if name.lower() in RESERVED:
            name = f"{name}_1"
        _check_name(name, f"data.fasta={fasta}", seen, from_files=True)
        genomes.append(Genome(name, path))
    return genomes


SOURCE_LINE = "# genomes from: "


def write_manifest(path: Path, genomes: list[Genome], source: str = "") -> Path:
    """The collection's own copy (absolute paths), which its jobs and `genometracks collect` read; its
    first line names where the genomes came from (the user's manifest or data.fasta=...), for messages."""
    rows = [SOURCE_LINE + source] if source else []
    rows += ["\t".join(COLUMNS)]
    rows += ["\t".join([g.name, str(g.fasta), g.accession or "", str(g.tss or ""), str(g.annotation or "")]) for g in genomes]
    return write_text_atomic(path, "\n".join(rows) + "\n")


def manifest_source(manifest: str | Path) -> str:
    """Where a collection's genomes came from, as its own manifest copy records it (else that copy):
    the file a user corrects."""
    try:
        with open(manifest, encoding="utf-8") as handle:
            first = handle.readline().rstrip("\n")
    except OSError:
        return str(manifest)
    return first[len(SOURCE_LINE) :] if first.startswith(SOURCE_LINE) else str(manifest)


def genome_of(manifest: str | Path, name: str) -> Genome:
    """The row `name` of a collection's manifest."""
    for genome in read_manifest(manifest):
        if genome.name == name:
            return genome
    raise ManifestError(f"{manifest}: no genome named {name!r}; run the collection command again")
