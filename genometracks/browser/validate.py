"""A hubCheck-like validator for UCSC track hubs (hubCheck itself is not installable here).

Checks: `hub` first line and required fields of hub.txt, genomes.txt and every trackDb stanza;
every referenced file (genomesFile, trackDb, twoBitPath, chromSizes, groups, htmlPath, html,
bigDataUrl) present and readable; bigWig/bigBed contig names and sizes equal to the genome's;
`type bigBed N [+]` matching the bigBed's field counts and autoSql; `searchIndex` fields indexed in the
bigBed; parent/child consistency;
track names unique and free of dots.

Rules UCSC's own `hubCheck -checkSettings` taught us (tests/test_kent.py runs both on every hub):
hub.txt needs a `descriptionUrl` page that exists; every track an `html` description page (its
own or its parent's); every trackDb setting must be one UCSC's hub
settings spec knows (`graphType` is not; `graphTypeDefault` is). Rules hubCheck lacks, kept here:
searchIndex fields the bigBed has no index on, dots in track names, data contigs absent from the .2bit, setting values (windowingFunction,
graphTypeDefault, visibility), and the chromAlias file (names its contigs; each alias names one).
`validate_hub` returns the problems (empty list = valid).
"""

from __future__ import annotations

import argparse
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from genometracks.browser.genark import GENARK_SIZES
from genometracks.browser.trackdb_settings import known_setting, suggestion
from genometracks.formats.bigbed import bigbed_field_counts
from genometracks.formats.bigbed_index import BigBedIndexError, autosql_field_names, extra_index_fields
from genometracks.formats.twobit import TwoBitError, read_twobit_sizes

_HUB_FIELDS = ("hub", "shortLabel", "longLabel", "genomesFile", "email")
# UCSC's trackDb library: shortLabel "limited to 17 printable characters", longLabel "limited to 76"
_LABEL_LIMITS = {"shortLabel": 17, "longLabel": 76}
_GENOME_FIELDS = ("genome", "trackDb")
_ASSEMBLY_FIELDS = ("twoBitPath", "organism", "defaultPos", "description")
_MAGIC = {"bigWig": 0x888FFC26, "bigBed": 0x8789F2EB}
_ALSO_KNOWN = {"group"}  # settings hubCheck accepts in assembly hubs beyond the spec table
_VALUES = {
    "windowingFunction": {"mean", "mean+whiskers", "maximum", "minimum"},
    "graphTypeDefault": {"bar", "points"},
    "visibility": {"hide", "dense", "squish", "pack", "full"},
}


@dataclass
class Stanza:
    """One block of `key value` lines; `line` is the 1-based line of its first key."""

    file: str
    line: int
    fields: dict[str, str]

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def read_ra(path: Path, label: str) -> list[Stanza]:
    """Parse a .ra-style file (hub.txt, genomes.txt, trackDb.txt) into stanzas split by blank lines."""
    stanzas: list[Stanza] = []
    current: Stanza | None = None
    pending = ""
    for number, raw in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        text = pending + raw.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        if not text or text.startswith("#"):
            if not text:
                current = None
            continue
        key, *rest = text.split(None, 1)  # UCSC splits a setting from its value at any white space
        value = rest[0] if rest else ""
        if current is None:
            current = Stanza(label, number, {})
            stanzas.append(current)
        current.fields[key] = value.strip()
    return stanzas


def _local(base: Path, ref: str) -> Path | None:
    """A reference resolved against `base` (a folder); None for a remote URL we cannot check offline."""
    if re.match(r"^[a-z]+://", ref):
        return None
    return base / ref


def _data_chroms(path: Path) -> dict[str, int]:
    import pyBigWig

    handle = pyBigWig.open(str(path))
    if handle is None:
        raise OSError("pyBigWig cannot open it")
    try:
        return dict(handle.chroms())
    finally:
        handle.close()


def _autosql_count(path: Path) -> int | None:
    import pyBigWig

    handle = pyBigWig.open(str(path))
    try:
        sql = handle.SQL()
    finally:
        handle.close()
    if not sql:
        return None
    text = sql.decode(errors="replace") if isinstance(sql, bytes) else sql
    return len(autosql_field_names(text))


class _Checker:
    def __init__(self, hub_dir: Path) -> None:
        self.root = hub_dir
        self.problems: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def file(self, where: str, base: Path, ref: str, what: str) -> Path | None:
        """Resolve a reference; report it if the file is missing or unreadable."""
        path = _local(base, ref)
        if path is None:
            return None
        if not path.is_file():
            self.add(where, f"{what} '{ref}' not found ({path})")
            return None
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as err:
            self.add(where, f"{what} '{ref}' cannot be read ({err})")
            return None
        return path

    def hub(self) -> None:
        hub_txt = self.root / "hub.txt"
        if not hub_txt.is_file():
            self.add("hub.txt", f"not found in {self.root}")
            return
        lines = [ln.strip() for ln in hub_txt.read_text(errors="replace").splitlines()]
        content = [ln for ln in lines if ln and not ln.startswith("#")]
        if not content or content[0].split()[0] != "hub" or len(content[0].split()) < 2:
            self.add("hub.txt:1", "the first line must be 'hub <name>'")
        stanzas = read_ra(hub_txt, "hub.txt")
        fields = stanzas[0].fields if stanzas else {}
        for key in _HUB_FIELDS:
            if not fields.get(key):
                self.add("hub.txt", f"required field '{key}' missing")
        if fields.get("useOneFile") == "on":
            self.add("hub.txt", "useOneFile hubs are not supported by this checker; use genomes.txt")
            return
        if not fields.get("descriptionUrl"):
            self.add("hub.txt", "missing hub overview description page (descriptionUrl setting)")
        else:
            self.file("hub.txt", self.root, fields["descriptionUrl"], "descriptionUrl page")
        genomes = self.file("hub.txt", self.root, fields["genomesFile"], "genomesFile") if fields.get("genomesFile") else None
        if genomes is not None:
            self.genomes(genomes)

    def genomes(self, genomes_txt: Path) -> None:
        label = str(genomes_txt.relative_to(self.root))
        seen: set[str] = set()
        for stanza in read_ra(genomes_txt, label):
            f, where = stanza.fields, stanza.where()
            for key in _GENOME_FIELDS:
                if not f.get(key):
                    self.add(where, f"genome stanza lacks required field '{key}'")
            name = f.get("genome", "?")
            if name in seen:
                self.add(where, f"genome '{name}' defined twice")
            seen.add(name)
            sizes, groups = self.assembly(stanza, genomes_txt.parent) if "twoBitPath" in f else (GENARK_SIZES.get(name), None)
            if f.get("trackDb"):
                trackdb = self.file(where, genomes_txt.parent, f["trackDb"], "trackDb")
                if trackdb is not None:
                    self.tracks(trackdb, sizes, groups)

    def assembly(self, stanza: Stanza, base: Path) -> tuple[dict[str, int] | None, set[str] | None]:
        f, where = stanza.fields, stanza.where()
        for key in _ASSEMBLY_FIELDS:
            if not f.get(key):
                self.add(where, f"assembly hub genome lacks required field '{key}'")
        sizes = None
        twobit = self.file(where, base, f["twoBitPath"], "twoBitPath")
        if twobit is not None:
            try:
                sizes = read_twobit_sizes(twobit)
            except TwoBitError as err:
                self.add(where, f"twoBitPath '{f['twoBitPath']}' is not a valid .2bit ({err})")
        if f.get("chromSizes"):
            path = self.file(where, base, f["chromSizes"], "chromSizes")
            if path is not None and sizes is not None:
                listed = {p[0]: int(p[1]) for p in (ln.split() for ln in path.read_text().splitlines()) if len(p) >= 2}
                if listed != sizes:
                    self.add(where, f"chromSizes {listed} differ from the .2bit {sizes}")
        if f.get("htmlPath"):
            self.file(where, base, f["htmlPath"], "htmlPath")
        if f.get("chromAlias"):
            path = self.file(where, base, f["chromAlias"], "chromAlias")
            if path is not None and sizes is not None:
                self.chrom_alias(where, path, sizes)
        match = re.fullmatch(r"(\S+):(\d+)-(\d+)", f.get("defaultPos", ""))
        if f.get("defaultPos") and sizes is not None:
            if not match or match.group(1) not in sizes or not (1 <= int(match.group(2)) <= int(match.group(3)) <= sizes[match.group(1)]):
                self.add(where, f"defaultPos '{f['defaultPos']}' is not chrom:start-end within the genome")
        groups = None
        if f.get("groups"):
            path = self.file(where, base, f["groups"], "groups")
            if path is not None:
                groups = {s.fields.get("name", "") for s in read_ra(path, f["groups"])}
        return sizes, groups

    def chrom_alias(self, where: str, path: Path, sizes: dict[str, int]) -> None:
        """UCSC chromAlias text: `# sequenceName columns...` header, then our name and its aliases."""
        owner: dict[str, str] = {}
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            name, *aliases = line.split("\t")
            if name not in sizes:
                self.add(where, f"chromAlias line {number}: '{name}' is not a sequence of the genome")
            for alias in filter(None, (a.strip() for a in aliases)):
                if alias in sizes and alias != name:
                    self.add(where, f"chromAlias line {number}: alias '{alias}' is another sequence's name")
                elif owner.setdefault(alias, name) != name:
                    self.add(where, f"chromAlias line {number}: alias '{alias}' names both '{owner[alias]}' and '{name}'")

    def tracks(self, trackdb: Path, sizes: dict[str, int] | None, groups: set[str] | None) -> None:
        label = str(trackdb.relative_to(self.root))
        stanzas = read_ra(trackdb, label)
        by_name: dict[str, Stanza] = {}
        for stanza in stanzas:
            first = next(iter(stanza.fields))
            if first != "track":
                self.add(stanza.where(), f"stanza starts with '{first}', not 'track'")
                continue
            name = stanza.fields["track"]
            if name in by_name:
                self.add(stanza.where(), f"duplicate track name '{name}' (first at line {by_name[name].line})")
            by_name.setdefault(name, stanza)
        children: dict[str, list[str]] = {}
        for stanza in stanzas:
            if "track" in stanza.fields:
                self.track(stanza, trackdb.parent, by_name, sizes, groups, children)
        for name, stanza in by_name.items():
            if _is_container(stanza.fields) and not children.get(name):
                self.add(stanza.where(), f"track '{name}': container has no child tracks")

    def track(
        self,
        stanza: Stanza,
        base: Path,
        by_name: dict[str, Stanza],
        sizes: dict[str, int] | None,
        groups: set[str] | None,
        children: dict[str, list[str]],
    ) -> None:
        f, name = stanza.fields, stanza.fields["track"]
        where = f"{stanza.where()}: track '{name}'"
        if "." in name:
            self.add(where, "track name contains '.'; use letters, digits and '_'")
        elif not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            self.add(where, "track name must start with a letter and hold only letters, digits and '_'")
        for key, value in f.items():
            if not (known_setting(key) or key in _ALSO_KNOWN):
                hint = suggestion(key)
                self.add(where, f"Setting '{key}' is unknown/unsupported" + (f" (did you mean '{hint}' ?)" if hint else ""))
            elif key in _VALUES and value.split()[0:1] and value.split()[0] not in _VALUES[key]:
                self.add(where, f"{key} '{value}' is not one of {sorted(_VALUES[key])}")
        needed = ["shortLabel", "longLabel"] + ([] if f.get("superTrack", "").startswith("on") else ["type"])
        for key in needed:
            if not f.get(key):
                self.add(where, f"required field '{key}' missing")
        for key, most in _LABEL_LIMITS.items():
            if len(f.get(key, "")) > most:
                self.add(where, f"{key} is {len(f[key])} characters; UCSC shows at most {most}: shorten it")
        kind = f.get("type", "").split()[0] if f.get("type") else ""
        if "parent" in f:
            parent = f["parent"].split()[0]
            children.setdefault(parent, []).append(name)
            if parent not in by_name:
                self.add(where, f"parent '{parent}' is not defined in this trackDb")
            elif not _is_container(by_name[parent].fields):
                self.add(where, f"parent '{parent}' is not a container (multiWig, composite or superTrack)")
            elif by_name[parent].fields.get("container") == "multiWig" and kind != "bigWig":
                self.add(where, f"child of multiWig '{parent}' must be type bigWig, not '{kind}'")
        if groups is not None and f.get("group") and f["group"] not in groups:
            self.add(where, f"group '{f['group']}' is not defined in the groups file")
        if f.get("html"):
            ref = f["html"] if f["html"].endswith(".html") else f["html"] + ".html"
            self.file(where, base, ref, "html page")
        elif not (f.get("parent") and by_name.get(f["parent"].split()[0], stanza).fields.get("html")):
            self.add(where, f"missing description page for track. Add 'html {name}.html' line to the '{name}' track stanza")
        if kind in _MAGIC and not _is_container(f):
            if not f.get("bigDataUrl"):
                self.add(where, f"type {kind} needs a bigDataUrl")
                return
            path = self.file(where, base, f["bigDataUrl"], "bigDataUrl")
            if path is not None:
                self.data(where, path, f["type"], kind, sizes)
                if kind == "bigBed" and f.get("searchIndex"):
                    self.search_index(where, path, f["searchIndex"])
                if f.get("searchTrix"):
                    if not f.get("searchIndex"):
                        self.add(where, "searchTrix needs a searchIndex (the trix ids are looked up in the bigBed's name index)")
                    ix = self.file(where, base, f["searchTrix"], "searchTrix")
                    if ix is not None:
                        self.file(where, base, f["searchTrix"] + "x", "searchTrix index (.ixx)")

    def data(self, where: str, path: Path, type_line: str, kind: str, sizes: dict[str, int] | None) -> None:
        with open(path, "rb") as handle:
            head = handle.read(4).ljust(4, b"\0")
        if _MAGIC[kind] not in (int.from_bytes(head, "little"), int.from_bytes(head, "big")):
            self.add(where, f"bigDataUrl '{path.name}' is not a {kind} file")
            return
        try:
            chroms = _data_chroms(path)
        except (OSError, RuntimeError) as err:
            self.add(where, f"bigDataUrl '{path.name}' cannot be read ({err})")
            return
        for chrom, size in chroms.items() if sizes is not None else ():
            if chrom not in sizes:
                self.add(where, f"'{path.name}' has sequence '{chrom}', which the genome lacks")
            elif sizes[chrom] != size:
                self.add(where, f"'{path.name}' gives '{chrom}' size {size}, the genome {sizes[chrom]}")
        if kind == "bigBed":
            self.bigbed_type(where, path, type_line)

    def search_index(self, where: str, path: Path, value: str) -> None:
        """`searchIndex a,b`: each field must have a name-search index in the bigBed (hubCheck does not
        look; UCSC's position search would find nothing by it)."""
        try:
            indexed = extra_index_fields(path)
        except (BigBedIndexError, ValueError, IndexError, struct.error) as err:
            self.add(where, f"searchIndex: cannot read the indexes of '{path.name}' ({err})")
            return
        for name in value.split(","):
            if name not in indexed:
                self.add(
                    where,
                    f"searchIndex names '{name}', which '{path.name}' has no index on (indexed: {','.join(indexed) or 'none'}); "
                    f"write it with `bedToBigBed -extraIndex={name}` or BedSchema(search=...)",
                )

    def bigbed_type(self, where: str, path: Path, type_line: str) -> None:
        """`bigBed N [+|.]`: N = definedFieldCount; '+' exactly when the file has extra fields."""
        parts = type_line.split()
        field_count, defined = bigbed_field_counts(path)
        if len(parts) == 1:  # plain 'bigBed': the browser takes the counts from the file
            return
        if not parts[1].isdigit() or len(parts) > 3 or (len(parts) == 3 and parts[2] not in "+."):
            self.add(where, f"type '{type_line}' is not 'bigBed N' or 'bigBed N +'")
            return
        declared, extras = int(parts[1]), len(parts) == 3
        if declared != defined:
            self.add(
                where,
                f"type '{type_line}' declares {declared} BED fields but '{path.name}' defines "
                f"{defined} (type should be 'bigBed {defined}{' +' if field_count > defined else ''}')",
            )
        elif extras != (field_count > defined):
            self.add(
                where,
                f"type '{type_line}' does not match '{path.name}' with {field_count} fields of "
                f"which {defined} standard (type should be 'bigBed {defined}"
                f"{' +' if field_count > defined else ''}')",
            )
        count = _autosql_count(path)
        if count is not None and count != field_count:
            self.add(where, f"'{path.name}' autoSql declares {count} fields but records have {field_count}")


def _is_container(fields: dict[str, str]) -> bool:
    return "container" in fields or fields.get("compositeTrack", "").startswith("on") or fields.get("superTrack", "").startswith("on")


def validate_hub(hub_dir: str | Path) -> list[str]:
    """Problems found in the hub at `hub_dir` (the folder holding hub.txt); empty when valid."""
    checker = _Checker(Path(hub_dir))
    checker.hub()
    return checker.problems


def main_validate(argv: list[str] | None = None) -> int:
    """`genometracks validate-hub DIR`: print problems; exit code 1 if any, else 0."""
    parser = argparse.ArgumentParser(prog="genometracks validate-hub", description="Check a UCSC track hub the way hubCheck would.")
    parser.add_argument("hub_dir", type=Path, help="folder holding hub.txt (or hub.txt itself, as hubCheck takes it)")
    args = parser.parse_args(argv)
    if args.hub_dir.is_file():  # `validate-hub DIR/hub.txt`, the argument hubCheck takes
        args.hub_dir = args.hub_dir.parent
    if not args.hub_dir.is_dir():
        print(f"genometracks validate-hub: {args.hub_dir}: folder not found; pass the hub folder (DIR/hub) or its hub.txt", file=sys.stderr)
        return 2
    problems = validate_hub(args.hub_dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{args.hub_dir}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.hub_dir}: hub is valid")
    return 0
