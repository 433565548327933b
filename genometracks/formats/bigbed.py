"""Sorted BED6(+extra columns) records → bigBed (pybigtools, explicit autoSql, name-search indexes) and
`.bed.gz` + `.tbi` (pysam).

Records are 0-based half-open, forward-strand coordinates, sorted by chrom (byte order, as
`LC_ALL=C sort -k1,1 -k2,2n`) then start. Used for TSS peaks and attention-head motif hits.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genometracks.formats.bigbed_index import add_extra_indexes
from genometracks.formats.bigwig import ExportError
from genometracks.formats.trix import write_trix
from genometracks.io.atomic import atomic_path

__all__ = [
    "BedSchema",
    "ExportError",
    "remove_bed_outputs",
    "sort_bed_records",
    "write_bed_gz",
    "write_bed_outputs",
    "write_bigbed",
    "bigbed_field_counts",
]

BED6 = (
    ("string", "chrom", "Reference sequence chromosome or scaffold"),
    ("uint", "chromStart", "Start position in chromosome (0-based)"),
    ("uint", "chromEnd", "End position in chromosome (exclusive)"),
    ("string", "name", "Name of item"),
    ("uint", "score", "Score from 0-1000"),
    ("char[1]", "strand", "+ or - for strand, . for none"),
)
BED9_MORE = (
    ("uint", "thickStart", "Start of where display should be thick"),
    ("uint", "thickEnd", "End of where display should be thick"),
    ("uint", "itemRgb", "Item colour as R,G,B"),
)
_COLUMNS = ("chrom", "start", "end", "name", "score", "strand")
_BED9_COLUMNS = ("thickStart", "thickEnd", "itemRgb")
_TYPES = {"int", "uint", "float", "double", "string", "lstring", "char[1]"}
_BIGBED_MAGIC = 0x8789F2EB


@dataclass(frozen=True)
class BedSchema:
    """autoSql table of a BED N+M file: N = `standard` (6 or 9) standard BED columns plus the
    `extra` (type, name, description) columns.

    Record columns are chrom, start, end, name, score, strand (BED9: then thickStart, thickEnd,
    itemRgb as 'R,G,B'), then the extra names in order. Coordinates are 0-based, half-open.
    `search`: the string columns the bigBed gets a name-search index on (`bedToBigBed -extraIndex`;
    the hub then sets trackDb `searchIndex`)."""

    name: str
    description: str
    extra: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)
    standard: int = 6
    search: tuple[str, ...] = ("name",)

    def __post_init__(self) -> None:
        if self.standard not in (6, 9):
            raise ExportError(f"BED schema {self.name!r}: standard columns must be 6 or 9, got {self.standard}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise ExportError(f"autoSql table name {self.name!r} must be letters, digits and '_'")
        for kind, column, _ in self.extra:
            if kind not in _TYPES:
                raise ExportError(f"autoSql column {column!r}: type {kind!r} not one of {sorted(_TYPES)}")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", column) or column in _COLUMNS + _BED9_COLUMNS:
                raise ExportError(f"autoSql column name {column!r} must be an identifier not in {_COLUMNS + _BED9_COLUMNS}")
        strings = ["name"] + [column for kind, column, _ in self.extra if kind in {"string", "lstring"}]
        for column in self.search:
            if column not in strings:
                raise ExportError(f"BED schema {self.name!r}: cannot index {column!r} for search; index string columns {strings}")

    @property
    def fields(self) -> tuple[tuple[str, str, str], ...]:
        return BED6 + (BED9_MORE if self.standard == 9 else ()) + tuple(self.extra)

    @property
    def columns(self) -> tuple[str, ...]:
        """Record column names, in file order."""
        return _COLUMNS + (_BED9_COLUMNS if self.standard == 9 else ()) + tuple(name for _, name, _ in self.extra)

    @property
    def hub_type(self) -> str:
        """trackDb `type` for a bigBed with this schema, e.g. 'bigBed 6 +' or 'bigBed 9 +'."""
        return f"bigBed {self.standard} +" if self.extra else f"bigBed {self.standard}"

    def autosql(self) -> str:
        """The autoSql text embedded in the bigBed."""
        # pybigtools 0.3 silently falls back to BED3 when the table name holds '_': use camelCase
        table = re.sub(r"_+([A-Za-z0-9])", lambda m: m.group(1).upper(), self.name)
        lines = [f"table {table}", f'"{_quote(self.description)}"', "("]
        lines += [f'{kind} {name}; "{_quote(text)}"' for kind, name, text in self.fields]
        return "\n".join(lines + [")"]) + "\n"


def _quote(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")


def sort_bed_records(records: Any) -> pd.DataFrame:
    """Records as a DataFrame sorted the way `write_bed_outputs` requires (chrom byte order, start, end)."""
    frame = _as_frame(records)
    keys = _byte_keys(frame["chrom"])
    order = np.lexsort((frame["end"].to_numpy(), frame["start"].to_numpy(), keys))
    return frame.iloc[order].reset_index(drop=True)


def _byte_keys(chrom: pd.Series) -> np.ndarray:
    """Contig names as bytes [n] (numpy 'S'), which compare in byte order like `LC_ALL=C sort`."""
    return np.array([str(c).encode() for c in chrom], dtype="S")


def _as_frame(records: Any) -> pd.DataFrame:
    frame = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame.from_records(records)
    return frame.rename(columns={"chromStart": "start", "chromEnd": "end"}).reset_index(drop=True)


def _record(frame: pd.DataFrame, i: int) -> str:
    row = frame.iloc[i]
    return f"record {i} ({row['chrom']}:{row['start']}-{row['end']} {row['name']!r})"


def _integers(frame: pd.DataFrame, columns: tuple[str, ...], out: Path) -> None:
    """Make `columns` int64 in place; raise naming the first record whose value is not an integer."""
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if bad.size:
            raise ExportError(f"{out}: {_record(frame, bad[0])}: {column} {frame[column].iloc[bad[0]]!r} is not an integer")
        frame[column] = values.astype(np.int64)


def _validate(frame: pd.DataFrame, out: Path, schema: BedSchema, chrom_sizes: Mapping[str, int]) -> pd.DataFrame:
    """Check columns, coordinates, names, scores, strands and sort order; return a clean copy."""
    missing = [c for c in schema.columns if c not in frame.columns]
    if missing:
        raise ExportError(f"{out}: records lack column(s) {missing}; expected {list(schema.columns)}")
    frame = frame[list(schema.columns)].copy()
    if frame.empty:
        raise ExportError(f"{out}: no records; a bigBed needs at least one (leave this track out instead)")
    frame["chrom"] = frame["chrom"].astype(str)
    unknown = np.flatnonzero(~frame["chrom"].isin(list(chrom_sizes)).to_numpy())
    if unknown.size:
        raise ExportError(
            f"{out}: {_record(frame, unknown[0])}: contig not in the genome {list(chrom_sizes)[:5]}; use the genome's contig names"
        )
    _integers(frame, ("start", "end", "score"), out)
    sizes = frame["chrom"].map(chrom_sizes).to_numpy()
    start, end = frame["start"].to_numpy(), frame["end"].to_numpy()
    bad = np.flatnonzero((start < 0) | (end <= start) | (end > sizes))
    if bad.size:
        i = bad[0]
        raise ExportError(f"{out}: {_record(frame, i)}: need 0 <= start < end <= contig length {sizes[i]} (0-based, half-open)")
    bad = np.flatnonzero((frame["score"] < 0) | (frame["score"] > 1000))
    if bad.size:
        raise ExportError(
            f"{out}: {_record(frame, bad[0])}: score {frame['score'].iloc[bad[0]]} outside 0..1000; scale scores to integers in 0..1000"
        )
    names = frame["name"].astype(str)
    bad = np.flatnonzero(~names.str.fullmatch(r"\S+").to_numpy())
    if bad.size:
        raise ExportError(
            f"{out}: {_record(frame, bad[0])}: name must be non-empty without whitespace (use '.' for no name, '_' for spaces)"
        )
    bad = np.flatnonzero((names.str.encode("utf-8").str.len() > 255).to_numpy())
    if bad.size:  # kent's bedToBigBed refuses them too
        raise ExportError(f"{out}: {_record(frame, bad[0])}: name is longer than 255 bytes; shorten it (UCSC's limit)")
    bad = np.flatnonzero(~frame["strand"].isin(["+", "-", "."]).to_numpy())
    if bad.size:
        raise ExportError(f"{out}: {_record(frame, bad[0])}: strand {frame['strand'].iloc[bad[0]]!r}; use '+', '-' or '.'")
    if schema.standard == 9:
        _validate_bed9(frame, out)
    _validate_extra(frame, out, schema)
    _validate_order(frame, out)
    return frame


def _validate_bed9(frame: pd.DataFrame, out: Path) -> None:
    """thickStart <= thickEnd within [start, end]; itemRgb 'R,G,B' (0..255 each) or '0'."""
    _integers(frame, ("thickStart", "thickEnd"), out)
    start, end = frame["start"].to_numpy(), frame["end"].to_numpy()
    thick_start, thick_end = frame["thickStart"].to_numpy(), frame["thickEnd"].to_numpy()
    bad = np.flatnonzero((thick_start < start) | (thick_end < thick_start) | (thick_end > end))
    if bad.size:
        raise ExportError(f"{out}: {_record(frame, bad[0])}: need start <= thickStart <= thickEnd <= end")
    rgb = frame["itemRgb"].astype(str)
    parts = rgb.str.split(",")
    ok = rgb.eq("0") | parts.map(lambda p: len(p) == 3 and all(x.isdigit() and int(x) <= 255 for x in p))
    bad = np.flatnonzero(~ok.to_numpy())
    if bad.size:
        raise ExportError(f"{out}: {_record(frame, bad[0])}: itemRgb {rgb.iloc[bad[0]]!r}; use 'R,G,B' (0-255)")


def _validate_extra(frame: pd.DataFrame, out: Path, schema: BedSchema) -> None:
    for kind, column, _ in schema.extra:
        if kind in {"string", "lstring", "char[1]"}:
            text = frame[column].astype(str)
            bad = np.flatnonzero(~text.str.fullmatch(r"\S+").to_numpy())
            what = "be non-empty without whitespace"
        else:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(values)
            if kind in {"int", "uint"}:
                ok &= values == np.round(values)
            if kind == "uint":
                ok &= values >= 0
            bad = np.flatnonzero(~ok)
            what = f"be a finite {kind}"
            if kind in {"int", "uint"} and not bad.size:  # written as integers: a float64 1234567.0 came out as 1.23457e+06
                frame[column] = values.astype(np.int64)
        if bad.size:
            raise ExportError(f"{out}: {_record(frame, bad[0])}: column {column} value {frame[column].iloc[bad[0]]!r} must {what}")


def _validate_order(frame: pd.DataFrame, out: Path) -> None:
    """Sorted by chrom (byte order) then start; raise naming the first record out of order."""
    key = _byte_keys(frame["chrom"])
    start = frame["start"].to_numpy()
    same = key[1:] == key[:-1]
    bad = np.flatnonzero((key[1:] < key[:-1]) | (same & (start[1:] < start[:-1])))
    if bad.size:
        i = int(bad[0]) + 1
        raise ExportError(
            f"{out}: {_record(frame, i)} is not sorted: it comes after {_record(frame, i - 1)}; "
            "sort by chrom (byte order) then start, e.g. with genometracks.formats.bigbed."
            "sort_bed_records or `LC_ALL=C sort -k1,1 -k2,2n`"
        )


def _bed_text(frame: pd.DataFrame) -> str:
    """Tab-separated records; float columns with 6 significant digits (integer columns are int64 by now)."""
    return str(frame.to_csv(sep="\t", header=False, index=False, lineterminator="\n", float_format="%.6g"))


def write_bed_outputs(records: Any, path_prefix: str | Path, schema: BedSchema, chrom_sizes: Mapping[str, int]) -> dict[str, Path]:
    """Write `<prefix>.bb` and `<prefix>.bed.gz` + `.bed.gz.tbi` (and `<prefix>.ix`/`.ixx`, the trix index of
    the searchable columns); returns {'bigbed', 'bed_gz', 'tbi'[, 'ix', 'ixx']} paths.

    `records`: DataFrame, structured array or list of dicts with columns `schema.columns`
    ('chromStart'/'chromEnd' also accepted). Each file appears atomically."""
    prefix = Path(path_prefix)
    paths = {
        "bigbed": prefix.with_name(prefix.name + ".bb"),
        "bed_gz": prefix.with_name(prefix.name + ".bed.gz"),
        "tbi": prefix.with_name(prefix.name + ".bed.gz.tbi"),
    }
    frame = _validate(_as_frame(records), paths["bigbed"], schema, chrom_sizes)
    text = _bed_text(frame)
    _write_bigbed(paths["bigbed"], text, schema, chrom_sizes)
    paths.update(_write_search_words(frame, paths["bigbed"], schema))
    _write_tabix(paths["bed_gz"], paths["tbi"], text)
    return paths


OUTPUT_SUFFIXES = (".bb", ".bed.gz", ".bed.gz.tbi", ".ix", ".ixx")  # what write_bed_outputs writes beside <prefix>


def remove_bed_outputs(path_prefix: str | Path) -> None:
    """Remove what `write_bed_outputs` wrote at `path_prefix` (a track with no records left: an earlier
    call's files would otherwise go on into the hub and the IGV session)."""
    prefix = Path(path_prefix)
    for suffix in OUTPUT_SUFFIXES:
        prefix.with_name(prefix.name + suffix).unlink(missing_ok=True)


def write_bigbed(records: Any, path: str | Path, schema: BedSchema, chrom_sizes: Mapping[str, int]) -> Path:
    """Write only the bigBed `path` (autoSql of `schema` embedded; definedFieldCount = schema.standard)
    from records with columns `schema.columns`, validated and sorted as for `write_bed_outputs`."""
    path = Path(path)
    frame = _validate(_as_frame(records), path, schema, chrom_sizes)
    _write_bigbed(path, _bed_text(frame), schema, chrom_sizes)
    _write_search_words(frame, path, schema)
    return path


def _write_search_words(frame: pd.DataFrame, bigbed: Path, schema: BedSchema) -> dict[str, Path]:
    """The trix index (X.ix, X.ixx) of the searchable columns' values beside bigBed X.bb: case-insensitive
    search in UCSC (`searchTrix`) and igv.js (`trixURL`); {} (and old ones removed) without search columns."""
    values = [str(v) for column in schema.search for v in frame[column].unique()]
    written = write_trix(values, bigbed) if schema.search else write_trix([], bigbed)
    return {"ix": written[0], "ixx": written[1]} if written else {}


def _write_bigbed(path: Path, text: str, schema: BedSchema, chrom_sizes: Mapping[str, int]) -> None:
    import pybigtools

    def rows() -> Iterator[tuple[str, int, int, str]]:
        for line in text.splitlines():
            chrom, start, end, rest = line.split("\t", 3)
            yield chrom, int(start), int(end), rest

    used = {c: int(chrom_sizes[c]) for c in dict.fromkeys(line.split("\t", 1)[0] for line in text.splitlines())}
    with atomic_path(path) as tmp:
        pybigtools.open(str(tmp), "w").write(used, rows(), autosql=schema.autosql())
        _set_defined_field_count(tmp, schema.standard)
        if schema.search:
            add_extra_indexes(tmp, schema.search)


def _set_defined_field_count(path: Path, defined: int) -> None:
    """Mark the first `defined` columns as standard BED (pybigtools 0.3 marks all of them), as
    `bedToBigBed -type=bedN+M` does, so that trackDb `type bigBed N +` matches the file."""
    with open(path, "r+b") as handle:
        (magic,) = struct.unpack("<I", handle.read(4))
        if magic != _BIGBED_MAGIC:
            raise ExportError(f"{path}: pybigtools wrote no bigBed (magic {magic:#x})")
        handle.seek(32)  # magic u32, version u16, zoomLevels u16, 3 offsets u64, then fieldCount u16
        (field_count,) = struct.unpack("<H", handle.read(2))
        handle.seek(34)  # definedFieldCount u16
        handle.write(struct.pack("<H", min(defined, field_count)))


def bigbed_field_counts(path: str | Path) -> tuple[int, int]:
    """(fieldCount, definedFieldCount) from a bigBed header (either byte order)."""
    with open(path, "rb") as handle:
        head = handle.read(36)
    for order in "<>":
        if len(head) == 36 and struct.unpack(order + "I", head[:4])[0] == _BIGBED_MAGIC:
            return struct.unpack(order + "HH", head[32:36])
    raise ExportError(f"{path}: not a bigBed file")


def write_bed_gz(text: str, gz_path: str | Path) -> dict[str, Path]:
    """Sorted BED text as bgzip `gz_path` + tabix `gz_path.tbi` (each written atomically)."""
    gz = Path(gz_path)
    tbi = gz.with_name(gz.name + ".tbi")
    _write_tabix(gz, tbi, text)
    return {"bed_gz": gz, "tbi": tbi}


def _write_tabix(gz_path: Path, tbi_path: Path, text: str) -> None:
    """bgzip + tabix (preset bed) the BED text; the .tbi then the .bed.gz are renamed into place."""
    import pysam

    with atomic_path(gz_path) as gz, atomic_path(tbi_path) as tbi:
        plain = gz.with_name(gz.name + ".bed")
        try:
            plain.write_text(text)
            pysam.tabix_compress(str(plain), str(gz), force=True)
        finally:
            plain.unlink(missing_ok=True)
        pysam.tabix_index(str(gz), preset="bed", force=True)  # writes <gz>.tbi
        gz.with_name(gz.name + ".tbi").replace(tbi)
