"""Name-search indexes of bigBeds (`formats.bigbed_index`): byte for byte the B+ trees of UCSC's
`bedToBigBed -extraIndex`, each entry pointing at the data block that holds its record, read by
`bigBedInfo -extraIndex`, and announced to UCSC by the hub's `searchIndex` line."""

from __future__ import annotations

import random
import struct
import zlib

import pandas as pd
import pybigtools
import pyBigWig
import pytest

from genometracks.browser.hub import HubTrack, write_hub
from genometracks.formats.bigbed import BedSchema, ExportError, write_bed_outputs, write_bigbed
from genometracks.formats.bigbed_index import (
    BigBedIndexError,
    _bpt_bytes,
    add_extra_indexes,
    extra_index_fields,
    find_named_records,
)
from tests.kent import assert_hub_clean, kent, needs_kent

SIZES = {"chrA": 10_000, "chrB": 10_000}
SCHEMA = BedSchema("hits", "test hits", (("string", "motif", "motif"), ("double", "pValue", "p")), search=("name", "motif"))


def random_records(n: int, seed: int) -> pd.DataFrame:
    """n sorted BED6+2 records whose names repeat (about two records per name) over two contigs."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        start = rng.randrange(0, 9_000)
        rows.append(
            {
                "chrom": rng.choice(["chrA", "chrB"]),
                "start": start,
                "end": start + rng.randrange(1, 50),
                "name": f"TSS_{rng.randrange(n // 2 + 1)}+",
                "score": rng.randrange(1001),
                "strand": rng.choice("+-"),
                "motif": rng.choice(["TATAAT", "TTGACA", "unmatched"]),
                "pValue": rng.random(),
            }
        )
    return pd.DataFrame(rows).sort_values(["chrom", "start"], kind="stable").reset_index(drop=True)


def records_in_block(path, offset: int, size: int) -> list[tuple[str, int, int, list[str]]]:
    """(chrom id as str, start, end, other fields) of each record of one compressed data block."""
    data = open(path, "rb").read()
    block = zlib.decompress(data[offset : offset + size])
    out, at = [], 0
    while at < len(block):
        chrom, start, end = struct.unpack_from("<III", block, at)
        stop = block.index(b"\0", at + 12)
        out.append((str(chrom), start, end, block[at + 12 : stop].decode().split("\t")))
        at = stop + 1
    return out


def tree_of(path) -> tuple[bytes, int]:
    """(file bytes, offset of the first extra index's B+ tree)."""
    data = open(path, "rb").read()
    extension = struct.unpack_from("<Q", data, 56)[0]
    listed = struct.unpack_from("<HHQ", data, extension)[2]
    return data, struct.unpack_from("<HHQIHH", data, listed)[2]


def leaf_items(data: bytes, tree: int) -> list[tuple[bytes, int, int]]:
    """Every (key, block offset, block size) of a B+ tree's leaves, left to right."""
    _, _, key_size, value_size, _ = struct.unpack_from("<IIIIQ", data, tree)
    items = []

    def walk(node: int) -> None:
        is_leaf, _, count = struct.unpack_from("<BBH", data, node)
        for i in range(count):
            if is_leaf:
                slot = node + 4 + i * (key_size + value_size)
                items.append((data[slot : slot + key_size].rstrip(b"\0"), *struct.unpack_from("<QQ", data, slot + key_size)))
            else:
                slot = node + 4 + i * (key_size + 8)
                walk(struct.unpack_from("<Q", data, slot + key_size)[0])

    walk(tree + 32)
    return items


@pytest.mark.parametrize("n", [1, 3, 700])
def test_every_name_finds_exactly_its_records_in_the_block_named(tmp_path, n):
    frame = random_records(n, seed=n)
    path = write_bigbed(frame, tmp_path / "hits.bb", SCHEMA, SIZES)
    assert extra_index_fields(path) == ["name", "motif"]
    for field, column in (("name", 0), ("motif", 3)):
        for value, expected in frame.groupby(field).size().items():
            blocks = find_named_records(path, field, value)
            assert len(blocks) == expected  # one entry per record, duplicates kept
            found = [r for offset, size in set(blocks) for r in records_in_block(path, offset, size) if r[3][column] == value]
            assert sorted((r[1], r[2]) for r in found) == sorted(
                zip(frame.loc[frame[field] == value, "start"], frame.loc[frame[field] == value, "end"])
            )
    assert find_named_records(path, "name", "TSS_absent") == [] and find_named_records(path, "name", "T") == []
    # the index is an addition: every reader still reads the same records
    with pyBigWig.open(str(path)) as bb:
        assert sum(len(bb.entries(c, 0, size) or []) for c, size in bb.chroms().items()) == n


def test_a_hand_made_index_points_each_name_at_its_block(tmp_path):
    frame = pd.DataFrame(
        {
            "chrom": ["chrA", "chrA", "chrB"],
            "start": [10, 30, 5],
            "end": [20, 40, 8],
            "name": ["b", "a", "b"],
            "score": [0, 0, 0],
            "strand": ["+", "-", "+"],
        }
    )
    path = write_bigbed(frame, tmp_path / "p.bb", BedSchema("p", "peaks"), {"chrA": 100, "chrB": 50})
    data, tree = tree_of(path)
    magic, block_size, key_size, value_size, count = struct.unpack_from("<IIIIQ", data, tree)
    assert (magic, block_size, key_size, value_size, count) == (0x78CA8C91, 256, 1, 16, 3)
    items = leaf_items(data, tree)
    assert [key for key, _, _ in items] == [b"a", b"b", b"b"]
    by_chrom = {}
    for key, offset, size in items:
        for chrom, start, end, rest in records_in_block(path, offset, size):
            if rest[0] == key.decode():
                by_chrom.setdefault(key, set()).add((chrom, start, end))
    assert by_chrom == {b"a": {("0", 30, 40)}, b"b": {("0", 10, 20), ("1", 5, 8)}}  # chrom ids: chrA 0, chrB 1


@needs_kent
@pytest.mark.parametrize(("n", "block_size"), [(3, 256), (70, 4), (700, 256), (1_500, 8), (17, 2)])
def test_trees_are_byte_identical_to_bedToBigBed(tmp_path, n, block_size):
    """The same (key, block) items laid out by our writer and by kent's: one, two, three and four levels."""
    frame = random_records(n, seed=block_size)
    bed = tmp_path / "r.bed"
    bed.write_text(frame[["chrom", "start", "end", "name", "score", "strand"]].to_csv(sep="\t", header=False, index=False))
    sizes = tmp_path / "r.sizes"
    sizes.write_text("".join(f"{c}\t{s}\n" for c, s in SIZES.items()))
    theirs = tmp_path / "kent.bb"
    result = kent("bedToBigBed", "-type=bed6", "-extraIndex=name", f"-blockSize={block_size}", "-itemsPerSlot=8", bed, sizes, theirs)
    assert result.returncode == 0, result.stderr
    data, tree = tree_of(theirs)
    items = leaf_items(data, tree)
    assert items == sorted(items) and len(items) == n
    ours = _bpt_bytes(items, block_size, tree)
    assert ours == data[tree : tree + len(ours)]
    # and ours, written over pybigtools' blocks, reads in kent's bigBedInfo
    mine = tmp_path / "ours.bb"
    writer = pybigtools.open(str(mine), "w")
    writer.write(
        SIZES,
        ((r.chrom, r.start, r.end, f"{r.name}\t{r.score}\t{r.strand}") for r in frame.itertuples()),
        autosql=BedSchema("p", "x").autosql(),
    )
    add_extra_indexes(mine, ["name"], block_size=block_size)
    info = kent("bigBedInfo", "-extraIndex", mine)
    assert info.returncode == 0 and f"name (field 4) with {n} items" in info.stdout, info.stdout
    assert kent("bigBedToBed", mine, "stdout").stdout.count("\n") == n
    for name in frame["name"].unique()[:20]:  # kent's tree and ours answer alike
        assert (
            len(find_named_records(theirs, "name", name))
            == len(find_named_records(mine, "name", name))
            == int((frame["name"] == name).sum())
        )


@needs_kent
def test_the_hub_announces_the_indexes_and_hubcheck_accepts_them(tmp_path):
    paths = write_bed_outputs(random_records(50, seed=3), tmp_path / "hits", SCHEMA, SIZES)
    fasta = tmp_path / "g.fa"
    fasta.write_text("".join(f">{c}\n{'ACGT' * (s // 4)}\n" for c, s in SIZES.items()))
    hub_txt = write_hub(
        tmp_path / "hub", "assembly", SIZES, [HubTrack("hits", paths["bigbed"], "hits", "Motif hits", html="motif_hits")], fasta=fasta
    )
    trackdb = next(hub_txt.parent.rglob("trackDb.txt")).read_text()
    assert "searchIndex name,motif\nsearchTrix hits.ix\n" in trackdb
    genome_dir = next(hub_txt.parent.rglob("trackDb.txt")).parent
    assert (genome_dir / "hits.ix").read_text() == paths["ix"].read_text() and (genome_dir / "hits.ixx").is_file()
    assert_hub_clean(hub_txt.parent)
    (genome_dir / "hits.ixx").unlink()
    from genometracks.browser.validate import validate_hub

    assert any("searchTrix index (.ixx) 'hits.ixx' not found" in p for p in validate_hub(hub_txt.parent))


def test_a_search_index_the_bigbed_lacks_is_a_hub_problem(tmp_path):
    """hubCheck does not look into the bigBed for searchIndex fields; our validator does."""
    from genometracks.browser.hub import HubError

    schema = BedSchema("h", "x", (("string", "motif", "m"),), search=("name",))
    paths = write_bed_outputs(random_records(20, seed=5).drop(columns="pValue"), tmp_path / "hits", schema, SIZES)
    fasta = tmp_path / "g.fa"
    fasta.write_text("".join(f">{c}\n{'ACGT' * (s // 4)}\n" for c, s in SIZES.items()))
    track = HubTrack("hits", paths["bigbed"], "hits", "Motif hits", html="motif_hits", settings={"searchIndex": "name,motif"})
    with pytest.raises(HubError, match="searchIndex names 'motif', which 'hits.bb' has no index on \\(indexed: name\\)"):
        write_hub(tmp_path / "hub", "assembly", SIZES, [track], fasta=fasta)


def test_misuse_is_one_clear_line(tmp_path):
    with pytest.raises(ExportError, match="cannot index 'pValue' for search; index string columns"):
        BedSchema("h", "x", (("double", "pValue", "p"),), search=("pValue",))
    path = write_bigbed(
        random_records(5, 1),
        tmp_path / "h.bb",
        BedSchema("h", "x", (("string", "motif", "m"), ("double", "pValue", "p")), search=()),
        SIZES,
    )
    assert extra_index_fields(path) == []
    with pytest.raises(BigBedIndexError, match="no extra index on 'name'"):
        find_named_records(path, "name", "x")
    with pytest.raises(BigBedIndexError, match=r"cannot index field 'score'|cannot index field 'chrom'"):
        add_extra_indexes(path, ["chrom"])
    add_extra_indexes(path, ["motif"])
    assert extra_index_fields(path) == ["motif"]
    with pytest.raises(BigBedIndexError, match="already has a header extension"):
        add_extra_indexes(path, ["name"])
    bad = tmp_path / "bad.bb"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(BigBedIndexError, match="not a little-endian bigBed"):
        extra_index_fields(bad)
    from genometracks.formats.bigbed_index import searchable_fields

    assert searchable_fields(bad) == [] and searchable_fields(path) == ["motif"]  # hubs and views go on without search


def ucsc_trix_lookup(ix_path, ixx_path, term: str) -> list[str] | None:
    """What kent's trix.c gives for an exact word: start at the last .ixx entry whose 5-letter prefix is not
    above the word's, read .ix lines until they pass the word."""
    word = term.lower()
    prefix = word[:5].ljust(5)
    start = 0
    for line in ixx_path.read_text().splitlines():
        if prefix < line[:5]:
            break
        start = int(line[5:], 16)
    for line in ix_path.read_bytes()[start:].decode().splitlines():
        key, *ids = line.split(" ")
        if key == word:
            return [i.split(",")[0] for i in ids]
        if key > word:
            return None
    return None


def igv_trix_lookup(ix_path, ixx_path, term: str) -> list[str] | None:
    """What igv.js's Trix.search gives for an exact word: the .ixx picks a 64 KiB window of the .ix (the
    last entry whose prefix sorts before the word), the window's lines are scanned for the word."""
    word = term.lower()
    start = 0
    for line in ixx_path.read_text().splitlines():
        prefix, position = line[:-10], int(line[-10:], 16)
        if prefix[: min(len(prefix), len(word))] < word:
            start = position
    window = ix_path.read_bytes()[start : start + 65536].decode(errors="replace")
    for line in window[: window.rfind("\n")].split("\n"):
        key, *ids = line.split(" ")
        if key == word:
            return [i.split(",")[0] for i in ids]
    return None


def test_trix_words_find_every_name_in_any_case(tmp_path):
    from genometracks.formats.trix import trix_text, write_trix

    ix, ixx = trix_text(["TSS_190+", "TSS_190-", "L0H2_RpoD-10", "sigma70", "TSS_190+", "two words", "a,b", "Sigma70"])
    # one word per value, lower-cased, pointing at the values that spell it (byte order); no spaces or commas
    assert ix == "l0h2_rpod-10 L0H2_RpoD-10,1\nsigma70 Sigma70,1 sigma70,1\ntss_190+ TSS_190+,1\ntss_190- TSS_190-,1\n"
    assert ixx == "l0h2_0000000000\n"
    # a big index (several 64 KiB windows): UCSC's reader finds every name; igv.js reads 64 KiB from the
    # .ixx entry and so misses words deep in a block of one 5-letter prefix larger than that ('tss_1...'),
    # but finds every mixed-case name here, and an upper-case TSS call straight from the B+ tree
    names = [f"TSS_{p}{s}" for p in range(1, 15000, 3) for s in "+-"] + [f"L{i % 6}H{i % 5}_Motif{i}" for i in range(800)]
    written = write_trix(names, tmp_path / "calls.bb")
    assert written == (tmp_path / "calls.ix", tmp_path / "calls.ixx")
    assert written[0].stat().st_size > 2 * 65536 and len(written[1].read_text().splitlines()) >= 3
    for name in names[::3] + names[-2:]:
        assert ucsc_trix_lookup(*written, name.swapcase()) == [name], name
    for name in names[-800:]:
        assert igv_trix_lookup(*written, name.swapcase()) == [name], name
    assert ucsc_trix_lookup(*written, "TSS_2+") is None and igv_trix_lookup(*written, "TSS_2+") is None
    assert write_trix(["a b"], tmp_path / "calls.bb") is None and not written[0].exists()  # nothing to index: none left
