"""Promotech comparison on a hand-made region where every bin, score and metric is known.

Region c:[100, 220) → three 40-nt bins per strand: [100,140) [140,180) [180,220).
Labels: '+' 105 (bin 0), '+' 185 (bin 2), '-' 150 (bin 1); '+' 50 and '-' 300 lie outside.
Promotech windows (start, end = start+39, its +1 at end on '+', at start on '-'):
  '+' 66 (+1 105) 0.9 → + bin 0; '+' 120 (+1 159) 0.7 and '+' 121 (+1 160) 0.65 → + bin 1 (max 0.7);
  '-' 150 (+1 150) 0.8 → - bin 1; '-' 195 (+1 195) 0.62 → - bin 2; '+' 10 (+1 49) outside; chrom d ignored.
So Promotech bins + [0.9, 0.7, 0], - [0, 0.8, 0.62] against labels + [1, 0, 1], - [0, 1, 0].
genometracks: + p[104]=0.3 p[150]=0.5 p[185]=0.9 (p[99], p[220] outside), - m[100]=0.2 m[151]=0.6 m[219]=0.1
→ bins + [0.3, 0.5, 0.9], - [0.2, 0.6, 0.1].
"""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from genometracks.genome.intervals import SiteSet
from genometracks.report.compare import (
    PromotechError,
    bin_max,
    compare_with_promotech,
    read_promotech,
    write_comparison,
)
from tests.conftest import ECOLI, needs_ecoli

REGION = ("c", 100, 220)
ROWS = [
    ("c", 66, "0.9", "+"),
    ("c", 120, "0.7", "+"),
    ("c", 121, "0.65", "+"),
    ("c", 150, "0.8", "-"),
    ("c", 195, "0.62", "-"),
    ("c", 10, "0.95", "+"),
    ("d", 66, "0.99", "+"),
]


def write_promotech(path, rows=ROWS, width=40):
    lines = ["chrom\tstart\tend\tscore\tstrand\tsequence"]
    lines += [f"{c}\t{s}\t{s + width - 1}\t{sc}\t{st}\t{'A' * width}" for c, s, sc, st in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def sites() -> SiteSet:
    return SiteSet(["c"] * 5, [105, 185, 150, 50, 300], ["+", "+", "-", "+", "-"], source="hand")


def probs(n: int = 400) -> dict[str, np.ndarray]:
    plus, minus = np.zeros(n), np.zeros(n)
    plus[[104, 150, 185, 99, 220]] = [0.3, 0.5, 0.9, 0.99, 0.99]
    minus[[100, 151, 219]] = [0.2, 0.6, 0.1]
    return {"+": plus, "-": minus}


@pytest.fixture
def result(tmp_path):
    return compare_with_promotech(probs(), sites(), write_promotech(tmp_path / "pt.tsv"), REGION)


def test_window_counts_and_auc(result):
    assert result["windows"] == {"n": 6, "positive": 3, "promotech_listed": 4}
    pt, gt = result["tools"]["promotech"], result["tools"]["genometracks"]
    # Promotech: 0.9 T, 0.8 T, 0.7 F, 0.62 F, then 0 (1 T, 1 F tied): AP = 1/3 + 1/3 + 1/3 * 1/2
    assert pt["pr_auc"] == pytest.approx(5 / 6)
    assert pt["roc_auc"] == pytest.approx(6.5 / 9)
    assert pt["promotech_recall"] == pytest.approx(2 / 3)
    assert pt["pr_auc_to_promotech_recall"] == pytest.approx(2 / 3)
    # genometracks: 0.9 T, 0.6 T, 0.5 F, 0.3 T, 0.2 F, 0.1 F: AP = 1/3 + 1/3 + 1/3 * 3/4
    assert gt["pr_auc"] == pytest.approx(11 / 12)
    assert gt["roc_auc"] == pytest.approx(8 / 9)
    assert gt["pr_auc_to_promotech_recall"] == pytest.approx(2 / 3)


def test_operating_points(result):
    calls = {(c["tool"], c["rule"].split()[0]): c for c in result["calls"]}
    published = calls[("promotech", "published")]
    assert (published["n_calls"], published["tp"]) == (4, 2)
    assert published["precision"] == pytest.approx(0.5) and published["recall"] == pytest.approx(2 / 3)
    best_pt = calls[("promotech", "best")]
    assert best_pt["threshold"] == pytest.approx(0.8) and best_pt["f1"] == pytest.approx(0.8)
    best_gt = calls[("genometracks", "best")]
    assert best_gt["threshold"] == pytest.approx(0.3)
    assert (best_gt["n_calls"], best_gt["tp"]) == (4, 3) and best_gt["f1"] == pytest.approx(6 / 7)
    top = calls[("genometracks", "score")]
    assert top["n_calls"] == 4 and top["precision"] == pytest.approx(0.75)


def test_validation_threshold_is_one_more_operating_point(tmp_path):
    out = compare_with_promotech(probs(), sites(), write_promotech(tmp_path / "pt.tsv"), REGION, own_threshold=0.55)
    rules = [c["rule"] for c in out["calls"] if c["tool"] == "genometracks"]
    assert rules[0].startswith("best F1") and "oracle" in rules[0]
    own = next(c for c in out["calls"] if c["rule"] == "peak threshold (chosen on validation)")
    # bins scoring >= 0.55: 0.9 (T) and 0.6 (T)
    assert own["tool"] == "genometracks" and own["threshold"] == 0.55
    assert (own["n_calls"], own["tp"]) == (2, 2) and own["recall"] == pytest.approx(2 / 3)


def test_per_position_level(result):
    assert result["positions"]["n"] == 240 and result["positions"]["positive"] == 3
    # Promotech hits 105(+) and 150(-) exactly; 185(+) ties at 0 with the 234 unscored negatives
    assert result["positions"]["promotech"]["pr_auc"] == pytest.approx(2 / 3 + 1 / 3 * 3 / 240)
    # genometracks is 1 nt off at 105 and 150: only 185 ranks first, the other two tie at 0
    assert result["positions"]["genometracks"]["pr_auc"] == pytest.approx(1 / 3 + 2 / 3 * 3 / 240)


def test_region_length_arrays_and_promotech_alone(tmp_path, result):
    path = write_promotech(tmp_path / "pt.tsv")
    local = {s: v[100:220] for s, v in probs().items()}
    again = compare_with_promotech(local, sites(), path, REGION)
    assert again["tools"] == result["tools"]
    alone = compare_with_promotech(None, sites(), path, REGION)
    assert list(alone["tools"]) == ["promotech"] and alone["tools"]["promotech"] == result["tools"]["promotech"]
    with pytest.raises(PromotechError, match="shape"):
        compare_with_promotech({"+": np.zeros(50), "-": np.zeros(50)}, sites(), path, REGION)
    with pytest.raises(PromotechError, match="strands"):
        compare_with_promotech({"+": np.zeros(400)}, sites(), path, REGION)


def test_bin_max_keeps_short_last_bin():
    values = np.arange(10.0)
    assert bin_max(values, 4).tolist() == [3.0, 7.0, 9.0]
    assert bin_max(np.array([0, 0, 0, 0, 1], dtype=bool), 4).tolist() == [False, True]


def test_write_comparison_reads_back(tmp_path, result):
    paths = write_comparison(result, tmp_path / "out")
    table = pd.read_csv(paths["tsv"], sep="\t")
    auc = table[(table["rule"] == "all thresholds") & table["level"].str.contains("bins")].set_index("tool")
    assert auc.loc["promotech", "PR AUC"] == pytest.approx(5 / 6, abs=1e-5)
    assert auc.loc["genometracks", "PR AUC"] == pytest.approx(11 / 12, abs=1e-5)
    stored = json.loads(paths["json"].read_text())
    assert stored["windows"]["positive"] == 3 and "40-nt bins" in stored["rule"]
    image = matplotlib.image.imread(str(paths["png"]))
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200


@pytest.mark.parametrize(
    "rows, width, message",
    [
        ([("c", 66, "0.9", "x")], 40, "line 2: strand 'x'"),
        ([("c", 66, "0.9", "+"), ("c", 70, "high", "+")], 40, "line 3: score='high'"),
    ],
)
def test_bad_promotech_file(tmp_path, rows, width, message):
    with pytest.raises(PromotechError, match=message):
        read_promotech(write_promotech(tmp_path / "bad.tsv", rows, width))


def test_inconsistent_width_and_missing_column(tmp_path):
    path = write_promotech(tmp_path / "w.tsv")
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("\t159\t", "\t170\t")  # the second window's end is no longer start + 39
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PromotechError, match="line 3"):
        read_promotech(path)
    (tmp_path / "m.tsv").write_text("chrom\tstart\tend\tstrand\nc\t1\t40\t+\n")
    with pytest.raises(PromotechError, match=r"\['score'\]"):
        read_promotech(tmp_path / "m.tsv")


@needs_ecoli
def test_promotech_windows_end_at_the_tss():
    """On the real file, the +1 inferred at each window's 3' end coincides with RegulonDB TSSs far
    more often than one base off: the rule's anchoring is right on both strands."""
    from genometracks.genome.sequence import Genome
    from genometracks.labels.annotations import load_tss_set
    from genometracks.report.compare import promotech_track

    genome = Genome.open(ECOLI / "genome" / "NC_000913.3.fa", circular=["NC_000913.3"])
    tss = load_tss_set("regulondb_strong", genome, ECOLI)
    n = genome.contigs["NC_000913.3"].length
    track = promotech_track(read_promotech(ECOLI / "promotech" / "NC_000913.3_genome_predictions.csv"), "NC_000913.3", 0, n)
    for strand, down in (("+", 1), ("-", -1)):
        pos = tss.pos[(tss.strand == strand) & (tss.pos > 5) & (tss.pos < n - 5)]
        hit = {off: float(np.mean(track[strand][pos + down * off] > 0)) for off in (-1, 0, 1)}
        assert hit[0] > 0.1 and hit[0] > 3 * max(hit[-1], hit[1]), (strand, hit)
