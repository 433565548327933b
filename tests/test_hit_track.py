"""The motif-hit track's records: name, score scaled to the PWM's best score, colours by head and strength."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genometracks.genome.sequence import Genome, decode, encode
from genometracks.interpret.hit_track import HEAD_COLOURS, SCHEMA, hit_records, motif_hit_track, strength_rgb
from genometracks.interpret.motifs import Motif, MotifError
from genometracks.interpret.scan import COLUMNS, AnchoredMotif, max_score, scan_calls


def test_strength_rgb_blends_towards_white_as_the_score_falls():
    colour = np.array([[0, 114, 178]] * 3, dtype=float)
    # score 1000: the colour; 0: 80 % of the way to white; 500: 40 %
    assert strength_rgb(colour, np.array([1000, 0, 500])).tolist() == ["0,114,178", "204,227,240", "102,170,209"]


def test_hit_records_by_hand():
    motif = Motif("L0H0", np.eye(4)[encode("TATAATG")] * 0.96 + 0.01)  # rows 0.97 / 0.01
    best = max_score(motif)  # 7 x log2((0.97 + 1e-4) / 0.25)
    assert best == pytest.approx(7 * np.log2((0.97 + 1e-4) / 0.25))
    hits = pd.DataFrame(
        [
            ("L0H0", "c", 10, 17, "+", best, 6.1e-5, 9, 5.5e-4, 0.2, "TSS_24+", -10),
            ("L1H2", "c", 30, 37, "-", best / 2, 9e-5, 7, 6.3e-4, 0.3, "TSS_24-", -12),
        ],
        columns=list(COLUMNS),
    )
    rec = hit_records(hits, {"L0H0": "sigma70_-10(box-10)", "L1H2": "unmatched"}, {"L0H0": best, "L1H2": best})
    assert list(rec.columns) == list(SCHEMA.columns)
    assert rec["name"].tolist() == ["L0H0_sigma70_-10(box-10)", "L1H2_unmatched"]
    assert rec["score"].tolist() == [1000, 500] and rec["strand"].tolist() == ["+", "-"]
    assert rec["itemRgb"].tolist() == strength_rgb(HEAD_COLOURS[[0, 1]], np.array([1000, 500])).tolist()
    assert (rec["thickStart"] == rec["start"]).all() and (rec["thickEnd"] == rec["end"]).all()
    assert rec["qValue"].tolist() == [0.2, 0.3] and rec["logOdds"].iloc[1] == best / 2
    assert rec["pValue"].tolist() == [5.5e-4, 6.3e-4] and rec["windowPValue"].tolist() == [6.1e-5, 9e-5]
    assert rec["tss"].tolist() == ["TSS_24+", "TSS_24-"] and rec["tssOffset"].tolist() == [-10, -12]
    assert SCHEMA.hub_type == "bigBed 9 +" and "qValue" in SCHEMA.autosql()


def test_q_value_cut_off_is_checked():
    calls = pd.DataFrame(columns=["chrom", "position", "strand", "name"])
    with pytest.raises(MotifError, match="interpret.scan_qvalue must be in"):
        motif_hit_track(Genome.from_sequences({"c": "ACGT"}), calls, [], 4, 0.0, Path("unused"))


@dataclass
class _Head:  # what motif_hit_track reads of a HeadMotif
    id: str
    motif: Motif
    offset_from_tss: int


def test_track_keeps_significant_words_drops_one_across_the_origin_and_reads_back(tmp_path):
    import gzip

    import pyBigWig

    rng = np.random.default_rng(7)
    seq = list(decode(rng.integers(0, 4, 5000)))
    word = "TATAATG"
    calls = []
    for t in range(200, 4800, 100):  # 46 '+' calls, each with the word centred at -10
        seq[t - 13 : t - 6] = list(word)
        calls.append(("circ", t, "+", f"TSS_{t + 1}+"))
    seq[4995:5000], seq[0:2] = list(word[:5]), list(word[5:])  # a word across the origin: call at 8, centre -2
    calls.append(("circ", 8, "+", "TSS_9+"))
    genome = Genome.from_sequences({"circ": "".join(seq)}, circular=["circ"])
    frame = pd.DataFrame(calls, columns=["chrom", "position", "strand", "name"])
    head = _Head("L0H0", Motif("L0H0", np.eye(4)[encode(word)] * 0.96 + 0.01), -10)
    summary = motif_hit_track(genome, frame, [(head, "sigma70_-10")], 10, 0.05, tmp_path / "motif_hits")
    assert summary["tests"] == 47 and summary["calls"] == 47 and summary["across_origin"] == 1
    # the null of the scan is the calls' promoter composition (the planted A/T-rich words included)
    from genometracks.interpret.scan import promoter_background

    background = promoter_background(genome, frame)
    assert summary["background"] == {letter: round(float(b), 4) for letter, b in zip("ACGT", background)}
    assert background[[0, 3]].sum() > 0.5
    tests = scan_calls(genome, frame, {"L0H0": AnchoredMotif(head.motif, -10)}, 10, background)
    assert summary["records"] == 46 == int((tests["q_value"] <= 0.05).sum()) - 1
    with gzip.open(tmp_path / "motif_hits.bed.gz", "rt") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle]
    assert [int(r[1]) for r in rows] == [t - 13 for t in range(200, 4800, 100)]
    assert {r[3] for r in rows} == {"L0H0_sigma70_-10"} and {r[12] for r in rows} == {"-10"}
    with pyBigWig.open(str(tmp_path / "motif_hits.bb")) as bb:
        assert len(bb.entries("circ", 0, 5000)) == 46
    # nothing significant: the files of an earlier run are removed
    empty = motif_hit_track(genome, frame.iloc[:0], [(head, "x")], 10, 0.05, tmp_path / "motif_hits")
    assert empty["records"] == 0 and empty["note"] == "no TSS call" and not list(tmp_path.glob("motif_hits*"))


def test_calls_come_from_the_peaks_bed_else_from_the_tracks_and_a_foreign_bed_is_refused(tmp_path):
    from genometracks.interpret.command import tss_calls
    from genometracks.interpret.heads import InterpretError
    from tests.conftest import compose

    genome = Genome.from_sequences({"c1": "A" * 100, "c2": "C" * 50}, circular=["c2"])
    cfg = compose(f"run_dir={tmp_path}", "predict.peaks.threshold=0.5", "predict.peaks.min_distance=5")
    track = {"c1": {"+": np.zeros(100), "-": np.zeros(100)}, "c2": {"+": np.zeros(50), "-": np.zeros(50)}}
    track["c1"]["+"][[20, 23, 60]] = [0.9, 0.7, 0.6]  # 23 is within 5 nt of the higher 20
    track["c2"]["-"][[0, 49]] = [0.8, 0.95]  # neighbours across the origin of the circle: 49 wins
    asked = []
    calls, source = tss_calls(cfg, tmp_path, genome, lambda: asked.append(1) or track)
    assert asked == [1] and source.startswith("called from the probability tracks at 0.5 (configured")
    assert calls.values.tolist() == [["c1", 20, "+", "TSS_21+"], ["c1", 60, "+", "TSS_61+"], ["c2", 49, "-", "TSS_50-"]]
    (tmp_path / "tracks").mkdir()
    (tmp_path / "tracks" / "tss_peaks.bed").write_text("c1\t5\t6\tTSS_6-\t800\t-\nc2\t7\t8\tTSS_8+\t700\t+\n")
    calls, source = tss_calls(cfg, tmp_path, genome, lambda: pytest.fail("the tracks are not needed"))
    assert source == "tracks/tss_peaks.bed" and calls.values.tolist() == [["c1", 5, "-", "TSS_6-"], ["c2", 7, "+", "TSS_8+"]]
    (tmp_path / "tracks" / "tss_peaks.bed").write_text("chrX\t5\t6\tTSS_6-\t800\t-\n")
    with pytest.raises(InterpretError, match=r"tss_peaks.bed: contig 'chrX' is not in the genome's FASTA.*genometracks peaks run_dir="):
        tss_calls(cfg, tmp_path, genome, lambda: track)


def test_report_sentence_reads_the_summary(tmp_path):
    import json

    from genometracks.report.build import motif_hit_sentence

    summary = {
        "records": 1212,
        "at_random_positions": 0,
        "calls": 5035,
        "slack": 2,
        "q_threshold": 0.05,
        "per_head": {"L0H2": 1207, "L2H1": 5},
    }
    path = tmp_path / "interpret.json"
    path.write_text(json.dumps({"heads": {"motif_hits": summary}}))
    assert motif_hit_sentence(path) == (
        "Motif-hit track (tracks/motif_hits.bb): 1,212 head words at q ≤ 0.05 in the promoters of 5,035 TSS calls, each within "
        "2 nt of its head's offset (L0H2 1,207, L2H1 5); the same scan at as many random positions keeps 0."
    )
    summary.update(records=0, per_head={"L0H2": 0}, min_q_value=0.0509)  # nothing passed: no track file, and why
    path.write_text(json.dumps({"heads": {"motif_hits": summary}}))
    assert motif_hit_sentence(path).startswith(
        "Motif-hit track: no head word at q ≤ 0.05 in the promoters of 5,035 TSS calls (smallest q 0.0509), so no tracks/motif_hits.bb"
    )
    path.write_text(json.dumps({"heads": {"motif_hits": {"records": 3, "tests": 10}}}))  # the older genome-wide scan
    assert motif_hit_sentence(path) == "" and motif_hit_sentence(tmp_path / "absent.json") == ""


def test_tracks_made_for_the_calls_are_costed_once_and_not_inside_the_heads(tmp_path, monkeypatch, capsys):
    # interpret.json's costs counted the tracks' prediction twice: under "tracks" and inside "heads"
    import json
    import time

    import genometracks.interpret.command as C
    from genometracks.model import TransformerXL
    from tests.conftest import compose
    from tests.conftest_interpret import MODEL, save_checkpoint

    save_checkpoint(TransformerXL(**MODEL), tmp_path / "model.ckpt")
    cfg = compose("experiment=smoke", f"run_dir={tmp_path / 'run'}", f"ckpt={tmp_path / 'model.ckpt'}", "interpret.parts=[heads]")

    def slow_tracks(model, genome, shift, seg_len, out, s):
        time.sleep(0.6)
        return {c: {s: np.zeros(genome.contigs[c].length) for s in "+-"} for c in genome.contigs}, "predicted"

    monkeypatch.setattr(C, "probability_tracks", slow_tracks)
    monkeypatch.setattr(C, "reference_motifs", lambda cfg: ([], "none"))
    # an uninformative head's q-value is NaN: interpret.json stays strict JSON (null), which JSON.parse reads
    monkeypatch.setattr(
        C, "run_heads", lambda *args: {"summary": {"heads": [{"head": "L0H0", "match_q_value": float("nan")}]}, "files": []}
    )
    costs = C.interpret_command(cfg)["costs"]
    assert costs["tracks"]["seconds"] >= 0.6 and costs["heads"]["seconds"] < 0.6
    text = (tmp_path / "run" / "interpret.json").read_text()
    saved = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in interpret.json"))
    assert saved["costs"] == costs and saved["heads"]["heads"][0]["match_q_value"] is None
    # one JSON line on stdout, like the other commands (interpret printed nothing)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["summary"] == "interpret.json" and line["parts"] == ["heads"] and line["seconds"]["tracks"] >= 0.6
