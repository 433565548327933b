"""Name search in a bigBed: the extra B+ tree indexes that `bedToBigBed -extraIndex=name` writes, added to
a finished bigBed (pybigtools writes none), and read back.

UCSC's browser (trackDb `searchIndex name`), `bigBedNamedItems` and igv.js look an item up by a field's
value through them. Layout (bigBed version 4, all little-endian; offsets are absolute file offsets):
- header byte 56: extensionOffset (u64) → extension header: size u16 (= 64), extraIndexCount u16,
  extraIndexListOffset u64, 52 reserved bytes;
- the index list: per index, type u16 (0 = B+ tree), fieldCount u16 (1), fileOffset u64, 4 reserved
  bytes, then fieldId u16 (0-based column, chrom = 0, name = 3) and 2 reserved bytes (20 bytes);
- each B+ tree (kent's bPlusTree.c): magic, blockSize, keySize (the longest value), valSize (16), item
  count, then its nodes from the root down, every node padded to blockSize slots; a leaf slot holds a
  value zero-padded to keySize and the (offset, size) of the compressed data block holding its record,
  one slot per record, in byte order of the values.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["BigBedIndexError", "add_extra_indexes", "autosql_field_names", "extra_index_fields", "find_named_records", "searchable_fields"]

_BIGBED_MAGIC = 0x8789F2EB
_RTREE_MAGIC = 0x2468ACE0
_BPT_MAGIC = 0x78CA8C91
_EXTENSION_SIZE = 64
_INDEX_ENTRY_SIZE = 20
_BLOCK_HEADER = 4  # isLeaf u8, reserved u8, childCount u16
_VALUE_SIZE = 16  # data block offset u64, size u64


class BigBedIndexError(ValueError):
    """A bigBed cannot take (or does not have) the asked index; the message names the file and the fix."""


def _header(data: bytes, path: Path) -> dict[str, int]:
    if len(data) < 64 or struct.unpack_from("<I", data)[0] != _BIGBED_MAGIC:
        raise BigBedIndexError(f"{path}: not a little-endian bigBed file (magic number); write it with genometracks.formats.bigbed")
    names = (
        "version",
        "zoom_levels",
        "chrom_tree",
        "data",
        "index",
        "field_count",
        "defined",
        "autosql",
        "summary",
        "uncompress",
        "extension",
    )
    header = dict(zip(names, struct.unpack_from("<HHQQQHHQQIQ", data, 4)))
    if header["version"] < 4:
        raise BigBedIndexError(f"{path}: bigBed version {header['version']} has no header extension (needs 4)")
    return header


def _data_blocks(data: bytes, index_offset: int) -> Iterator[tuple[int, int]]:
    """(offset, size) of every data block, in file order, from the R-tree's leaves."""
    (magic,) = struct.unpack_from("<I", data, index_offset)
    if magic != _RTREE_MAGIC:
        raise BigBedIndexError(f"R-tree index at byte {index_offset}: bad magic {magic:#x}")
    blocks: list[tuple[int, int]] = []
    pending = [index_offset + 48]
    while pending:
        node = pending.pop()
        is_leaf, _, count = struct.unpack_from("<BBH", data, node)
        if is_leaf:
            for i in range(count):
                blocks.append(struct.unpack_from("<QQ", data, node + _BLOCK_HEADER + 32 * i + 16))
        else:
            pending += [struct.unpack_from("<Q", data, node + _BLOCK_HEADER + 24 * i + 16)[0] for i in range(count)]
    return iter(sorted(blocks))


def _block_values(data: bytes, offset: int, size: int, compressed: bool, fields: Sequence[int]) -> Iterator[tuple[bytes, ...]]:
    """The values of `fields` (0-based BED columns, each >= 3) of every record in one data block."""
    block = zlib.decompress(data[offset : offset + size]) if compressed else data[offset : offset + size]
    at = 0
    while at < len(block):
        end = block.index(b"\0", at + 12)
        rest = block[at + 12 : end].split(b"\t")
        yield tuple(rest[f - 3] if f - 3 < len(rest) else b"" for f in fields)
        at = end + 1


def _levels(block_size: int, count: int) -> int:
    levels = 1
    while count > block_size:
        count = (count + block_size - 1) // block_size
        levels += 1
    return levels


def _bpt_bytes(items: list[tuple[bytes, int, int]], block_size: int, start: int) -> bytes:
    """A B+ tree over `items` (key, block offset, block size), sorted by key, written from file offset
    `start` exactly as kent's bptFileBulkIndexToOpenFile lays it out: header, the non-leaf levels from the
    root down (each slot: the first key under it and its child's offset), then the leaves; every node
    padded to `block_size` slots with zeros."""
    key_size = max(1, max(len(key) for key, _, _ in items))
    count = len(items)
    out = bytearray(struct.pack("<IIIIQII", _BPT_MAGIC, block_size, key_size, _VALUE_SIZE, count, 0, 0))
    index_block = _BLOCK_HEADER + block_size * (key_size + 8)
    leaf_block = _BLOCK_HEADER + block_size * (key_size + _VALUE_SIZE)
    level_start = start + len(out)
    for level in range(_levels(block_size, count) - 1, 0, -1):
        per_slot = block_size**level  # items under one slot of a node at this level
        per_node = per_slot * block_size
        nodes = (count + per_node - 1) // per_node
        child = level_start + nodes * index_block  # the next level starts where this one ends
        child_block = leaf_block if level == 1 else index_block
        for first in range(0, count, per_node):
            slots = range(first, min(first + per_node, count), per_slot)
            out += struct.pack("<BBH", 0, 0, len(slots))
            for j in slots:
                out += items[j][0].ljust(key_size, b"\0") + struct.pack("<Q", child)
                child += child_block
            out += bytes((block_size - len(slots)) * (key_size + 8))
        level_start += nodes * index_block
    for first in range(0, count, block_size):
        chunk = items[first : first + block_size]
        out += struct.pack("<BBH", 1, 0, len(chunk))
        for key, offset, size in chunk:
            out += key.ljust(key_size, b"\0") + struct.pack("<QQ", offset, size)
        out += bytes((block_size - len(chunk)) * (key_size + _VALUE_SIZE))
    return bytes(out)


def autosql_field_names(text: str) -> list[str]:
    """Field names of an autoSql table, in order: each declaration `type name;` between its parentheses
    (quoted comments, which may hold ';' or '(', left out)."""
    bare = re.sub(r'"[^"]*"', '""', text)
    if "(" not in bare or ")" not in bare:
        return []
    body = bare[bare.index("(") + 1 : bare.rindex(")")]
    return [m.group(1) for m in re.finditer(r"[A-Za-z_][\w\[\]]*(?:\s+unsigned)?\s+([A-Za-z_]\w*)\s*;", body)]


def _field_names(data: bytes, header: dict[str, int]) -> list[str]:
    """Column names from the embedded autoSql (chrom, chromStart, chromEnd, name, ...)."""
    if not header["autosql"]:
        return ["chrom", "chromStart", "chromEnd", "name", "score", "strand"][: header["field_count"]]
    return autosql_field_names(data[header["autosql"] : data.index(b"\0", header["autosql"])].decode(errors="replace"))


def add_extra_indexes(path: str | Path, fields: Sequence[str], block_size: int = 256) -> None:
    """Append a B+ tree index on each of `fields` (autoSql column names, e.g. 'name') to the bigBed
    `path`, in place (call it on a temporary file before renaming it into place), as
    `bedToBigBed -extraIndex=name,...` would. The bigBed must have no header extension yet."""
    path = Path(path)
    data = path.read_bytes()
    header = _header(data, path)
    if header["extension"]:
        raise BigBedIndexError(f"{path}: already has a header extension; write the bigBed afresh before indexing it")
    names = _field_names(data, header)
    ids = []
    for field in fields:
        if field not in names or names.index(field) < 3:
            raise BigBedIndexError(f"{path}: cannot index field {field!r}; index one of {names[3:]}")
        ids.append(names.index(field))
    items: list[list[tuple[bytes, int, int]]] = [[] for _ in ids]
    for offset, size in _data_blocks(data, header["index"]):
        for values in _block_values(data, offset, size, header["uncompress"] > 0, ids):
            for found, value in zip(items, values):
                found.append((value, offset, size))
    if not items or not items[0]:
        raise BigBedIndexError(f"{path}: no records to index")
    # extension header, index list, then the trees (kent's order: a reader that reads the list in one
    # generous range, as igv.js does, finds bytes after it)
    extension = len(data)
    index_list = extension + _EXTENSION_SIZE
    tail = bytearray(struct.pack("<HHQ", _EXTENSION_SIZE, len(ids), index_list) + bytes(_EXTENSION_SIZE - 12))
    trees_start = index_list + _INDEX_ENTRY_SIZE * len(ids)
    trees = bytearray()
    for found, field_id in zip(items, ids):
        found.sort()
        tree = trees_start + len(trees)
        trees += _bpt_bytes(found, block_size, tree)
        tail += struct.pack("<HHQIHH", 0, 1, tree, 0, field_id, 0)
    tail += trees
    with open(path, "r+b") as handle:
        handle.seek(0, 2)
        handle.write(tail)
        handle.seek(56)
        handle.write(struct.pack("<Q", extension))


def extra_index_fields(path: str | Path) -> list[str]:
    """The autoSql names of the fields a bigBed has extra (name-search) indexes on, in file order."""
    path = Path(path)
    data = path.read_bytes()
    header = _header(data, path)
    return [names for names, _ in _indexes(data, header, path)]


def searchable_fields(path: str | Path) -> list[str]:
    """`extra_index_fields`, or [] for a bigBed whose indexes cannot be read (a big-endian or version 3 file
    from elsewhere goes into a hub or a view unsearchable rather than stopping it)."""
    try:
        return extra_index_fields(path)
    except (BigBedIndexError, struct.error, IndexError, ValueError):
        return []


def _indexes(data: bytes, header: dict[str, int], path: Path) -> list[tuple[str, int]]:
    """(field name, B+ tree offset) of each extra index; a list that does not fit the file raises."""
    if not header["extension"]:
        return []
    if header["extension"] + 12 > len(data):
        raise BigBedIndexError(f"{path}: header extension at byte {header['extension']} lies past the end ({len(data)} bytes): truncated?")
    _, count, listed = struct.unpack_from("<HHQ", data, header["extension"])
    if listed + _INDEX_ENTRY_SIZE * count > len(data):
        raise BigBedIndexError(f"{path}: its {count} extra index(es) at byte {listed} lie past the end ({len(data)} bytes): truncated?")
    names = _field_names(data, header)
    out = []
    for i in range(count):
        _, _, tree, _, field_id, _ = struct.unpack_from("<HHQIHH", data, listed + _INDEX_ENTRY_SIZE * i)
        if field_id >= len(names) or tree + 32 > len(data):
            raise BigBedIndexError(f"{path}: extra index {i} (field {field_id}, tree at byte {tree}) does not fit the file")
        out.append((names[field_id], tree))
    return out


def find_named_records(path: str | Path, field: str, value: str) -> list[tuple[int, int]]:
    """(offset, size) of the data blocks the `field` index lists for `value`, found by walking the B+ tree
    from its root as kent's bptFileFindMultiple does (a check of the index, not a search engine)."""
    path = Path(path)
    data = path.read_bytes()
    header = _header(data, path)
    indexes = dict(_indexes(data, header, path))
    if field not in indexes:
        raise BigBedIndexError(f"{path}: no extra index on {field!r} (indexes: {list(indexes) or 'none'})")
    tree = indexes[field]
    magic, _, key_size, value_size, _ = struct.unpack_from("<IIIIQ", data, tree)
    if magic != _BPT_MAGIC:
        raise BigBedIndexError(f"{path}: B+ tree of {field!r} at byte {tree}: bad magic {magic:#x}")
    key = value.encode()
    if len(key) > key_size:
        return []
    key = key.ljust(key_size, b"\0")
    found: list[tuple[int, int]] = []

    def walk(node: int) -> None:
        is_leaf, _, count = struct.unpack_from("<BBH", data, node)
        at = node + _BLOCK_HEADER
        if is_leaf:
            for i in range(count):
                slot = at + i * (key_size + value_size)
                if data[slot : slot + key_size] == key:
                    found.append(struct.unpack_from("<QQ", data, slot + key_size))
            return
        slots = [
            (
                data[at + i * (key_size + 8) : at + i * (key_size + 8) + key_size],
                struct.unpack_from("<Q", data, at + i * (key_size + 8) + key_size)[0],
            )
            for i in range(count)
        ]
        for i, (first, child) in enumerate(slots):  # a child may hold the key if the next child's first key is >= it
            following = slots[i + 1][0] if i + 1 < count else None
            if first <= key and (following is None or following >= key):
                walk(child)

    walk(tree + 32)
    return found
