"""TSS sets: readers, chromosome aliases, validation against a genome, and the named loaders.

Every reader returns a `SiteSet` whose `pos` is the 0-based forward coordinate of the +1 nucleotide
(1-based formats are converted here), with meta['path'] and meta['line'] (1-based file line per
record, int64 [n]) so later errors can name the line. Sets on an old assembly are lifted by
`load_tss_set` (see `genometracks.liftover`); everything else is checked by `validate_sites`.
"""

from __future__ import annotations

import csv
import gzip
import logging
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import Genome, contig_name
from genometracks.io.paths import shared_data_hint
from genometracks.io.run_config import group_defaults
from genometracks.labels.curation import curate
from genometracks.labels.liftover import gene_offset_map, lift_sites, take_sites

log = logging.getLogger(__name__)


class AnnotationError(ValueError):
    """Bad annotation input; the message names the file, the record/line and the fix."""


# Synonym groups: the key is the canonical name (RefSeq accession); values are other spellings.
CHROM_ALIASES: dict[str, tuple[str, ...]] = {
    "NC_000913.3": ("U00096.3", "gi|556503834|ref|NC_000913.3|", "gi|545778205|gb|U00096.3|"),
    "NC_000913.2": ("U00096.2", "gi|49175990|ref|NC_000913.2|", "gi|48994873|gb|U00096.2|"),
}
SINGLE_CONTIG_NAMES = ("chr", "chromosome", "chr1", "1", "genome")
OLD_ASSEMBLIES = {"NC_000913.2": "NC_000913.3"}  # old canonical name → the assembly it lifts onto


def _accession(name: str) -> str:
    """'gi|48994873|gb|U00096.2|' → 'U00096.2' (an NCBI identifier, as the FASTA reader names it); other
    names, assemblers' 'tig00000001|arrow' among them, unchanged."""
    return contig_name(name)


def canonical_chrom(name: str) -> str:
    """The canonical synonym of `name` (e.g. 'U00096.3' → 'NC_000913.3'); unknown names unchanged."""
    acc = _accession(name)
    for canon, aliases in CHROM_ALIASES.items():
        if name == canon or acc == canon or name in aliases or acc in aliases:
            return canon
    return acc


def _without_chr(name: str) -> str:
    """A contig name without a leading 'chr' (any case): 'chr1' and '1' are one contig's two spellings."""
    return name[3:] if name.lower().startswith("chr") else name


def _without_version(name: str) -> str:
    """An accession without its '.N' version: 'NZ_CP000001.1' → 'NZ_CP000001'; other names unchanged."""
    head, dot, tail = name.rpartition(".")
    return head if dot and tail.isdigit() and head else name


def _near(name: str, contigs: list[str]) -> str:
    """ " (did you mean 'X'?)" naming the genome's contig closest to `name`, else ''."""
    import difflib

    close = difflib.get_close_matches(name, contigs, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def normalise_chrom(names: np.ndarray, genome_contigs, source: str, lines: np.ndarray | None = None) -> np.ndarray:
    """Map contig names [n] onto the genome's contig names (str [n]); raises AnnotationError.

    A name matches a contig if either is a synonym of the other (CHROM_ALIASES, gi|...| strings);
    in a single-contig genome 'chr'/'chromosome' also match. An old assembly never matches the new one.
    """
    contigs = list(genome_contigs)
    canon_of = [canonical_chrom(c) for c in contigs]
    counts = Counter(canon_of)
    by_canon = {canon: c for canon, c in zip(canon_of, contigs) if counts[canon] == 1}  # ambiguous: no match
    by_bare: dict[str, list[str]] = {}
    by_unversioned: dict[str, list[str]] = {}
    for c in contigs:
        by_bare.setdefault(_without_chr(c), []).append(c)
        by_unversioned.setdefault(_without_version(c), []).append(c)
    uniq, inverse = np.unique(np.asarray(names, dtype=str), return_inverse=True)
    mapped = []
    for u_index, name in enumerate(uniq.tolist()):
        bare = by_bare.get(_without_chr(name), [])
        if name in contigs:
            mapped.append(name)
        elif canonical_chrom(name) in by_canon:
            mapped.append(by_canon[canonical_chrom(name)])
        elif len(contigs) == 1 and name.lower() in SINGLE_CONTIG_NAMES:
            mapped.append(contigs[0])
        elif len(bare) == 1 and _without_chr(name):  # 'chr1' in the file, '1' in the FASTA, or the reverse
            mapped.append(bare[0])
        elif _unversioned_match(name, by_unversioned):  # 'NZ_CP000001' in the file, 'NZ_CP000001.1' in the FASTA
            mapped.append(_unversioned_match(name, by_unversioned))
        else:
            record = int(np.flatnonzero(inverse == u_index)[0])
            where = f"line {lines[record]}" if lines is not None else f"record {record}"
            canon = canonical_chrom(name)
            fix = (
                f"it is on the old assembly {canon}; lift it onto {OLD_ASSEMBLIES[canon]} first (load_tss_set lifts the bundled sets)"
                if canon in OLD_ASSEMBLIES
                else "the genome has several contigs, so name one of them"
                if name.lower() in SINGLE_CONTIG_NAMES
                else f"rename it in the file to one of the genome's contig names{_near(name, contigs)}"
            )
            raise AnnotationError(f"{source}, {where}: unknown contig {name!r} (genome has {contigs[:5]}); {fix}")
    return np.array(mapped, dtype=object)[inverse] if len(uniq) else np.array([], dtype=object)


def _unversioned_match(name: str, by_unversioned: dict[str, list[str]]) -> str | None:
    """The one contig that is `name` with or without an accession version, else None. Two different
    versions ('X.1' against 'X.2': two assemblies) never match."""
    found = by_unversioned.get(_without_version(name), [])
    if len(found) != 1:
        return None
    contig = found[0]
    return contig if _without_version(name) == name or _without_version(contig) == contig else None


def validate_sites(sites: SiteSet, genome: Genome, path: str | Path) -> SiteSet:
    """Sites checked against `genome`: known contigs (aliases resolved), 0 <= pos < length;
    duplicates (same contig, pos, strand) dropped keeping the first, counted in meta['duplicates']
    (meta['sigma'] of duplicates is merged); sorted by (contig, pos, strand). Raises AnnotationError."""
    lines = sites.meta.get("line")
    if len(sites) == 0:
        raise AnnotationError(f"{path}: no TSS records left; check the file and the filters (feature type, confidence levels, liftover)")
    chrom = normalise_chrom(sites.chrom, genome.contigs, str(path), lines)
    length = np.array([genome.contigs[c].length for c in chrom], dtype=np.int64)
    bad = np.flatnonzero((sites.pos < 0) | (sites.pos >= length))
    if bad.size:
        i = int(bad[0])
        where = f"line {lines[i]}" if lines is not None else f"record {i}"
        raise AnnotationError(
            f"{path}, {where}: position {sites.pos[i]} (0-based) is outside {chrom[i]} (length "
            f"{length[i]}); {bad.size} records are out of range — is the file on another assembly "
            "or 1-based where 0-based is expected? Lift it over or fix the coordinates"
        )
    fixed = take_sites(sites, np.arange(len(sites)))
    fixed.chrom = chrom
    frame = pd.DataFrame({"c": chrom.astype(str), "p": sites.pos, "s": sites.strand})
    first = ~frame.duplicated(keep="first").to_numpy()
    if "sigma" in sites.meta and not first.all():
        key = frame.groupby(["c", "p", "s"], sort=False).ngroup().to_numpy()
        sig = pd.Series(np.asarray(sites.meta["sigma"], dtype=str))
        merged = sig.groupby(key).agg(lambda v: ", ".join(dict.fromkeys(x for x in v if x)))
        fixed.meta["sigma"] = merged.to_numpy(dtype=object)[key]
    out = take_sites(fixed, np.flatnonzero(first))
    out.meta["duplicates"] = int((~first).sum())
    order = np.lexsort((out.strand, out.pos, out.chrom.astype(str)))
    return take_sites(out, order)


def _read_text(path: Path) -> str:
    """The file's text (gunzipped when named .gz or gzip-compressed); AnnotationError naming the file and the fix when it
    is not gzip although named so, or not UTF-8 text."""
    try:
        with open(path, "rb") as handle:
            gzipped = handle.read(2) == b"\x1f\x8b"  # gzip's magic, whatever the file is named
        if path.suffix == ".gz" or gzipped:
            with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as handle:
                return handle.read()
        with open(path, encoding="utf-8-sig", newline="") as handle:  # -sig: a spreadsheet's BOM is not text
            return handle.read()
    except gzip.BadGzipFile:
        raise AnnotationError(f"{path}: not gzip-compressed although named .gz; rename it without .gz, or gzip it") from None
    except UnicodeDecodeError as err:
        raise AnnotationError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start:,}); save it as UTF-8 "
            "plain text (a spreadsheet's 'Tab-delimited text, UTF-8')"
        ) from None


def _read_rows(path: Path, sep: str = "\t", skip=("#",), header: bool = False, min_cols: int = 1, quoted: bool = False):
    """Data rows of a text table (gz ok) → (columns dict name/index → str array [n], lines [n]).

    Lines starting with any prefix in `skip` and blank lines are ignored; '##FASTA' ends a GFF."""
    path = Path(path)
    if not path.is_file():
        hint = shared_data_hint(path)
        raise AnnotationError(f"{path}: file not found; {hint}" if hint else f"{path}: file not found; check the path")
    text = _read_text(path)
    if "##FASTA" in text:
        text = text[: text.index("##FASTA")]
    raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # Unix, Windows and old Mac line ends
    keep = [i for i, line in enumerate(raw) if line.strip() and not line.startswith(tuple(skip))]
    if quoted:  # CSV / quoted TSV: parse each line on its own so a stray quote cannot swallow lines
        rows = [next(csv.reader([raw[i]], delimiter=sep)) for i in keep]
    else:
        rows = [raw[i].split(sep) for i in keep]
    lines = np.array(keep, dtype=np.int64) + 1
    names: list = list(range(max((len(r) for r in rows), default=0)))
    if header and rows:
        names, rows, lines = [h.strip() for h in rows[0]], rows[1:], lines[1:]
    if not rows:
        raise AnnotationError(f"{path}: no records (empty file or only comments); give a file with TSSs")
    short = [i for i, r in enumerate(rows) if len(r) < min_cols]
    if short:
        i = short[0]
        raise AnnotationError(
            f"{path}, line {lines[i]}: {len(rows[i])} columns, need at least {min_cols} (separator {sep!r}); fix or remove the line"
        )
    cols = {name: np.array([r[j] if j < len(r) else "" for r in rows], dtype=object) for j, name in enumerate(names)}
    return cols, lines


def _ints(values: np.ndarray, what: str, path: Path, lines: np.ndarray) -> np.ndarray:
    """String column → int64 [n]; a non-integer raises AnnotationError naming the line."""
    num = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(num) | (num != np.round(num)))
    if bad.size:
        i = int(bad[0])
        header = " (a header line? remove it or start it with '#')" if i == 0 and str(values[i]).strip().isalpha() else ""
        raise AnnotationError(f"{path}, line {lines[i]}: {what} {values[i]!r} is not an integer{header}; fix the column")
    return num.astype(np.int64)


def _strands(values: np.ndarray, path: Path, lines: np.ndarray) -> np.ndarray:
    """'+'/'-' (also forward/reverse) → '<U1' [n]; anything else raises AnnotationError."""
    table = {"+": "+", "-": "-", "forward": "+", "reverse": "-"}
    out = pd.Series(values, dtype=str).str.strip().str.lower().map(table).fillna("?").to_numpy("<U1")
    bad = np.flatnonzero(out == "?")
    if bad.size:
        i = int(bad[0])
        raise AnnotationError(
            f"{path}, line {lines[i]}: strand {values[i]!r} is not '+' or '-' "
            "(or forward/reverse); a TSS needs a strand — fix or remove the record"
        )
    return out


def _sites(chrom, pos, strand, path, lines, score=None, name=None, **meta) -> SiteSet:
    sites = SiteSet(np.asarray(chrom, dtype=object), pos, strand, score, name, source=str(path))
    sites.meta.update(path=str(path), line=lines, **meta)
    return sites


def _intervals(
    cols: dict, columns: tuple[int, int, int], first: int, rule: str, path: Path, lines: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, strand) of the records from their (start, end, strand) column numbers, as written
    (the file's own coordinate base, `first` its first position); AnnotationError naming the first
    record with start < first or end < start, with `rule` (how the format counts) and the fix."""
    start, end = _ints(cols[columns[0]], "start", path, lines), _ints(cols[columns[1]], "end", path, lines)
    strand = _strands(cols[columns[2]], path, lines)
    bad = np.flatnonzero((start < first) | (end < start))
    if bad.size:
        i = int(bad[0])
        raise AnnotationError(f"{path}, line {lines[i]}: start {start[i]} / end {end[i]} ({rule}); fix the record")
    return start, end, strand


def read_bed(path: str | Path) -> SiteSet:
    """BED6 (0-based half-open): +1 is `start` on '+', `end - 1` on '-'. A zero-length record
    (start == end) marks the nucleotide at `start`; they are counted in meta['zero_length']."""
    path = Path(path)
    cols, lines = _read_rows(path, skip=("#", "track", "browser"), min_cols=6)
    start, end, strand = _intervals(cols, (1, 2, 5), 0, "need 0 <= start <= end in 0-based BED", path, lines)
    zero = end == start
    pos = np.where((strand == "+") | zero, start, end - 1)
    score = pd.to_numeric(pd.Series(cols[4]), errors="coerce").fillna(0).to_numpy(float)
    return _sites(cols[0], pos, strand, path, lines, score, cols[3], zero_length=int(zero.sum()), span_end=end, span=end - start)


def read_gff(path: str | Path, feature: str | tuple[str, ...] | None = None) -> SiteSet:
    """GFF3/GTF (1-based closed, gz ok) rows of `feature` (a type, or any of several; all if None): +1
    is start-1 on '+', end-1 on '-' (0-based). name = Name/ID/gene_id attribute, else the raw column 9."""
    path = Path(path)
    cols, lines = _read_rows(path, min_cols=9)
    if feature is not None:
        sel = np.flatnonzero(np.isin(cols[2], [feature] if isinstance(feature, str) else list(feature)))
        if sel.size == 0:
            raise AnnotationError(
                f"{path}: no {feature!r} rows (feature types present: {sorted(set(cols[2]))[:8]}); pass feature= one of these"
            )
        cols, lines = {k: v[sel] for k, v in cols.items()}, lines[sel]
    start, end, strand = _intervals(cols, (3, 4, 6), 1, "GFF is 1-based, need 1 <= start <= end", path, lines)
    attrs = pd.Series(cols[8], dtype=str)
    name = attrs.str.extract(r"(?:^|;)\s*Name=([^;]+)")[0]
    for pattern in (r"(?:^|;)\s*ID=([^;]+)", r'gene_id "([^"]+)"'):
        name = name.fillna(attrs.str.extract(pattern)[0])
    score = pd.to_numeric(pd.Series(cols[5]), errors="coerce").fillna(0).to_numpy(float)
    pos = np.where(strand == "+", start - 1, end - 1)
    return _sites(cols[0], pos, strand, path, lines, score, name.fillna(attrs).to_numpy(object), span_end=end, span=end - start + 1)


TSS_FEATURES = ("TSS", "transcription_start_site")  # GFF types of a TSS row (SO:0000315 is transcription_start_site)


def read_tss_gff(path: str | Path) -> SiteSet:
    """The TSS rows (type TSS or transcription_start_site) of a GFF3/GTF given as a TSS file: a genome
    annotation (genes, CDS) is not a list of TSSs, and taking its every row as one would make labels
    of gene starts and ends, so a file without TSS rows is refused, naming the types it has."""
    try:
        return read_gff(path, feature=TSS_FEATURES)  # both type names, a file may mix them
    except AnnotationError as err:
        if "rows (feature types present" not in str(err):
            raise
    cols, _ = _read_rows(Path(path), min_cols=9)
    raise AnnotationError(
        f"{path}: no TSS rows (GFF types {' or '.join(TSS_FEATURES)}); its types are {sorted(set(cols[2]))[:8]}. "
        "A TSS file lists one TSS per row: give a BED of TSS positions, or a GFF of TSS features"
    )


def read_promoterset(path: str | Path, confidence=("Strong", "Confirmed"), chrom: str = "NC_000913.3") -> SiteSet:
    """RegulonDB PromoterSet (tab, '#' header, 1-based +1, forward/reverse, col 8 confidence).
    Rows whose confidence is not in `confidence` (None = all) are left out; rows with position 0
    (promoter without a mapped TSS) are dropped and counted in meta['no_position'].
    meta['sigma'] holds column 5 per site."""
    path = Path(path)
    cols, lines = _read_rows(path, min_cols=4)
    if confidence is not None:
        sel = np.flatnonzero(np.isin(cols.get(7, np.array([""] * len(lines))), list(confidence)))
        cols, lines = {k: v[sel] for k, v in cols.items()}, lines[sel]
        if not len(lines):
            raise AnnotationError(f"{path}: no rows with confidence in {list(confidence)}; check column 8 or pass confidence=None")
    pos1 = _ints(cols[3], "TSS position", path, lines)
    strand = _strands(cols[2], path, lines)
    has = pos1 > 0
    sigma = cols.get(4, np.array([""] * len(lines), dtype=object))
    sites = _sites(
        [chrom] * int(has.sum()),
        pos1[has] - 1,
        strand[has],
        path,
        lines[has],
        name=cols[1][has],
        sigma=sigma[has],
        no_position=int((~has).sum()),
    )
    return sites


def _not_primary_5prime(gene_id: str, rna_ids: str) -> bool:
    """Whether a gene's 5' end is no TSS: its product is a protein (RNA id '<gene id>_RNA': the end is a
    start codon) or a tRNA / rRNA (processed out of a longer transcript); an sRNA's (other RNA ids) is."""
    ids = re.findall(r'[^\s",\[\]]+', rna_ids)
    return not ids or any(x == f"{gene_id}_RNA" or x.lower().endswith(("-trna", "-rrna")) for x in ids)


def _ecocyc_gene_starts(path: Path) -> set[tuple[str, int]]:
    """(strand, 1-based 5' end) of the genes in an EcoCyc genes TSV (left end on '+', right on '-') whose
    5' end is no TSS (`_not_primary_5prime`; all genes when the file has no rna_ids column)."""
    cols, lines = _read_rows(path, header=True, min_cols=6, quoted=True)
    for need in ("left_end_pos", "right_end_pos", "direction"):
        if need not in cols:
            raise AnnotationError(f"{path}: no {need!r} column; expected an EcoCyc genes TSV")
    has = ~np.isin(cols["left_end_pos"], ("", "null")) & ~np.isin(cols["right_end_pos"], ("", "null"))  # genes without a position
    cols, lines = {k: v[has] for k, v in cols.items()}, lines[has]
    left = _ints(cols["left_end_pos"], "left_end_pos", path, lines)
    right = _ints(cols["right_end_pos"], "right_end_pos", path, lines)
    strand = _strands(cols["direction"], path, lines)
    rna = cols.get("rna_ids", np.full(len(lines), "", dtype=object))
    coding = np.array([_not_primary_5prime(str(g), str(r)) for g, r in zip(cols["id"], rna)], dtype=bool)
    five = np.where(strand == "+", left, right)
    return set(zip(strand[coding].tolist(), five[coding].tolist()))


def read_ecocyc_tus(path: str | Path, chrom: str = "NC_000913.3", genes: str | Path | None = None) -> SiteSet:
    """EcoCyc transcription_units TSV (1-based left/right ends): the TU's 5' end (left on '+',
    right on '-') as 0-based +1. EcoCyc draws a TU without a known promoter from its first gene's
    start: a 5' end on the 5' end of a protein, tRNA or rRNA gene of the same strand (EcoCyc `genes.tsv`,
    by default beside `path`) is no TSS and is left out (meta['at_gene_start']; 1,447 of the 3,766 E. coli
    TUs, nearly all at ATG/GTG); sRNA genes' 5' ends are their transcripts' and stay.
    TUs without coordinates are counted in meta['no_position']."""
    path = Path(path)
    cols, lines = _read_rows(path, header=True, min_cols=6, quoted=True)
    for need in ("left_end_pos", "right_end_pos", "direction"):
        if need not in cols:
            raise AnnotationError(f"{path}: no {need!r} column; expected an EcoCyc transcription_units TSV")
    has = (cols["left_end_pos"] != "") & (cols["right_end_pos"] != "")
    cols, lines = {k: v[has] for k, v in cols.items()}, lines[has]
    left = _ints(cols["left_end_pos"], "left_end_pos", path, lines)
    right = _ints(cols["right_end_pos"], "right_end_pos", path, lines)
    strand = _strands(cols["direction"], path, lines)
    five = np.where(strand == "+", left, right)
    genes = Path(genes) if genes is not None else path.with_name("genes.tsv")
    if not genes.is_file():
        raise AnnotationError(
            f"{genes}: EcoCyc genes TSV not found; it tells TU ends drawn from a start codon from promoters "
            f"(put genes.tsv beside {path.name} or pass genes=)"
        )
    starts = _ecocyc_gene_starts(genes)
    keep = np.array([(s, int(x)) not in starts for s, x in zip(strand.tolist(), five.tolist())], dtype=bool)
    name_col = cols.get("common_name", cols["id"])
    name = np.where(name_col != "", name_col, cols["id"])
    return _sites(
        [chrom] * int(keep.sum()),
        five[keep] - 1,
        strand[keep],
        path,
        lines[keep],
        name=name[keep],
        no_position=int((~has).sum()),
        at_gene_start=int((~keep).sum()),
    )


def read_cho2014(path: str | Path, chrom: str = "NC_000913.2") -> SiteSet:
    """Cho et al. 2014 TSS_info.csv or TSS_seq.csv (1-based +1; NC_000913.2). A 'sequence' column
    (50 nt upstream + the +1 nucleotide, 5'→3' on the TSS strand) goes to meta['flank'] with
    meta['flank_plus1'] = its last index; 'sigma_binding' letters go to meta['sigma']."""
    path = Path(path)
    cols, lines = _read_rows(path, sep=",", skip=(), header=True, min_cols=3, quoted=True)
    strand_col = "TSS_strand" if "TSS_strand" in cols else "strand"
    if "TSS_position" not in cols or strand_col not in cols:
        raise AnnotationError(f"{path}: needs TSS_position and TSS_strand/strand columns (Cho 2014 CSV)")
    pos = _ints(cols["TSS_position"], "TSS_position", path, lines) - 1
    strand = _strands(cols[strand_col], path, lines)
    score = pd.to_numeric(pd.Series(cols.get("TSS_reads", np.zeros(len(lines)))), errors="coerce").fillna(0)
    meta = {}
    if "sequence" in cols:
        flank = np.array([s.strip().upper() for s in cols["sequence"]], dtype=object)
        meta.update(flank=flank, flank_plus1=np.array([len(s) - 1 for s in flank], dtype=np.int64))
    if "sigma_binding" in cols:
        meta["sigma"] = cols["sigma_binding"]
    name = cols.get("TU_ID", np.array([""] * len(lines), dtype=object))
    return _sites([chrom] * len(lines), pos, strand, path, lines, score.to_numpy(float), name, **meta)


def read_sendseq_tts(path: str | Path, chrom: str = "NC_000913.3") -> SiteSet:
    """SEnd-seq termination sites (Ju 2019 MOESM4 CSV, 1-based TTS_position) as 0-based sites;
    name = 'intrinsic' / 'rho-dependent' / 'undefined', score = ΔG (kcal/mol)."""
    path = Path(path)
    cols, lines = _read_rows(path, sep=",", skip=(), header=True, min_cols=3, quoted=True)
    if "TTS_position" not in cols or "TTS_strand" not in cols:
        raise AnnotationError(f"{path}: needs TTS_position and TTS_strand columns (SEnd-seq MOESM4 CSV)")
    pos = _ints(cols["TTS_position"], "TTS_position", path, lines) - 1
    strand = _strands(cols["TTS_strand"], path, lines)
    dg = next((c for c in cols if isinstance(c, str) and "G (kcal" in c), None)
    score = pd.to_numeric(pd.Series(cols[dg] if dg else np.zeros(len(lines))), errors="coerce").fillna(0)
    kind = np.where(
        cols.get("intrinsic_TTS", np.array([""] * len(lines))) != "",
        "intrinsic",
        np.where(cols.get("TTS_type_rho_dependent", np.array([""] * len(lines))) != "", "rho-dependent", "undefined"),
    )
    return _sites([chrom] * len(lines), pos, strand, path, lines, score.to_numpy(float), kind.astype(object))


def read_pseudogene_starts(gff: str | Path) -> SiteSet:
    """5' ends (0-based, strand-aware) of 'pseudogene' features in a GFF3 (e.g. RefSeq)."""
    return read_gff(gff, feature="pseudogene")


def sites_to_bed_lines(sites: SiteSet) -> list[str]:
    """Sorted BED6 lines (no newline): chrom, pos, pos+1, name ('.' if empty), score (int 0..1000), strand."""
    s = sites.sorted()
    names = [str(n).replace(" ", "_").replace("\t", "_") or "." for n in s.name]
    score = np.clip(np.round(s.score), 0, 1000).astype(int)
    return [f"{c}\t{p}\t{p + 1}\t{n}\t{sc}\t{st}" for c, p, n, sc, st in zip(s.chrom, s.pos, names, score, s.strand)]


# ------------------------------------------------------------------ named sets on the shared data
TSS_FILES = {
    "regulondb_strong": "regulondb_promoterset/PromoterSet_v10.9.txt",
    "cappable_seq": "cappable_seq_ettwiller2016/TSS_enriched_cluster_5.gtf",
    "drnaseq": "thomason2015_drnaseq/Thomason_2015.EcoTSS.bed",
    "cho2014": "cho2014_sigma_tss_prompred/TSS_seq.csv",
    "ecocyc": "ecocyc_vecoli/transcription_units.tsv",
}
OLD_GENES = "cappable_seq_ettwiller2016/U00096_protein_coding.gtf"  # U00096.2 anchors (CDS, b-numbers)
NEW_GENES = "refseq_annotation/NC_000913.3.gff.gz"  # NC_000913.3 anchors (gene, locus_tag)


@lru_cache(maxsize=4)
def _offset_map(root: str):
    return gene_offset_map(Path(root) / OLD_GENES, Path(root) / NEW_GENES)


def _data_dir(data_root: Path) -> Path:
    root = Path(data_root)
    return root / "ecoli_k12" if (root / "ecoli_k12").is_dir() else root


def _curated_priority() -> list[str]:
    """The curated set's source order as conf/data/ecoli_k12.yaml declares it (newest technique first)."""
    return list(group_defaults("data", "ecoli_k12").curation.priority)


def load_tss_set(name: str, genome: Genome, data_root: Path, curation: dict | None = None) -> SiteSet:
    """A named TSS set on `genome` (old-assembly sets lifted), validated and deduplicated.

    data_root: the `ecoli_k12/` folder or its parent. 'curated' runs `curate` over the sets named in
    curation['priority'] (default: conf/data/ecoli_k12.yaml's, newest technique first) with its window,
    min_support and add_all_of (conf data.curation). meta['liftover'] reports lifted/dropped.
    """
    root = _data_dir(data_root)
    if name == "curated":
        rules = dict(curation or {})
        priority = [n for n in rules.pop("priority", None) or _curated_priority() if n != "curated"]
        sets = {n: load_tss_set(n, genome, root) for n in priority}
        unknown = set(rules) - {"window", "min_support", "add_all_of"}
        if unknown:
            raise AnnotationError(f"curation: unknown keys {sorted(unknown)}; use priority, window, min_support, add_all_of")
        out = curate(
            sets,
            priority,
            window=int(rules.get("window") or 5),
            min_support=int(rules.get("min_support") or 2),
            add_all_of=rules.get("add_all_of"),
            circular={name: contig.length for name, contig in genome.contigs.items() if contig.circular},
        )
        out.meta["liftover"] = {"lifted": len(out), "dropped": 0, "sets": {n: s.meta["liftover"] for n, s in sets.items()}}
        return out
    if name not in TSS_FILES:
        raise AnnotationError(
            f"unknown TSS set {name!r}{_near(name, sorted(TSS_FILES) + ['curated'])}; use one of {sorted(TSS_FILES) + ['curated']}, "
            "or your own BED/GFF with data=custom data.tss=PATH"
        )
    path = root / TSS_FILES[name]
    readers = {
        "regulondb_strong": read_promoterset,
        "drnaseq": read_bed,
        "cho2014": read_cho2014,
        "ecocyc": read_ecocyc_tus,
        "cappable_seq": lambda p: read_gff(p, feature="TSS"),
    }
    sites = readers[name](path)
    canon = np.unique([canonical_chrom(c) for c in np.unique(sites.chrom.astype(str))])
    direct = {canonical_chrom(c) for c in genome.contigs}
    if len(canon) == 1 and canon[0] in OLD_ASSEMBLIES and canon[0] not in direct:
        target = str(normalise_chrom(np.array([OLD_ASSEMBLIES[canon[0]]]), genome.contigs, str(path))[0])
        sites = lift_sites(
            sites,
            _offset_map(str(root)),
            target,
            genome.contigs[target].length,
            tokens=genome.tokens(target) if "flank" in sites.meta else None,
        )
        report = dict(sites.meta["liftover"], source_assembly=str(canon[0]))
    else:
        report = {"lifted": len(sites), "dropped": 0, "source_assembly": "same as genome"}
    out = validate_sites(sites, genome, path)
    out.source = name
    out.meta["liftover"] = report
    return out


def _check_record_ends(sites: SiteSet, genome: Genome, path: Path) -> None:
    """A BED/GFF record whose end (meta['span_end'], 0-based exclusive) lies past its contig's end is an
    AnnotationError naming the line: the file is on another assembly even where its +1 fits."""
    span_end = sites.meta.get("span_end")
    if not isinstance(span_end, np.ndarray) or span_end.shape != sites.pos.shape:
        return
    length = np.array([genome.contigs[c].length for c in sites.chrom], dtype=np.int64)
    past = np.flatnonzero(span_end > length)
    if past.size:
        i, lines = int(past[0]), sites.meta.get("line")
        where = f"line {lines[i]}" if lines is not None else f"record {i}"
        raise AnnotationError(
            f"{path}, {where}: the record ends at {span_end[i]} (0-based, exclusive), past the end of {sites.chrom[i]} "
            f"(length {length[i]}); {past.size} records do — is the file on another assembly? Lift it over or fix the coordinates"
        )


def load_tss_file(path: str | Path, genome: Genome, fmt: str | None = None) -> SiteSet:
    """A user's own TSS file (data=custom) validated against `genome`. fmt: 'bed', 'gff',
    'promoterset', 'ecocyc', 'cho2014'; None guesses from the suffix (.bed, .gff/.gff3/.gtf[.gz])."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    guess = {".bed": "bed", ".gff": "gff", ".gff3": "gff", ".gtf": "gff"}.get(suffixes[-1] if suffixes else "")
    fmt = fmt or guess
    readers = {"bed": read_bed, "gff": read_tss_gff, "promoterset": read_promoterset, "ecocyc": read_ecocyc_tus, "cho2014": read_cho2014}
    if fmt not in readers:
        raise AnnotationError(
            f"{path}: cannot tell the TSS file's format from its name; give it one of the suffixes .bed, .gff, .gff3 or .gtf "
            "(a BED of TSS positions: chrom, start, end, name, score, strand)"
        )
    sites = validate_sites(readers[fmt](path), genome, path)
    _check_record_ends(sites, genome, path)
    wide = int(np.count_nonzero(np.asarray(sites.meta.get("span", 1)) > 1))
    sites.meta["wider_than_1nt"] = wide
    if wide:
        log.warning(
            "%s: %d of %d records span more than 1 nt; each one's 5' end (start on '+', end on '-') is taken as the TSS. "
            "If they are promoters or transcripts, not TSSs, give a file of 1-nt TSS records",
            path,
            wide,
            len(sites),
        )
    sites.source = path.stem
    sites.meta["liftover"] = {"lifted": len(sites), "dropped": 0, "source_assembly": "same as genome"}
    return sites
