"""Run report on fabricated run directories: sections, values, links that resolve, missing parts listed.

Fabricated run: contig chrA (1,000 nt), test split [600, 1000), TSSs '+' 650, '+' 700, '-' 800 in the
test split and '+' 100 outside it. Tracks are 0.1 everywhere except + 650 0.9, + 700 0.8, + 900 0.85,
- 800 0.7, - 610 0.95. Over the 800 test positions: ranking 0.95 F, 0.9 T, 0.85 F, 0.8 T, 0.7 T, then
795 negatives at 0.1, so PR AUC = (1/2 + 2/4 + 3/5) / 3 = 0.533 and ROC AUC = (796 + 795 + 795) / (3 * 797).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import yaml
from matplotlib.figure import Figure

from genometracks.browser.snapshot import SnapshotError, browser_snapshot, find_chromium
from genometracks.formats.bigwig import write_bigwig
from genometracks.report.build import build_report
from genometracks.report.plots import save_figure


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.h2: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.targets.append(attrs["src"])
        if tag == "a":
            self.targets.append(attrs["href"])
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data)
            self._in_h2 = False


def png(path: Path, colour: str = "red") -> Path:
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [0, 1], color=colour)
    return save_figure(fig, path)


def fake_metrics(both=(0.912, 0.0456)) -> dict:
    m = {
        "n_positions": 800,
        "n_positives": 3,
        "roc_auc": both[0],
        "pr_auc": both[1],
        "pr_auc_k4": 0.11,
        "pr_auc_k10": 0.22,
        "lr_plus": 31.5,
        "f1_best": 0.4,
        "at_threshold": {"threshold": 0.25, "calls": 9, "precision": 0.625, "recall": 0.5, "f1": 0.5556, "lr_plus": 21.25},
    }
    return {
        "labels": "custom",
        "model": {"n_layer": 2},
        "global_step": 120,
        "epochs": 2,
        "best_checkpoint": "checkpoints/best.ckpt",
        "test": {"both": m, "+": dict(m, roc_auc=0.9), "-": dict(m, roc_auc=None)},
        "validation": {"both": dict(m, roc_auc=0.777, threshold_f1=0.75)},
    }


def make_run(run: Path) -> Path:
    rng = np.random.default_rng(1)
    run.mkdir(parents=True)
    fasta = run.parent / "g.fa"
    seq = "".join(rng.choice(list("ACGT"), 1000))
    fasta.write_text(">chrA\n" + "\n".join(seq[i : i + 60] for i in range(0, 1000, 60)) + "\n")
    bed = run.parent / "tss.bed"
    bed.write_text("chrA\t650\t651\ta\t0\t+\nchrA\t700\t701\tb\t0\t+\nchrA\t800\t801\tc\t0\t-\nchrA\t100\t101\td\t0\t+\n")
    cfg = {
        "data": {
            "name": "custom",
            "fasta": str(fasta),
            "tss": str(bed),
            "circular": [],
            "labels": "custom",
            "shift": 20,
            "n_streams": 4,
            "splits": {"test": [["chrA", 600, 1000]], "validation": [["chrA", 400, 600]]},
        },
        "model": {"n_layer": 2, "n_head": 2, "d_model": 16, "window": 64, "seg_len": 128},
        "trainer": {"max_epochs": 2, "max_steps": -1, "limit_train_batches": 30},
        "task": {"lr": 0.001},
        "paths": {"shared_data": str(run.parent / "no_shared_data"), "cache": str(run.parent / "cache")},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "metrics.json").write_text(json.dumps(fake_metrics()))
    plus, minus = np.full(1000, 0.1, np.float32), np.full(1000, 0.1, np.float32)
    plus[[650, 700, 900]] = [0.9, 0.8, 0.85]
    minus[[800, 610]] = [0.7, 0.95]
    write_bigwig(run / "tracks" / "tss.plus.bw", {"chrA": 1000}, {"chrA": plus})
    write_bigwig(run / "tracks" / "tss.minus.bw", {"chrA": 1000}, {"chrA": minus})
    png(run / "plots" / "heads_heatmap.png")
    png(run / "plots" / "heads_stability.png")
    png(run / "logos" / "L1H2.png")
    png(run / "logos" / "first_block_kernels.png")
    (run / "interpret").mkdir()
    (run / "interpret" / "heads.tsv").write_text(
        "layer\thead\thead_id\tconsensus\tinformation\tbest_match\tmatch_p_value\tmatch_q_value\n"
        "1\t2\tL1H2\tTATAAT\t7.25\t<script>x</script>\t0.0012\t0.0044\n"
        "0\t0\tL0H0\tNNNNNN\t0.1\t.\t0.00185\tNA\n"  # heads.tsv writes a missing q-value as NA
    )
    (run / "sigma" / "logos" / "sigma").mkdir(parents=True)
    png(run / "sigma" / "logos" / "sigma" / "sigma70.png")
    (run / "sigma" / "metrics.json").write_text(
        json.dumps(
            {
                "folds": 5,
                "metrics": {
                    "softmax": {
                        "sigma70": {
                            "n_pos": 40,
                            "accuracy": 0.875,
                            "sensitivity": 0.8,
                            "specificity": 0.9,
                            "roc_auc": 0.931,
                            "pr_auc": 0.61,
                        }
                    }
                },
            }
        )
    )
    (run / "hub").mkdir()
    (run / "hub" / "hub.txt").write_text("hub test\n")
    return run


def check_links(run: Path, page: str) -> Links:
    parser = Links()
    parser.feed(page)
    for target in parser.targets:
        assert not target.startswith(("/", "http", "file:")), target
        assert (run / unquote(target)).is_file(), f"broken link {target}"
    return parser


@pytest.mark.slow
def test_report_of_a_run(tmp_path):
    run = make_run(tmp_path / "run")
    html_path, md_path = build_report(run)
    assert html_path == run / "report.html" and md_path == run / "report.md"
    page, md = html_path.read_text(), md_path.read_text()
    parser = check_links(run, page)
    assert len(parser.targets) >= 8
    assert {
        "Metrics",
        "Training budget",
        "PR and ROC curves (test split)",
        "Attention heads",
        "Head logos and known-motif matches",
        "Sigma-factor classes",
        "Genome browser",
        "Not produced in this run",
    } <= set(parser.h2)
    assert "plots/test_pr.png" in parser.targets and "plots/test_roc.png" in parser.targets
    heads = page.split(">Attention heads<")[1].split("<h2")[0]  # the bootstrap plot beside the heatmap, once
    assert "plots/heads_stability.png" in heads and "plots/heads_heatmap.png" in heads
    assert page.count('src="plots/heads_stability.png"') == 1
    assert "0.912" in page and "0.046" in page and "0.777" in page  # metrics.json values
    # the operating point is the validation threshold's (21.25), not the split's own F1 optimum (31.5)
    assert "21.250" in page and "0.625" in page and "31.500" not in page
    # the peak threshold (validation's 0.75) on the test curve: + 650 and 700 (TSSs) and 900, − 610 called
    assert "4 positions called, precision 0.500, recall 0.667, F1 0.571" in page
    curves = page.split("From the tracks")[1].split("</table>")[0]
    assert "800" in curves and "0.533" in curves and f"{2386 / (3 * 797):.3f}" in curves
    budget = page.split("Training budget")[1].split("</table>")[0]
    assert "limit_train_batches</td><td>30<" in budget and ">512<" in budget  # 4 streams × 128 nt per step
    assert "61,440 ≈ 76.80 × the training split" in budget  # 120 steps × 512; train = 2 × 400 nt
    assert "0.931" in page and "sigma70" in page
    assert "&lt;script&gt;" in page and "<script" not in page  # text from files is escaped
    heads = page.split("Head motifs and their best known-motif matches (interpret/heads.tsv)")[1].split("</table>")[0]
    assert "layer" not in heads and "<td>7.250</td>" in heads and "<td>0.0012</td>" in heads  # 2 significant digits
    assert "<td>0.0019</td><td>–</td></tr>" in heads and "NA" not in heads
    assert 'alt="L1H2: TATAAT, best match &lt;script&gt;x&lt;/script&gt; (Tomtom q = 0.0044)"' in page
    assert "Other logos" in page and "logos/first_block_kernels.png" in parser.targets
    missing = page.split("Not produced in this run")[1]
    for what in ("metaplots", "IGV session", "browser snapshot", "Promotech peer comparison (not an NC_000913.3 run)"):
        assert what in missing
    assert "paper (no row for these labels)" in page
    for line in md.splitlines():
        if line.startswith("!["):
            assert (run / unquote(line.split("](")[1].rstrip(")"))).is_file(), line
    assert "| test | both | 800 | 3 | 0.912 |" in md and "## Not produced in this run" in md


@pytest.mark.slow
def test_a_run_that_leaves_the_test_region_alone_gets_no_test_curves(tmp_path):
    import yaml

    run = make_run(tmp_path / "run")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["task"]["test_split"] = False
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    page = build_report(run)[0].read_text()
    assert "PR and ROC curves (test split)" not in page and not (run / "plots" / "test_pr.png").exists()
    missing = page.split("Not produced in this run")[1]
    assert "task.test_split=false: this run leaves the test region alone" in missing


def test_minimal_run_lists_what_is_missing(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    metrics = fake_metrics((0.95, 0.12))
    metrics["labels"] = "cappable_seq"
    (run / "metrics.json").write_text(json.dumps(metrics))
    page = build_report(run)[0].read_text()
    assert check_links(run, page).targets == []
    side = page.split("This run beside the paper")[1].split("</table>")[0]
    assert "paper: Cappable-seq → Cappable-seq" in side and "0.950" in side and "0.961" in side and "0.132" in side
    paper = page.split("Paper, Table 2")[1].split("</table>")[0]
    assert '<tr class="hl"><td class="t">Cappable-seq → Cappable-seq</td>' in paper
    missing = page.split("Not produced in this run")[1]
    for what in (
        "PR and ROC curves",
        "attention heatmap",
        "head logos",
        "DeepLIFT/SHAP and TF-MoDISco",
        "sigma-class table",
        "UCSC track hub",
        "browser snapshot",
    ):
        assert what in missing
    assert "<img" not in page


def test_thinned_curves_keep_their_area():
    from genometracks.report.plots import pr_points, roc_points
    from genometracks.training import metrics as M

    rng = np.random.default_rng(0)
    labels = rng.random(200_000) < 0.002
    scores = rng.random(200_000) + 2.0 * labels * rng.random(200_000)
    recall, precision = pr_points(labels, scores)
    assert recall[0] == 0 and recall[-1] == 1 and len(recall) < 5000
    assert np.sum(np.diff(recall) * precision[1:]) == pytest.approx(M.average_precision(labels, scores), abs=0.01)
    fpr, tpr = roc_points(labels, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1) and len(fpr) < 5000
    assert np.trapezoid(tpr, fpr) == pytest.approx(M.roc_auc(labels, scores), abs=0.002)


def test_missing_run_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        build_report(tmp_path / "nope")


CHROMIUM = find_chromium()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
@pytest.mark.slow
def test_browser_snapshot_and_report(tmp_path, monkeypatch):
    from matplotlib.image import imread

    from genometracks.browser.igv import IGV_JS_VERSION, IgvError, IgvTrack, ensure_igv_js, write_igv

    cached = Path.home() / ".cache/genometracks/igv-js" / IGV_JS_VERSION / "node_modules/igv/dist/igv.min.js"
    if cached.is_file():
        monkeypatch.setenv("GENOMETRACKS_IGV_JS", str(cached))
    try:
        ensure_igv_js()
    except IgvError as err:
        pytest.skip(f"igv.js unavailable: {err}")
    run = tmp_path / "snap"
    run.mkdir()
    fasta = tmp_path / "s.fa"
    fasta.write_text(">chrA\n" + "ACGTTGCA" * 250 + "\n")
    plus = (0.2 + 0.8 * (np.arange(2000) % 40 < 10)).astype(np.float32)
    write_bigwig(run / "tracks" / "tss.plus.bw", {"chrA": 2000}, {"chrA": plus})
    write_igv(run, fasta, [IgvTrack("TSS +", Path("tracks/tss.plus.bw"), (200, 0, 0))], locus="chrA:1-2000")
    with pytest.raises(SnapshotError, match="IGV syntax"):
        browser_snapshot(run, "chrA 1-300")
    shot = browser_snapshot(run, "chrA:101-400")
    assert shot == run / "plots" / "browser_snapshot.png"
    assert not list((run / "igv").glob("_snapshot_*"))  # the temporary page is gone
    pixels = np.round(imread(str(shot))[..., :3] * 255).astype(int)
    assert pixels.shape[1] == 1400 and 200 < pixels.shape[0] < 900  # blank rows under the tracks cropped
    assert int((np.abs(pixels - np.array([200, 0, 0])).sum(axis=-1) < 30).sum()) > 1000  # the track was drawn
    page = build_report(run, snapshot=False)[0].read_text()
    parser = check_links(run, page)
    assert "plots/browser_snapshot.png" in parser.targets and "igv/session.xml" in parser.targets
    # a track rewritten since (stages=[interpret] rewrites the motif hits): the report takes the snapshot
    # again instead of showing what the tracks were
    import os

    taken = shot.stat().st_mtime_ns
    build_report(run, snapshot=True)
    assert shot.stat().st_mtime_ns == taken  # nothing changed: kept
    write_bigwig(run / "tracks" / "tss.plus.bw", {"chrA": 2000}, {"chrA": np.full(2000, 0.1, np.float32)})
    os.utime(run / "tracks" / "tss.plus.bw", ns=(taken + 10**9, taken + 10**9))
    build_report(run, snapshot=True)
    assert shot.stat().st_mtime_ns > taken


@pytest.mark.slow
def test_a_shipped_models_metrics_appear_only_beside_tracks_scored_on_the_same_labels(tmp_path):
    # tracks of a shipped model scored on this run's labels ('custom'): the card's metrics of other labels
    # stood beside them (and beside the peer's column of this run's labels) under one heading
    run = make_run(tmp_path / "run")
    (run / "metrics.json").unlink()
    card = {"name": "mine", "task": {"data": "custom"}, "metrics": fake_metrics(both=(0.654, 0.0321))}
    card["metrics"]["labels"] = "regulondb_strong"
    (run / "model_card.json").write_text(json.dumps(card))
    page = build_report(run, snapshot=False)[0].read_text()
    missing = page.split("Not produced in this run")[1]
    assert "0.654" not in page and "metrics table (metrics.json" not in missing
    assert (
        "the shipped model&#x27;s own metrics (model_card.json, labels &#x27;regulondb_strong&#x27;): this run scores its "
        "tracks on labels &#x27;custom&#x27;" in missing
    )
    card["metrics"]["labels"] = "custom"  # the same labels: the card's metrics are this run's
    (run / "model_card.json").write_text(json.dumps(card))
    page = build_report(run, snapshot=False)[0].read_text()
    assert "0.654" in page and "(model: shipped model mine)" in page
    # where they come from: the card's own evaluation, not a training stage of this run (there was none)
    assert "Per-position metrics from the shipped model&#x27;s card (model_card.json: at ship time)" in page
    assert "written by the training stage" not in page
    card["metrics"]["evaluated_by"] = "fresh evaluation of the shipped weights at ship time"
    card["training"] = {"positions_seen": 100, "wall_seconds": 602.8, "positions_seen_total": 500, "wall_seconds_total": 2199.8}
    card["training"]["parent"] = {"kind": "checkpoint", "labels": "cappable_seq", "command": "genometracks train ..."}
    (run / "model_card.json").write_text(json.dumps(card))
    page = build_report(run, snapshot=False)[0].read_text()
    assert "(model_card.json: fresh evaluation of the shipped weights at ship time)" in page
    assert "<td>602.8</td>" in page and "<td>2199.8</td>" in page and "<td>500</td>" in page
    assert "checkpoint trained on &#x27;cappable_seq&#x27;" in page
    # labels= (top level) overrides data.labels: the tracks are scored on it, so it decides
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"]["labels"] = "regulondb_strong"
    cfg["labels"] = "custom"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert "0.654" in build_report(run, snapshot=False)[0].read_text()
    cfg["data"]["labels"], card["metrics"]["labels"] = "custom", "regulondb_strong"
    cfg["labels"] = "custom"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "model_card.json").write_text(json.dumps(card))
    assert "0.654" not in build_report(run, snapshot=False)[0].read_text()


def test_figures_draw_the_strands_in_the_browsers_colours_and_six_classes_apart():
    """The report's PR/ROC drew + blue and − green while every browser draws + red and − blue; the sigma
    ROC cycled 5 colours over 6 classes (sigma24 and sigma70 in one red)."""
    from genometracks.browser.export import MINUS_COLOUR, PLUS_COLOUR
    from genometracks.io.figures import curve_colour

    assert curve_colour("+ strand (PR AUC 0.123)", 1) == "#{:02x}{:02x}{:02x}".format(*PLUS_COLOUR) == "#c81e1e"
    assert curve_colour("− strand (ROC AUC 0.9)", 2) == "#{:02x}{:02x}{:02x}".format(*MINUS_COLOUR) == "#1e3cc8"
    assert curve_colour("both strands (PR AUC 0.2)", 0) == "#212121"
    classes = ["sigma24", "sigma28", "sigma32", "sigma38", "sigma54", "sigma70"]
    assert len({curve_colour(name, i) for i, name in enumerate(classes)}) == 6
