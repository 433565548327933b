"""scripts/score_tracks.py: per-base ROC/PR AUC of exported bigWigs against a label set, both strands,
checked on hand-made tracks whose answer is known (a perfect track, the strands swapped, one base off)."""

import importlib.util
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from tests.conftest import needs_ecoli

CHROM, CHROM_LEN = "NC_000913.3", 4_641_652
START, END = 2_738_785, 2_798_785  # the first 60 kb of the paper's test region


def _score_tracks():
    spec = importlib.util.spec_from_file_location("score_tracks", Path(__file__).parents[1] / "scripts" / "score_tracks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_tracks(run_dir: Path, values: dict[str, np.ndarray]) -> None:
    (run_dir / "tracks").mkdir(parents=True)
    for strand, name in (("+", "tss.plus.bw"), ("-", "tss.minus.bw")):
        with pyBigWig.open(str(run_dir / "tracks" / name), "w") as bw:
            bw.addHeader([(CHROM, CHROM_LEN)])
            bw.addEntries(CHROM, START, values=values[strand].astype(np.float64).tolist(), span=1, step=1)


def _rows(out: str) -> dict[str, tuple[int, float, float]]:
    rows = {}
    for line in out.splitlines()[2:]:
        name, n, roc, pr = (c.strip() for c in line.strip("|").split("|"))
        rows[name] = (int(n.replace(",", "")), float(roc), float(pr))
    return rows


@needs_ecoli
@pytest.mark.slow
def test_perfect_swapped_and_shifted_tracks_score_as_expected(tmp_path, capsys):
    st = _score_tracks()
    tss = st.label_positions("curated", CHROM, START, END)  # 0-based offsets into the region
    assert len(tss["+"]) > 5 and len(tss["-"]) > 5
    perfect = {s: np.zeros(END - START) for s in "+-"}
    for s in "+-":
        perfect[s][tss[s]] = 1.0
    cases = {
        "perfect": perfect,
        "swapped": {"+": perfect["-"], "-": perfect["+"]},
        "one_base_downstream": {"+": np.roll(perfect["+"], 1), "-": np.roll(perfect["-"], -1)},
    }
    region = f"{CHROM}:{START}-{END}"
    scores = {}
    for name, values in cases.items():
        _write_tracks(tmp_path / name, values)
        assert st.main([str(tmp_path / name), region, "curated"]) == 0
        scores[name] = _rows(capsys.readouterr().out)["curated"]
    n_tss = len(tss["+"]) + len(tss["-"])
    assert scores["perfect"] == (n_tss, 1.0, 1.0)
    # a TSS on one strand is rarely one on the other: nearly every labelled base scores 0
    assert scores["swapped"][2] < 0.1 and scores["swapped"][1] < 0.6
    # one base off on each strand's own 5'->3' direction: the labelled bases themselves score 0
    assert scores["one_base_downstream"][2] < 0.1
