"""σ70 promoters of TSS calls (interpret.sigma70_promoters): promoters planted by hand at known offsets on both
strands and across a circular contig's origin, the null at random positions, the track read back by pyBigWig
and kent, the calls' GFF3 attributes, and export's hub (hubCheck), IGV session and JBrowse view."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from genometracks.genome.sequence import Genome, decode, reverse_complement
from genometracks.interpret.motifs import read_meme
from genometracks.interpret.sigma70_promoters import (
    COLUMNS,
    placements,
    scan_promoters,
    sigma70_promoter_track,
    sigma70_windows,
)
from genometracks.io.paths import shared_data
from tests.conftest import needs_ecoli
from tests.kent import HAVE_KENT, assert_hub_clean, kent

DPINTERACT = shared_data() / "ecoli_k12" / "motifs" / "dpinteract_sigma70_rpoD_excerpt.meme"
pytestmark = needs_ecoli
MINUS35, SPACER17, MINUS10 = "TTGACA", "AATTATCTAGTTTTTGT", "TATAAT"  # rpoD17's consensus, 29 nt


@pytest.fixture(scope="module")
def windows():
    return sigma70_windows(read_meme(DPINTERACT))


def promoter(discriminator: int) -> str:
    """The 5'→3' sequence from the −35 hexamer to the base before the +1 (the +1 follows it)."""
    return MINUS35 + SPACER17 + MINUS10 + "C" * discriminator


def revcomp(sequence: str) -> str:
    return sequence[::-1].translate(str.maketrans("ACGT", "TGCA"))


def planted_genome(length: int = 6000, seed: int = 0, circular: bool = False) -> tuple[Genome, str]:
    """Random contig 'c' (forward text returned) with σ70 promoters for a + call at 1000 (discriminator 6),
    a − call at 3000 (discriminator 8: forward 3001..3037 hold its reverse complement) and a + call at 20
    whose promoter runs back across the origin (discriminator 7: its first 16 nt are the contig's last)."""
    rng = np.random.default_rng(seed)
    text = list("".join(rng.choice(list("ACGT"), length)))
    plus, minus, across = promoter(6), promoter(8), promoter(7)
    text[1000 - len(plus) : 1000] = plus
    text[3001 : 3001 + len(minus)] = revcomp(minus)
    text[length - 16 :] = across[:16]
    text[:20] = across[16:]
    joined = "".join(text)
    return Genome.from_sequences({"c": joined}, circular=["c"] if circular else []), joined


CALLS = pd.DataFrame({"chrom": ["c", "c", "c"], "position": [1000, 3000, 20], "strand": ["+", "-", "+"], "name": ["p", "m", "o"]})


def test_windows_are_the_five_spacers_and_ties_prefer_spacer_17_discriminator_7(windows):
    assert sorted(windows) == [15, 16, 17, 18, 19]
    assert {s: m.probabilities.shape[0] for s, m in windows.items()} == {15: 27, 16: 28, 17: 29, 18: 30, 19: 31}
    order = placements(windows)
    assert len(order) == 35 and order[:3] == [(17, 7), (17, 6), (17, 8)] and order[-1] == (19, 10)


@pytest.mark.parametrize("circular", [False, True])
def test_planted_promoters_are_found_at_their_offsets_on_both_strands(windows, circular):
    genome, text = planted_genome(circular=circular)
    table = scan_promoters(genome, CALLS, windows)
    assert list(table.columns) == list(COLUMNS)
    by_name = table.set_index("name")
    p, m = by_name.loc["p"], by_name.loc["m"]
    assert (p["matrix"], p["spacer"], p["discriminator"], p["minus35"], p["minus10"]) == ("rpoD17", 17, 6, MINUS35, MINUS10)
    assert (p["minus35_offset"], p["minus10_offset"]) == (-35, -12)
    assert text[1000 - 35 : 1000 - 29] == MINUS35 and text[1000 - 12 : 1000 - 6] == MINUS10  # the offsets name those bases
    assert (m["spacer"], m["discriminator"], m["minus35"], m["minus10"]) == (17, 8, MINUS35, MINUS10)
    assert (m["minus35_offset"], m["minus10_offset"]) == (-37, -14)
    assert p["windows"] == m["windows"] == 35 and p["p_value"] < 1e-6 and m["p_value"] < 1e-6
    if circular:  # read back across the origin: the third call's promoter is found too
        o = by_name.loc["o"]
        assert (o["discriminator"], o["minus35"], o["minus10"], o["windows"]) == (7, MINUS35, MINUS10, 35)
    else:  # on a linear contig nothing upstream of position 0 exists: no window is N-free, the call is left out
        assert "o" not in by_name.index


def test_random_positions_keep_nothing_and_their_p_values_are_not_too_small(windows):
    rng = np.random.default_rng(1)
    genome = Genome.from_sequences({"r": "".join(rng.choice(list("ACGT"), 200_000))})
    where = {"position": rng.integers(100, 199_900, 2000), "strand": rng.choice(["+", "-"], 2000)}
    calls = pd.DataFrame({"chrom": "r", **where, "name": [f"n{i}" for i in range(2000)]})
    table = scan_promoters(genome, calls, windows)
    assert len(table) == 2000 and (table["q_value"] > 0.05).all()
    # Šidák over 35 overlapping windows is conservative: at most the nominal share under p <= 0.05
    assert 0.005 < (table["p_value"] <= 0.05).mean() <= 0.05
    assert table["discriminator"].value_counts().min() > 2000 / 7 * 0.7  # no preferred placement at random


def test_track_table_and_summary_with_boxes_at_their_genome_positions(windows, tmp_path):
    genome, text = planted_genome(circular=True)
    prefix = tmp_path / "tracks" / "sigma70_boxes"
    reference = CALLS.iloc[:2]
    summary = sigma70_promoter_track(genome, CALLS, list(windows.values()), 0.05, tmp_path / "p.tsv", prefix, reference)
    assert summary["calls"]["kept"] == 3 and summary["calls"]["discriminator"] == {6: 1, 7: 1, 8: 1}
    assert summary["reference"]["kept"] == 2 and summary["at_random_positions"]["kept"] == 0
    saved = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert saved.set_index("name")["position"].to_dict() == {"p": 1001, "m": 3001, "o": 21}  # 1-based
    with pyBigWig.open(str(prefix.with_suffix(".bb"))) as bb:
        rows = [(s, e, rest.split("\t")) for s, e, rest in bb.entries("c", 0, len(text))]
    boxes = {(r[6], r[0]): (s, e, r[2], r[7], int(r[8])) for s, e, r in rows}  # (tss, box) -> start, end, strand, seq, offset
    assert boxes[("p", "-35")] == (965, 971, "+", MINUS35, -35) and boxes[("p", "-10")] == (988, 994, "+", MINUS10, -12)
    # '-': the box's forward interval holds the reverse complement; −14..−9 upstream = 3009..3014 forward
    assert boxes[("m", "-10")] == (3009, 3015, "-", MINUS10, -14) and boxes[("m", "-35")] == (3032, 3038, "-", MINUS35, -37)
    assert decode(reverse_complement(genome.tokens("c")[3009:3015])) == MINUS10
    # across the origin: the −35 box of the call at 20 lies at the contig's end
    assert boxes[("o", "-35")][:2] == (len(text) - 16, len(text) - 10) and boxes[("o", "-10")][:2] == (7, 13)
    # the report's section, from interpret.json (JSON turns the counts' keys into strings)
    from genometracks.report.build import build_report

    summary.pop("files")
    run = tmp_path / "run"
    run.mkdir()
    (run / "interpret.json").write_text(json.dumps({"promoters": {**summary, "labels": "planted"}}))
    page = build_report(run, snapshot=False, compare=False)[1].read_text().split("σ70 promoters of the calls")[1]
    assert "| TSS calls | 3 | 3 | 100.0 | 66.7 |" in page and "| planted TSSs | 2 | 2 | 100.0 | 50.0 |" in page
    from genometracks.interpret.promoter_plots import plot_sigma70_promoters

    assert plot_sigma70_promoters(json.loads((run / "interpret.json").read_text())["promoters"], run / "p.png").stat().st_size > 10_000
    if HAVE_KENT:
        bed = kent("bigBedToBed", prefix.with_suffix(".bb"), "stdout").stdout.splitlines()
        assert len(bed) == 6 and bed[0].split("\t")[:6] == ["c", "7", "13", "-10", bed[0].split("\t")[4], "+"]


def test_without_window_matrices_the_files_go(windows, tmp_path):
    genome, _ = planted_genome()
    prefix = tmp_path / "sigma70_boxes"
    table = tmp_path / "p.tsv"
    sigma70_promoter_track(genome, CALLS, list(windows.values()), 0.05, table, prefix)
    assert table.is_file() and prefix.with_suffix(".bb").is_file()
    summary = sigma70_promoter_track(genome, CALLS, [], 0.05, table, prefix)
    assert summary["note"].startswith("no rpoD15-19") and sorted(p.name for p in tmp_path.iterdir()) == []


def test_export_shows_the_boxes_and_the_gff3_names_them(windows, tmp_path):
    from genometracks.browser.calls_gff3 import write_calls_gff3
    from genometracks.browser.export import export_run
    from genometracks.formats.bigwig import write_bigwig
    from genometracks.io.rundir import RunDir

    genome, text = planted_genome()
    fasta = tmp_path / "g.fa"
    fasta.write_text(">c\n" + text + "\n")
    run = tmp_path / "run"
    length = len(text)
    signal = {s: {"c": np.full(length, 0.01, np.float32)} for s in "+-"}
    signal["+"]["c"][1000] = signal["-"]["c"][3000] = 0.9
    for strand, word in (("+", "plus"), ("-", "minus")):
        write_bigwig(run / "tracks" / f"tss.{word}.bw", {"c": length}, signal[strand])
    (run / "tracks" / "tss_peaks.bed").write_text("c\t1000\t1001\tTSS_1001+\t900\t+\nc\t3000\t3001\tTSS_3001-\t900\t-\n")
    calls = pd.DataFrame({"chrom": "c", "position": [1000, 3000], "strand": ["+", "-"], "name": ["TSS_1001+", "TSS_3001-"]})
    rundir = RunDir(run)
    table = rundir.interpret / "sigma70_promoters.tsv"
    sigma70_promoter_track(genome, calls, list(windows.values()), 0.05, table, rundir.track("sigma70_boxes"))
    gff3 = write_calls_gff3(rundir, {"c": length}).read_text()
    assert "sigma70_minus35=TTGACA;sigma70_minus10=TATAAT;sigma70_spacer=17;sigma70_discriminator=6;sigma70_q=" in gff3
    assert gff3.count("sigma70_minus10=TATAAT") == 2
    export_run(run, fasta, {"c": length}, {"email": "a@b.org"}, "Testus genomicus")
    genome_dir = next(p for p in (run / "hub").iterdir() if p.is_dir())
    stanzas = {s.split("\n")[0].split()[1]: s for s in (genome_dir / "trackDb.txt").read_text().split("\n\n") if s.strip()}
    boxes = dict(line.split(" ", 1) for line in stanzas["sigma70_boxes"].splitlines())
    assert boxes["type"] == "bigBed 9 +" and boxes["itemRgb"] == "on" and boxes["group"] == "tss" and "searchIndex" not in boxes
    assert (genome_dir / "html" / "sigma70_boxes.html").is_file()
    assert_hub_clean(run / "hub")
    assert "sigma70_boxes.bb" in (run / "igv" / "session.xml").read_text()
    config = json.loads((run / "jbrowse" / "config.json").read_text())
    assert any(t["trackId"] == "sigma70_boxes" for t in config["tracks"])
