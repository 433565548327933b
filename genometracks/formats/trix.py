"""Trix word indexes (`.ix` + `.ixx`, the format of UCSC's `ixIxx`) that make a bigBed's names searchable
without regard to case: UCSC's trackDb `searchTrix` and igv.js's `trixURL` read them.

Each searchable value (a TSS call's name, a motif, a sigma class) is one word, lower-cased, pointing at
itself: `.ix` lines are `word id,1 id,1 ...` (words in byte order, ids in byte order), and `.ixx` lines
are a word's first 5 characters (space-padded) and the 10-hex-digit byte offset of the first `.ix` line
with that prefix, one about every 64 KiB, as ixIxx writes them. A reader lower-cases what the user typed,
finds the word (igv.js: exactly; UCSC: as a prefix too), and looks the id up in the bigBed's B+ tree
name index, whose keys are case-sensitive (`formats.bigbed_index`). Values holding white space or ','
cannot be trix ids and are left out (they stay in the B+ tree).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

from genometracks.io.atomic import write_text_atomic

__all__ = ["ix_text", "jbrowse_trix_text", "trix_paths", "trix_text", "write_trix"]

PREFIX_SIZE = 5  # ixIxx's default -prefixSize
BIN_SIZE = 64 * 1024  # ixIxx's default -binSize (bytes of .ix between .ixx entries)


def trix_paths(bigbed: str | Path) -> tuple[Path, Path]:
    """(`.ix`, `.ixx`) beside a bigBed: X.bb → X.ix, X.ixx (igv.js finds the .ixx as the .ix's name + 'x')."""
    path = Path(bigbed)
    return path.with_suffix(".ix"), path.with_suffix(".ixx")


def ix_text(items: Iterable[tuple[str, Sequence[str]]]) -> tuple[str, str]:
    """(.ix text, .ixx text) of (item id, words) items, as ixIxx writes them for lines `id word1 word2 ...`:
    each word lower-cased, `word id,position ...` per word in byte order, hits by id then position (1-based).
    Ids and words must hold no white space (ids no ',' either)."""
    by_word: dict[bytes, set[tuple[bytes, int]]] = {}
    for item, words in items:
        for position, word in enumerate(words, start=1):
            by_word.setdefault(word.lower().encode(), set()).add((item.encode(), position))
    lines = [
        word + b"".join(b" " + item + b"," + str(position).encode() for item, position in sorted(hits)) + b"\n"
        for word, hits in sorted(by_word.items())
    ]
    return b"".join(lines).decode(), _ixx(lines)


def _indexable(text: str) -> bool:
    return bool(text) and not any(c.isspace() or c == "," for c in text)


def trix_text(values: Iterable[str]) -> tuple[str, str]:
    """(.ix text, .ixx text) indexing each distinct value under its lower-cased self (UCSC, igv.js)."""
    distinct = sorted({str(v) for v in values if _indexable(str(v))})
    return ix_text((value, [value]) for value in distinct)


def jbrowse_trix_text(records: Iterable[tuple[str, int, int, Sequence[str]]], track_id: str) -> tuple[str, str]:
    """(.ix, .ixx) for JBrowse 2's TrixTextSearchAdapter: each record (contig, start 0-based, end, searchable
    values) is found by any of its values (lower-cased words); its id is the payload JBrowse shows and
    jumps to, as `jbrowse text-index` writes it: a JSON array of URI-encoded [`contig:start+1..end`,
    track id, values...] with ',' written '|'. Each value's word gets a payload that lists that value first:
    JBrowse labels a hit by the payload's first value and, asked for an exact match (its search box, a
    `?locus=` address), keeps only hits whose label is the term, so a gene is found by its locus tag too."""

    def payload(chrom: str, start: int, end: int, values: Sequence[str]) -> str:
        parts = [f"{chrom}:{start + 1}..{end}", track_id, *values]
        return json.dumps([quote(p, safe="-_.!~*'()") for p in parts], separators=(",", ":")).replace(",", "|")

    items = [
        (payload(chrom, start, end, [value, *values[:i], *values[i + 1 :]]), [value])
        for chrom, start, end, values in records
        for i, value in enumerate(values)
        if _indexable(value)
    ]
    return ix_text(items)


def _prefix(word: bytes) -> bytes:
    return word[:PREFIX_SIZE].ljust(PREFIX_SIZE, b" ")


def _ixx(lines: list[bytes]) -> str:
    """The index into the .ix (kent's makeIxx): the first line, then, once BIN_SIZE bytes have passed since
    the last entry, the first line of the current line's prefix (when that prefix is new to the index)."""
    if not lines:
        return ""
    entries: list[tuple[bytes, int]] = []
    written_prefix = last_prefix = _prefix(lines[0].split(b" ", 1)[0])
    written_pos = start_prefix_pos = 0
    entries.append((written_prefix, 0))
    position = len(lines[0])
    for line in lines[1:]:
        prefix = _prefix(line.split(b" ", 1)[0])
        if prefix != last_prefix:
            start_prefix_pos = position
        if position - written_pos >= BIN_SIZE and prefix != written_prefix:
            entries.append((prefix, start_prefix_pos))
            written_pos, written_prefix = position, prefix
        last_prefix = prefix
        position += len(line)
    return "".join(f"{prefix.decode()}{pos:010X}\n" for prefix, pos in entries)


def write_trix(values: Iterable[str], bigbed: str | Path) -> tuple[Path, Path] | None:
    """Write the trix index of `values` beside the bigBed (each file atomically); None, and any old pair
    removed, when no value can be indexed."""
    ix, ixx = trix_paths(bigbed)
    ix_text, ixx_text = trix_text(values)
    if not ix_text:
        ix.unlink(missing_ok=True)
        ixx.unlink(missing_ok=True)
        return None
    write_text_atomic(ixx, ixx_text)
    write_text_atomic(ix, ix_text)
    return ix, ixx
