"""The motif-hit track's records: name, score scaled to the PWM's best score, colours by head and strength."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genometracks.genome.sequence import Genome, encode
from genometracks.interpret.hit_track import HEAD_COLOURS, SCHEMA, hit_records, motif_hit_track, strength_rgb
from genometracks.interpret.motifs import Motif, MotifError
from genometracks.interpret.scan import COLUMNS, max_score


def test_strength_rgb_blends_towards_white_as_the_score_falls():
    colour = np.array([[0, 114, 178]] * 3, dtype=float)
    # score 1000: the colour; 0: 80 % of the way to white; 500: 40 %
    assert strength_rgb(colour, np.array([1000, 0, 500])).tolist() == ["0,114,178", "204,227,240", "102,170,209"]


def test_hit_records_by_hand():
    motif = Motif("L0H0", np.eye(4)[encode("TATAATG")] * 0.96 + 0.01)  # rows 0.97 / 0.01
    best = max_score(motif)  # 7 x log2((0.97 + 1e-4) / 0.25)
    assert best == pytest.approx(7 * np.log2((0.97 + 1e-4) / 0.25))
    hits = pd.DataFrame(
        [("L0H0", "c", 10, 17, "+", best, 6.1e-5, 0.2), ("L1H2", "c", 30, 37, "-", best / 2, 9e-5, 0.3)], columns=list(COLUMNS)
    )
    rec = hit_records(hits, {"L0H0": "sigma70_-10(box-10)", "L1H2": "unmatched"}, {"L0H0": best, "L1H2": best})
    assert list(rec.columns) == list(SCHEMA.columns)
    assert rec["name"].tolist() == ["L0H0_sigma70_-10(box-10)", "L1H2_unmatched"]
    assert rec["score"].tolist() == [1000, 500] and rec["strand"].tolist() == ["+", "-"]
    assert rec["itemRgb"].tolist() == strength_rgb(HEAD_COLOURS[[0, 1]], np.array([1000, 500])).tolist()
    assert (rec["thickStart"] == rec["start"]).all() and (rec["thickEnd"] == rec["end"]).all()
    assert rec["qValue"].tolist() == [0.2, 0.3] and rec["logOdds"].iloc[1] == best / 2
    assert SCHEMA.hub_type == "bigBed 9 +" and "qValue" in SCHEMA.autosql()


def test_q_value_cut_off_is_checked():
    with pytest.raises(MotifError, match="interpret.scan_qvalue must be in"):
        motif_hit_track(Genome.from_sequences({"c": "ACGT"}), [], 1e-4, 0.0, Path("unused"))
