"""Genomes: FASTA (plain or bgzipped) → uint8 tokens per contig, reverse complement, chrom sizes.

Tokens: A=0, C=1, G=2, T=3, N=4. Lower case is accepted; IUPAC ambiguity letters
(R, Y, K, M, S, W, B, D, H, V), U, X (RepeatMasker's -x masking) and the gap characters '-' and '.'
map to N; any other character is an error naming the record and offset.
Coordinates are 0-based, half-open.
"""

from __future__ import annotations

import gzip
import logging
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genometracks.io.paths import shared_data_hint

log = logging.getLogger(__name__)

ALPHABET = "ACGTN"
N_TOKEN = 4
_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)
_IUPAC = "RYKMSWBDHVNUX"  # U is read as N (this is a DNA genome), X is RepeatMasker's hard masking
# A header word that says the record is a circle: assemblers' `circular=true` (Unicycler, Hybracter,
# Dragonflye; also yes/Y/1) and NCBI's source modifier `[topology=circular]` (table2asn, Bakta).
_CIRCULAR_TAG = re.compile(rb"^(?:circular=(?:true|yes|y|1)|\[?topology=circular\]?)$", re.IGNORECASE)


class GenomeError(ValueError):
    """Bad genome input; the message names the file, the record and the fix."""


# NCBI FASTA identifiers (`gi|49175990|ref|NC_000913.2|`, `ref|NC_000913.3|`, `gb|U00096.3|`):
# database tags in the order their accession is preferred.
_NCBI_TAGS = ("ref", "gb", "emb", "dbj", "tpg", "tpe", "tpd", "lcl", "gnl")


def contig_name(header_word: str) -> str:
    """The contig name used in every output for a FASTA header's first word: an NCBI-style
    `gi|...|ref|NZ_X.1|` becomes its accession (`NZ_X.1`; RefSeq before GenBank/EMBL/DDBJ, then a
    local id; `gi|N|` alone becomes N); any other word, with or without '|' (an assembler's
    `tig00000001|arrow`), is kept as is. The original goes into the hub's chromAlias."""
    parts = header_word.split("|")
    if len(parts) < 2 or not ({"gi", *_NCBI_TAGS} & set(parts[:-1])):
        return header_word
    for tag in _NCBI_TAGS:
        for i, part in enumerate(parts[:-1]):
            if part == tag:
                rest = [p for p in parts[i + 1 :] if p]
                if rest:
                    return rest[-1] if tag == "gnl" and len(rest) > 1 else rest[0]
    words = [p for p in parts if p]
    return words[-1] if words else header_word


def _build_table() -> np.ndarray:
    table = np.full(256, 255, dtype=np.uint8)  # 255 = not a sequence letter
    for i, base in enumerate("ACGT"):
        table[ord(base)] = i
        table[ord(base.lower())] = i
    for letter in _IUPAC + "N":
        table[ord(letter)] = N_TOKEN
        table[ord(letter.lower())] = N_TOKEN
    table[ord("-")] = N_TOKEN
    table[ord(".")] = N_TOKEN
    return table


_ENCODE = _build_table()


def encode(sequence: str | bytes, where: str = "sequence") -> np.ndarray:
    """Encode letters to uint8 tokens [L] (A,C,G,T=0..3, IUPAC/N=4); raises on non-letters."""
    raw = sequence.encode("ascii", "replace") if isinstance(sequence, str) else bytes(sequence)
    tokens = _ENCODE[np.frombuffer(raw, dtype=np.uint8)]
    bad = np.flatnonzero(tokens == 255)
    if bad.size:
        char = chr(raw[bad[0]])
        letters = np.frombuffer(raw, dtype=np.uint8)[bad]
        amino = np.isin(letters, np.frombuffer(b"EFILPQefilpq", dtype=np.uint8)).sum()
        protein = " (it looks like a protein sequence: pass the genome's nucleotide FASTA, .fna)" if amino >= max(3, bad.size // 2) else ""
        raise GenomeError(
            f"{where}: character {char!r} at offset {bad[0]} is not a nucleotide letter{protein}; use A, C, G, T or an IUPAC code"
        )
    return tokens


def decode(tokens: np.ndarray) -> str:
    """Tokens [L] → upper-case string over ACGTN."""
    return np.frombuffer(b"ACGTN", dtype=np.uint8)[np.asarray(tokens, dtype=np.intp)].tobytes().decode()


def complement(tokens: np.ndarray) -> np.ndarray:
    """Complement of a token array of any shape, not reversed (A<->T, C<->G, N stays N)."""
    return _COMPLEMENT[np.asarray(tokens)]


def reverse_complement(tokens: np.ndarray) -> np.ndarray:
    """Reverse complement of a token array [L] (N stays N)."""
    return _COMPLEMENT[np.asarray(tokens)[::-1]]


@dataclass(frozen=True)
class Contig:
    """One sequence record: name, length in nt, and whether it is circular."""

    name: str
    length: int
    circular: bool = False


@dataclass
class Genome:
    """Contigs of a FASTA with tokens cached per contig (forward strand, 5'→3')."""

    path: Path
    contigs: dict[str, Contig]
    _tokens: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, fasta: str | Path, circular: Iterable[str] = (), circular_tags: bool = True) -> Genome:
        """Open a FASTA or bgzipped FASTA (pyfaidx builds the .fai). Circular contigs: those named in
        `circular`, and (`circular_tags`) those whose header says so (`circular=true`, `[topology=circular]`)."""
        path = Path(fasta)
        if not path.is_file():
            hint = shared_data_hint(path)
            fix = f"{hint}, or set data.fasta to an existing file" if hint else "set data.fasta to an existing file"
            raise GenomeError(f"{path}: FASTA file not found; {fix}")
        records = _read_records(path)
        if not records:
            raise GenomeError(f"{path}: no FASTA records (no line starts with '>'); is this a FASTA file?")
        circular = set(circular)
        if circular_tags:
            tagged = [name for name in circular_in_headers(path) if name not in circular]
            if tagged:
                log.info("%s: circular by their FASTA headers: %s (data.circular_tags=false to ignore the tags)", path, tagged)
            circular |= set(tagged)
        unknown = circular - set(records)
        if unknown:
            raise GenomeError(
                f"{path}: contigs marked circular are not in the FASTA: {sorted(unknown)}; available: {sorted(records)[:10]}; "
                "list this genome's circular contigs in data.circular=[...] (data.circular=[] for none)"
            )
        genome = cls(path, {name: Contig(name, len(tok), name in circular) for name, tok in records.items()})
        genome._tokens = records
        return genome

    @classmethod
    def from_sequences(cls, sequences: dict[str, str], circular: Iterable[str] = ()) -> Genome:
        """An in-memory genome (tests, synthetic data)."""
        circular = set(circular)
        tokens = {name: encode(seq, where=f"contig {name}") for name, seq in sequences.items()}
        return cls(Path("<memory>"), {n: Contig(n, len(t), n in circular) for n, t in tokens.items()}, tokens)

    def tokens(self, contig: str, strand: str = "+") -> np.ndarray:
        """Tokens [length] of a contig read 5'→3' on `strand` ('+' or '-')."""
        if contig not in self.contigs:
            raise GenomeError(f"{self.path}: unknown contig {contig!r}; available: {list(self.contigs)[:10]}")
        forward = self._tokens[contig]
        if strand == "+":
            return forward
        if strand == "-":
            return reverse_complement(forward)
        raise GenomeError(f"strand must be '+' or '-', got {strand!r}")

    def sequence(self, contig: str, start: int, end: int, strand: str = "+") -> str:
        """Letters of [start, end) (0-based, forward coordinates); '-' gives the reverse complement."""
        length = self.contigs[contig].length if contig in self.contigs else 0
        if not 0 <= start <= end <= length:
            raise GenomeError(f"{self.path}: interval {contig}:{start}-{end} is outside the contig (length {length})")
        piece = self.tokens(contig)[start:end]
        return decode(piece if strand == "+" else reverse_complement(piece))

    def chrom_sizes(self) -> dict[str, int]:
        """Contig name → length (nt), in FASTA order."""
        return {name: c.length for name, c in self.contigs.items()}

    @property
    def total_length(self) -> int:
        return sum(c.length for c in self.contigs.values())


def _read_records(path: Path) -> dict[str, np.ndarray]:
    """Read every record via pyfaidx (handles bgzip, builds/uses the .fai); tokens per record."""
    import pyfaidx

    if _check_fasta_text(path):
        log.warning("%s: old Mac line ends (CR only); reading it without an index (the IGV export writes a reformatted copy)", path)
        return _records_from_letters(path, read_fasta_letters(path))
    _check_unique_names(path)
    try:
        fasta = pyfaidx.Fasta(
            str(path),
            indexname=str(_index_path(path)),
            gzi_indexname=str(_index_path(path, ".gzi")),
            sequence_always_upper=False,
            rebuild=True,
            build_index=True,
            one_based_attributes=False,
            as_raw=True,
            read_long_names=False,
            duplicate_action="stop",
            key_function=contig_name,
        )
    except pyfaidx.UnsupportedCompressionFormat as err:
        raise GenomeError(
            f"{path}: compressed with plain gzip, which cannot be indexed; recompress it with "
            f"`gunzip -c {shlex.quote(str(path))} | bgzip > {shlex.quote(str(path.with_suffix('.bgz')))}` and name the .bgz, "
            "or pass it uncompressed"
        ) from err
    except pyfaidx.FastaIndexingError as err:
        if path.suffix in {".gz", ".bgz"}:  # bgzip needs the index; a plain file can be read whole
            raise GenomeError(
                f"{path}: cannot index FASTA ({err}); each record needs lines of equal length (reformat with `seqkit seq -w 80 | bgzip`)"
            ) from err
        log.warning(
            "%s: uneven line lengths or blank lines (%s); reading it without an index. Browsers "
            "need an indexable FASTA: the IGV export writes a reformatted copy",
            path,
            err,
        )
        return _records_from_letters(path, read_fasta_letters(path))
    except ValueError as err:  # duplicate names are caught above; anything else pyfaidx refuses
        raise GenomeError(f"{path}: {err}; check the FASTA (one '>' header per record, then its letters)") from err
    records: dict[str, np.ndarray] = {}
    for name in fasta.keys():
        seq = fasta[name][:]
        if ">" in seq:  # a record whose last line is longer than the others: pyfaidx's index reads into the next header
            fasta.close()
            log.warning("%s: record %r has a last line longer than its others; reading the FASTA without an index", path, name)
            return _records_from_letters(path, read_fasta_letters(path))
        if any(c in seq for c in " \t\r"):  # spaces at line ends keep line lengths even: pyfaidx passes them on
            fasta.close()
            log.warning("%s: spaces or tabs inside the sequence lines; reading it without an index and ignoring them", path)
            return _records_from_letters(path, read_fasta_letters(path))
        tokens = encode(seq, where=f"{path} record {name!r}")
        if tokens.size == 0:
            raise GenomeError(f"{path}: record {name!r} is empty; remove it from the FASTA")
        records[name] = tokens
    fasta.close()
    return records


def read_fasta_letters(fasta: Path) -> dict[str, bytes]:
    """FASTA (plain or gzip/bgzip) records with their case (soft-masking) kept: {name: letters}.
    Reads the whole file (bacterial genomes: megabytes); any line lengths, CRLF, blank lines."""
    if not fasta.is_file():
        raise GenomeError(f"{fasta}: FASTA file not found")
    opener = gzip.open if fasta.suffix in {".gz", ".bgz"} else open
    with opener(fasta, "rb") as handle:
        data = handle.read().replace(b"\r\n", b"\n").replace(b"\r", b"\n")  # Windows and old Mac line ends
    if not data.lstrip().startswith(b">"):
        raise GenomeError(f"{fasta}: no FASTA records (the file does not start with '>')")
    records: dict[str, bytes] = {}
    seen = _NameCheck(fasta)
    for chunk in data.lstrip()[1:].split(b"\n>"):
        header, _, body = chunk.partition(b"\n")
        records[seen.add(header)] = body.translate(None, b" \t\r\n")
    return records


class _NameCheck:
    """Contig names of a FASTA's records in order; `add` raises one GenomeError naming the file, the
    name and both record numbers (1-based, counting '>' lines) when a name comes twice, including two
    NCBI-style headers that share an accession."""

    def __init__(self, fasta: Path) -> None:
        self.fasta, self.count = fasta, 0
        self.seen: dict[str, tuple[int, str]] = {}

    def add(self, header: bytes) -> str:
        """The contig name of one header line (without '>'); raises on an unnamed or repeated one."""
        self.count += 1
        try:
            header.decode("utf-8")
        except UnicodeDecodeError as err:  # pyfaidx would fail on it without naming the record
            raise GenomeError(
                f"{self.fasta}: record {self.count}'s header {header[:60].decode('latin-1').strip()!r} is not UTF-8 text "
                f"(byte 0x{header[err.start]:02x}); write its name and description in ASCII (or UTF-8)"
            ) from None
        words = header.split()
        word = words[0].decode(errors="replace") if words else ""
        name = contig_name(word) if word else ""
        if not name:
            raise GenomeError(f"{self.fasta}: record {self.count} has no name (a bare '>' line); give every record a unique name after '>'")
        if name in self.seen:
            first, first_word = self.seen[name]
            headers = f" (headers {first_word!r} and {word!r})" if first_word != word else ""
            raise GenomeError(
                f"{self.fasta}: records {first} and {self.count} are both named {name!r}{headers}; "
                "contig names must be unique: rename or remove one of the two records"
            )
        self.seen[name] = (self.count, word)
        return name


def circular_in_headers(fasta: Path) -> list[str]:
    """Contig names, in FASTA order, whose header line carries a circularity tag after the name
    (`circular=true` of assemblers, NCBI's `[topology=circular]`); plain or gzip/bgzip FASTA."""
    opener = gzip.open if fasta.suffix in {".gz", ".bgz"} else open
    with opener(fasta, "rb") as handle:
        data = handle.read().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    tagged = []
    for header in re.findall(rb"^>([^\n]*)", data, flags=re.MULTILINE):
        words = header.split()
        if len(words) > 1 and any(_CIRCULAR_TAG.match(word) for word in words[1:]):
            tagged.append(contig_name(words[0].decode(errors="replace")))
    return tagged


def _check_unique_names(path: Path) -> None:
    """Read the header lines only (plain or gzip/bgzip) and raise on a repeated or missing name."""
    check = _NameCheck(path)
    opener = gzip.open if path.suffix in {".gz", ".bgz"} else open
    with opener(path, "rb") as handle:
        for line in handle:
            if line.startswith(b">"):
                check.add(line[1:])


def _records_from_letters(path: Path, letters: dict[str, bytes]) -> dict[str, np.ndarray]:
    records = {}
    for name, seq in letters.items():
        if not seq:
            raise GenomeError(f"{path}: record {name!r} is empty; remove it from the FASTA")
        records[name] = encode(seq, where=f"{path} record {name!r}")
    return records


def _index_path(path: Path, suffix: str = ".fai") -> Path:
    """Where the FASTA's index (.fai, or a bgzipped FASTA's .gzi) lives: beside the FASTA if one is
    already there, else in the user cache ($GENOMETRACKS_CACHE or ~/.cache/genometracks): we never
    write into a user's data folder."""
    import hashlib
    import os

    beside = path.with_name(path.name + suffix)
    if beside.exists():
        stale = _stale_fai(path, beside) if suffix == ".fai" and path.suffix not in {".gz", ".bgz"} else None
        if stale is None:
            return beside
        log.warning("%s: %s; not using it (indexing the FASTA afresh in the cache; delete or rebuild it: samtools faidx)", beside, stale)
    cache = Path(os.environ.get("GENOMETRACKS_CACHE", Path.home() / ".cache" / "genometracks")) / "fai"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GenomeError(
            f"{path}: cannot make the index cache {cache} ({err.strerror}); set GENOMETRACKS_CACHE to a writable folder"
        ) from err
    stat = path.stat()  # a FASTA replaced at the same path (even with an older mtime: cp -p, tar x) gets its own index
    key = hashlib.sha1(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache / f"{path.name}.{key}{suffix}"


def _stale_fai(path: Path, fai: Path) -> str | None:
    """Why a .fai beside a plain FASTA does not describe it (a FASTA edited or replaced with an older
    mtime, e.g. `cp -p`, which pyfaidx's mtime check misses), or None: every record's offset must follow
    a '>' header line whose first word is the record's name, and the last record must end in the file."""
    try:
        rows = [line.split("\t") for line in fai.read_text().splitlines() if line.strip()]
        entries = [(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]
    except (OSError, UnicodeDecodeError, ValueError, IndexError):
        return "not a readable FASTA index (name, length, offset, line bases, line width per line)"
    size = path.stat().st_size
    with open(path, "rb") as handle:
        for name, length, offset, bases, width in entries:
            if bases <= 0 or width < bases or not 0 < offset <= size:
                return f"record {name!r}: offset {offset} or line layout {bases}/{width} does not fit the FASTA ({size} bytes)"
            handle.seek(max(0, offset - 4096))
            before = handle.read(offset - max(0, offset - 4096))
            header = before[:-1].rsplit(b"\n", 1)[-1].rstrip(b"\r")
            if not before.endswith(b"\n") or not header.startswith(b">") or header[1:].split()[:1] != [name.encode()]:
                return f"record {name!r} at byte {offset} does not follow its header line '>{name}' in the FASTA"
            full, rest = divmod(length, bases)
            if offset + full * width + rest > size:
                return f"record {name!r} ({length:,} nt from byte {offset}) runs past the end of the FASTA ({size} bytes)"
    return None


def _check_fasta_text(path: Path) -> bool:
    """Cheap checks pyfaidx does not make: empty file, no '>' header. True when lines end in CR alone
    (old Mac), which pyfaidx reads as one line."""
    compressed = path.suffix in {".gz", ".bgz"}
    if not compressed:
        with open(path, "rb") as handle:
            if handle.read(2) == b"\x1f\x8b":  # gzip's magic: the name hides a compressed file
                raise GenomeError(
                    f"{path}: gzip-compressed although not named .gz; rename it to {path.name}.gz if it is "
                    f"bgzip-compressed, or decompress it: `gunzip -c {shlex.quote(str(path))} > {shlex.quote(path.stem)}.plain.fa`"
                )
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        head = handle.read(4096)
    if not head.strip():
        raise GenomeError(f"{path}: file is empty; expected FASTA records starting with '>'")
    if not head.lstrip().startswith(b">"):
        raise GenomeError(f"{path}: no FASTA records (first line does not start with '>')")
    return b"\r" in head and b"\n" not in head
