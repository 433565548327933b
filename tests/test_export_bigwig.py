"""bigWig writer: exact float32 values back through pyBigWig, every base covered, zoom levels."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pytest

from genometracks.formats.bigwig import ExportError, read_bigwig, value_runs, write_bigwig
from tests.kent import kent, needs_kent


def test_value_runs_by_hand():
    starts, ends, values = value_runs(np.array([0, 0, 0, 0.5, 0.5, 1, 1, 1, 1, 0.25], dtype=np.float32))
    assert starts.tolist() == [0, 3, 5, 9]
    assert ends.tolist() == [3, 5, 9, 10]
    assert values.tolist() == [0, 0.5, 1, 0.25]


def test_runs_written_as_spans_cover_every_base(tmp_path):
    a = np.repeat(np.float32([0, 0.5, 1, 0.25]), [30, 20, 40, 10])
    short = np.float32([0, 0, 0.5, 1])  # runs too short to pay: one record per base
    path = write_bigwig(tmp_path / "tss.plus.bw", {"a": 100, "b": 4}, {"a": a, "b": short})
    bw = pyBigWig.open(str(path))
    assert bw.chroms() == {"a": 100, "b": 4}
    assert bw.intervals("a") == ((0, 30, 0.0), (30, 50, 0.5), (50, 90, 1.0), (90, 100, 0.25))
    assert bw.intervals("b") == ((0, 1, 0.0), (1, 2, 0.0), (2, 3, 0.5), (3, 4, 1.0))
    bw.close()


@pytest.mark.parametrize("layout", ["spans", "per base"])
def test_gaps_leave_nan_bases_out_and_read_back_as_nan(tmp_path, layout):
    from tests.kent import HAVE_KENT, kent

    if layout == "spans":
        values = np.repeat(np.float32([np.nan, 0.5, -2.0, np.nan, 0.0, np.nan]), [5, 30, 20, 10, 30, 5])
        expected = [(5, 35, 0.5), (35, 55, -2.0), (65, 95, 0.0)]
    else:
        values = np.float32(np.arange(100) * 0.01 - 0.5)
        values[:3] = values[50:52] = values[97:] = np.nan
        kept = np.flatnonzero(~np.isnan(values))
        expected = [(int(i), int(i) + 1, float(values[i])) for i in kept]
    path = write_bigwig(tmp_path / "gaps.bw", {"a": 100}, {"a": values}, gaps=True)
    with pyBigWig.open(str(path)) as bw:
        assert [(a, b, pytest.approx(v)) for a, b, v in bw.intervals("a")] == expected
    np.testing.assert_array_equal(read_bigwig(path, "a"), values)  # NaN where the file has no data
    if HAVE_KENT:  # UCSC's reader sees the same records
        assert kent("bigWigToBedGraph", path, tmp_path / "gaps.bedGraph").returncode == 0
        rows = [line.split("\t") for line in (tmp_path / "gaps.bedGraph").read_text().splitlines()]
        covered = sorted(b for _, a, e, _ in rows for b in range(int(a), int(e)))
        assert covered == sorted(b for a, e, _ in expected for b in range(a, e))
    with pytest.raises(ExportError, match="must be finite"):  # without gaps=True a NaN is refused
        write_bigwig(tmp_path / "no.bw", {"a": 100}, {"a": values})
    inf = values.copy()
    inf[10] = np.inf
    with pytest.raises(ExportError, match="position 10"):  # an infinity is refused either way
        write_bigwig(tmp_path / "no.bw", {"a": 100}, {"a": inf}, gaps=True)


def test_continuous_values_exact_on_both_strands(tmp_path):
    rng = np.random.default_rng(7)
    sizes = {"chr1": 1001, "plasmid": 37}
    plus = {c: rng.random(n).astype(np.float32) for c, n in sizes.items()}
    minus = {c: rng.random(n).astype(np.float32) for c, n in sizes.items()}
    write_bigwig(tmp_path / "tss.plus.bw", sizes, plus)
    write_bigwig(tmp_path / "tss.minus.bw", sizes, minus)
    for name, values in (("tss.plus.bw", plus), ("tss.minus.bw", minus)):
        bw = pyBigWig.open(str(tmp_path / name))
        for chrom, n in sizes.items():
            intervals = np.array(bw.intervals(chrom))
            # contiguous from 0 to n: every base has a value
            assert intervals[0, 0] == 0 and intervals[-1, 1] == n
            assert np.array_equal(intervals[1:, 0], intervals[:-1, 1])
            got = np.asarray(bw.values(chrom, 0, n, numpy=True), dtype=np.float32)
            assert np.array_equal(got, values[chrom])  # bit-exact float32
            assert np.array_equal(read_bigwig(tmp_path / name, chrom), values[chrom])
        bw.close()


def test_zoom_levels_present(tmp_path):
    values = np.tile(np.float32([0.1, 0.9]), 50_000)
    write_bigwig(tmp_path / "z.bw", {"c": values.size}, {"c": values})
    bw = pyBigWig.open(str(tmp_path / "z.bw"))
    assert bw.header()["nLevels"] >= 1
    assert bw.stats("c", 0, values.size, type="mean", exact=True)[0] == pytest.approx(0.5, abs=1e-6)
    assert bw.stats("c", 0, values.size, type="max")[0] == pytest.approx(0.9, abs=1e-6)  # from a zoom level
    bw.close()


@pytest.mark.parametrize(
    "sizes, values, message",
    [
        ({"a": 4, "b": 3}, {"a": np.zeros(4, np.float32)}, "no values for contig"),
        ({"a": 4}, {"a": np.zeros(5, np.float32)}, "has 4 nt but its values have shape"),
        ({"a": 4}, {"a": np.zeros(4, np.float32), "z": np.zeros(1, np.float32)}, "not in chrom_sizes"),
        ({"a": 4}, {"a": np.array([0, 1, np.nan, 0], np.float32)}, "position 2"),
    ],
)
def test_bad_input_raises_and_writes_nothing(tmp_path, sizes, values, message):
    with pytest.raises(ExportError, match=message):
        write_bigwig(tmp_path / "bad.bw", sizes, values)
    assert list(tmp_path.iterdir()) == []


def test_read_unknown_contig(tmp_path):
    write_bigwig(tmp_path / "x.bw", {"a": 3}, {"a": np.ones(3, np.float32)})
    with pytest.raises(ExportError, match="'b' not in the bigWig"):
        read_bigwig(tmp_path / "x.bw", "b")


@needs_kent
@pytest.mark.parametrize("values", [[-0.9, -0.25, -0.001], [0.2, 0.7, 0.001], [-0.5, 0.0, 0.75]])
def test_header_summary_min_and_max_are_the_data(tmp_path, values):
    # libBigWig starts its running maximum at DBL_MIN: a negative-only track (the IGV minus strand,
    # negated) claimed max 2.2e-308, which UCSC's bigWigInfo printed as 0
    track = np.repeat(np.float32(values), 1000)
    path = write_bigwig(tmp_path / "t.bw", {"c": track.size}, {"c": track})
    info = kent("bigWigInfo", path)
    assert info.returncode == 0, info.stderr
    assert f"min: {float(track.min()):.6f}" in info.stdout and f"max: {float(track.max()):.6f}" in info.stdout
    with pyBigWig.open(str(path)) as bw:  # the data untouched
        np.testing.assert_array_equal(bw.values("c", 0, track.size, numpy=True), track)
