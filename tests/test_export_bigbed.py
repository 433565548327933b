"""bigBed (pybigtools + autoSql) and bed.gz/tbi (pysam) writers, read back by pyBigWig, pybigtools, pysam."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pybigtools
import pyBigWig
import pysam
import pytest

from genometracks.formats.bigbed import BedSchema, ExportError, bigbed_field_counts, sort_bed_records, write_bed_outputs

SIZES = {"chrA": 1000, "chrB": 500}
SCHEMA = BedSchema("motifHits", "Attention-head motif hits", (("float", "pvalue", "Match p-value"), ("string", "motif", "Motif consensus")))


def records() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chrom": ["chrA", "chrA", "chrA", "chrB"],
            "start": [10, 10, 400, 0],
            "end": [16, 20, 406, 500],
            "name": ["L1H2_a", "L1H2_b", "L0H1_c", "whole"],
            "score": [1000, 0, 517, 3],
            "strand": ["+", "-", "+", "."],
            "pvalue": [1e-5, 0.25, 0.5, 1.0],
            "motif": ["TATAAT", "TTGACA", "ACGT", "N"],
        }
    )


def test_autosql_text():
    text = SCHEMA.autosql()
    lines = text.splitlines()
    assert lines[0] == "table motifHits" and lines[2] == "(" and lines[-1] == ")"
    assert [ln.split(";")[0] for ln in lines[3:-1]] == [
        "string chrom",
        "uint chromStart",
        "uint chromEnd",
        "string name",
        "uint score",
        "char[1] strand",
        "float pvalue",
        "string motif",
    ]
    assert SCHEMA.hub_type == "bigBed 6 +" and BedSchema("p", "x").hub_type == "bigBed 6"


def test_bigbed_entries_and_autosql_read_back(tmp_path):
    paths = write_bed_outputs(records(), tmp_path / "motif_hits", SCHEMA, SIZES)
    assert paths["bigbed"].name == "motif_hits.bb"
    bb = pyBigWig.open(str(paths["bigbed"]))
    assert bb.isBigBed() and bb.chroms() == SIZES
    assert bb.entries("chrA", 0, 1000) == [
        (10, 16, "L1H2_a\t1000\t+\t1e-05\tTATAAT"),
        (10, 20, "L1H2_b\t0\t-\t0.25\tTTGACA"),
        (400, 406, "L0H1_c\t517\t+\t0.5\tACGT"),
    ]
    assert bb.entries("chrB", 0, 500) == [(0, 500, "whole\t3\t.\t1\tN")]
    assert bb.SQL().decode() == SCHEMA.autosql()
    bb.close()
    reader = pybigtools.open(str(paths["bigbed"]))
    assert list(reader.records("chrA", 399, 401)) == [(400, 406, "L0H1_c", "517", "+", "0.5", "ACGT")]
    assert bigbed_field_counts(paths["bigbed"]) == (8, 6)  # 6 standard BED + 2 extra


def test_integer_columns_that_arrive_as_floats_are_written_as_integers(tmp_path):
    # pandas makes an int column float64 after NaN handling or arithmetic: '%.6g' wrote 1234567.0 as
    # 1.23457e+06, a changed value that kent's bedToBigBed refuses for an int field
    schema = BedSchema("counts", "test", (("uint", "reads", "read count"), ("int", "offset", "signed offset")))
    rows = pd.DataFrame(
        {
            "chrom": ["chrA"],
            "start": [10],
            "end": [20],
            "name": ["a"],
            "score": [5],
            "strand": ["+"],
            "reads": [1234567.0],
            "offset": [-2500000.0],
        }
    )
    paths = write_bed_outputs(rows, tmp_path / "counts", schema, SIZES)
    with pyBigWig.open(str(paths["bigbed"])) as bb:
        assert bb.entries("chrA", 0, 1000) == [(10, 20, "a\t5\t+\t1234567\t-2500000")]
    with pysam.TabixFile(str(paths["bed_gz"])) as tabix:
        assert list(tabix.fetch("chrA")) == ["chrA\t10\t20\ta\t5\t+\t1234567\t-2500000"]


def test_bed_gz_tabix_fetch(tmp_path):
    paths = write_bed_outputs(records(), tmp_path / "motif_hits", SCHEMA, SIZES)
    assert paths["tbi"].name == "motif_hits.bed.gz.tbi"
    tabix = pysam.TabixFile(str(paths["bed_gz"]), index=str(paths["tbi"]))
    assert sorted(tabix.contigs) == ["chrA", "chrB"]
    assert list(tabix.fetch("chrA", 15, 17)) == ["chrA\t10\t16\tL1H2_a\t1000\t+\t1e-05\tTATAAT", "chrA\t10\t20\tL1H2_b\t0\t-\t0.25\tTTGACA"]
    assert list(tabix.fetch("chrA", 16, 20)) == ["chrA\t10\t20\tL1H2_b\t0\t-\t0.25\tTTGACA"]
    assert len(list(tabix.fetch("chrB"))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "motif_hits.bb",
        "motif_hits.bed.gz",
        "motif_hits.bed.gz.tbi",
        "motif_hits.ix",
        "motif_hits.ixx",
    ]


def test_plain_bed6_and_input_forms(tmp_path):
    schema = BedSchema("tssPeaks", "TSS peaks")
    rows = [{"chrom": "chrA", "chromStart": 5, "chromEnd": 9, "name": "p1", "score": 10, "strand": "-"}]
    paths = write_bed_outputs(rows, tmp_path / "peaks", schema, SIZES)
    assert bigbed_field_counts(paths["bigbed"]) == (6, 6)
    array = np.array(
        [("chrA", 5, 9, "p1", 10, "-")],
        dtype=[("chrom", "U8"), ("start", "i8"), ("end", "i8"), ("name", "U8"), ("score", "i8"), ("strand", "U1")],
    )
    again = write_bed_outputs(array, tmp_path / "peaks2", schema, SIZES)
    assert paths["bigbed"].read_bytes() == again["bigbed"].read_bytes()


def test_underscore_table_name_keeps_all_fields(tmp_path):
    rows = [{"chrom": "chrA", "chromStart": 5, "chromEnd": 9, "name": "p1", "score": 10, "strand": "-"}]
    paths = write_bed_outputs(rows, tmp_path / "peaks", BedSchema("tss_peaks", "TSS peaks"), SIZES)
    assert bigbed_field_counts(paths["bigbed"]) == (6, 6)


def test_sort_bed_records_byte_order():
    frame = records().iloc[[3, 2, 1, 0]]
    frame.loc[len(frame)] = ["Z", 1, 2, "x", 0, "+", 0.1, "A"]  # upper case sorts before lower in bytes
    out = sort_bed_records(frame)
    assert list(zip(out["chrom"], out["start"], out["end"])) == [
        ("Z", 1, 2),
        ("chrA", 10, 16),
        ("chrA", 10, 20),
        ("chrA", 400, 406),
        ("chrB", 0, 500),
    ]


def _with(column, index, value):
    frame = records()
    frame[column] = frame[column].astype(object)
    frame.loc[index, column] = value
    return frame


@pytest.mark.parametrize(
    "frame, message",
    [
        (records().iloc[[0, 2, 1, 3]], r"record 2 \(chrA:10-20 'L1H2_b'\) is not sorted"),
        (records().iloc[[3, 0, 1, 2]], r"record 1 \(chrA:10-16 'L1H2_a'\) is not sorted"),
        (_with("end", 3, 501), "end <= contig length 500"),
        (_with("start", 0, 16), "need 0 <= start < end"),
        (_with("chrom", 3, "chrC"), "contig not in the genome"),
        (_with("score", 1, 1001), "score 1001 outside 0..1000"),
        (_with("score", 1, 2.5), "score 2.5 is not an integer"),
        (_with("name", 2, "two words"), "name must be non-empty without whitespace"),
        (_with("name", 2, "é" * 128), r"record 2 \(chrA:400-406 'éé.*name is longer than 255 bytes"),
        (_with("strand", 2, "?"), "strand '\\?'"),
        (_with("motif", 2, ""), "column motif value"),
        (records().drop(columns="pvalue"), r"lack column\(s\) \['pvalue'\]"),
        (records().iloc[[]], "no records"),
    ],
)
def test_bad_records_raise_and_write_nothing(tmp_path, frame, message):
    with pytest.raises(ExportError, match=message):
        write_bed_outputs(frame, tmp_path / "hits", SCHEMA, SIZES)
    assert list(tmp_path.iterdir()) == []


def test_bad_schema():
    with pytest.raises(ExportError, match="type 'text'"):
        BedSchema("x", "y", (("text", "note", "n"),))
    with pytest.raises(ExportError, match="must be an identifier"):
        BedSchema("x", "y", (("float", "score", "dup"),))
