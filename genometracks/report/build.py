"""`DIR/report.html` and `DIR/report.md` from whatever a run directory holds.

Sections appear only for outputs that exist; the rest are listed under "Not produced in this run"
with the command that makes them (never a broken link). Figures are referenced by paths relative
to DIR. The test-split PR/ROC curves are computed here from the probability bigWigs
(DIR/tracks/tss.{plus,minus}.bw) and the run's labels, and on E. coli the Promotech comparison
(genometracks.report.compare) is run on the test region.
"""

from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from genometracks.browser.snapshot import SnapshotError, browser_snapshot
from genometracks.data.dataset import load_dataset
from genometracks.formats.bigwig import read_bigwig
from genometracks.inference.gene_context import CLASSES as CONTEXT_CLASSES
from genometracks.inference.peaks import validation_threshold
from genometracks.io.atomic import write_text_atomic
from genometracks.io.paths import shared_data
from genometracks.io.rundir import RunDir
from genometracks.report.compare import compare_with_promotech, comparison_rows, site_track, write_comparison
from genometracks.report.contributions import LOGOS as CONTRIBUTION_LOGOS
from genometracks.report.contributions import contribution_blocks
from genometracks.report.plots import (
    fmt,
    paper_rows,
    plot_pr,
    plot_roc,
    pr_points,
    read_tsv,
    roc_points,
    side_by_side_rows,
    split_metric_rows,
    table_rows,
)
from genometracks.training import metrics as M

log = logging.getLogger(__name__)
_NUMBER = re.compile(r"^[-+−–∞0-9.,e]*$")  # table cells drawn right-aligned
HEAD_COLUMNS = (
    "head_id",
    "offset_from_tss",
    "consensus",
    "information",
    "informative",
    "best_match",
    "match_p_value",
    "match_e_value",
    "match_q_value",
    "match_orientation",
    "information_low",
    "information_high",
    "match_support",
)  # Tomtom p, E, BH q; the bootstrap's information interval and match support (interpret.head_stability)
NC_000913_3_LENGTH = 4_641_652  # Promotech's genome; the comparison needs the same assembly
PROMOTECH_FILE = "ecoli_k12/promotech/NC_000913.3_genome_predictions.csv"
PROMOTECH_CAVEAT = (
    "Caveat: Promotech's published model was trained on whole-genome TSS sets of several bacteria, "
    "E. coli's included (Thomason 2015 dRNA-seq, ECOLI_2 in its repository), so the test region "
    "is not held out for Promotech as it is for genometracks: on E. coli's curated labels most of its "
    "advantage comes from those TSSs (`python3 scripts/promotech_heldout.py DIR` scores both tools without them)."
)
CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1250px;margin:1.5em auto;padding:0 1em;color:#222}"
    "h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}"
    "table{border-collapse:collapse;margin:.4em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;"
    "text-align:right}th{background:#f2f2f2;text-align:center}td.t,th:first-child{text-align:left}"
    "tr.hl td{background:#fff4cc;font-weight:600}.row{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}"
    "figure{margin:.4em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#555}"
    ".gallery{display:flex;flex-wrap:wrap;gap:1em}.gallery figure{max-width:48%}.missing li{color:#7a5b00}"
)


@dataclass
class Section:
    """A titled list of blocks: ("p", text), ("table", caption, header, rows, highlight row | None),
    ("row", [table blocks side by side]), ("gallery", [(relative path, caption)]), ("links", [(label, path)])."""

    title: str
    blocks: list = field(default_factory=list)


@dataclass
class _Report:
    run_dir: Path
    sections: list = field(default_factory=list)
    missing: list = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.run_dir.resolve()).as_posix()

    def images(self, paths) -> list[tuple[str, str]]:
        return [(self.rel(p), p.stem.replace("_", " ")) for p in paths if p.is_file()]


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError as err:
        log.warning("%s: not valid JSON (%s); left out of the report", path, err)
        return None


def evaluate_test_split(run_dir: Path, cfg) -> dict:
    """Labels and bigWig probabilities over the test split: {'labels'|'scores': {strand: [n]},
    'regions', 'sites', 'values': {(chrom, strand): whole-contig float32}, 'label_set', 'train_nt'}."""
    dataset = load_dataset(cfg)
    files = {s: RunDir(run_dir).tss_bigwig(s) for s in "+-"}
    regions = dataset.splits["test"]
    values = {(r.chrom, s): read_bigwig(files[s], r.chrom) for r in regions for s in "+-"}
    labels: dict[str, list] = {"+": [], "-": []}
    scores: dict[str, list] = {"+": [], "-": []}
    for r in regions:
        truth = site_track(dataset.sites, r.chrom, r.start, r.end)
        for s in "+-":
            labels[s].append(truth[s])
            scores[s].append(np.nan_to_num(values[(r.chrom, s)][r.start : r.end], nan=0.0))
    return {
        "labels": {s: np.concatenate(v) for s, v in labels.items()},
        "scores": {s: np.concatenate(v) for s, v in scores.items()},
        "regions": regions,
        "sites": dataset.sites,
        "values": values,
        "label_set": dataset.label_set,
        "train_nt": 2 * sum(len(r) for r in dataset.splits["train"]),
    }


def _curves(rep: _Report, ev: dict) -> Section:
    y, p = ev["labels"], ev["scores"]
    parts = {"both strands": (np.r_[y["+"], y["-"]], np.r_[p["+"], p["-"]]), "+ strand": (y["+"], p["+"]), "− strand": (y["-"], p["-"])}
    aucs = {k: (M.roc_auc(y, p), M.average_precision(y, p)) for k, (y, p) in parts.items()}
    pr = {f"{k} (PR AUC {aucs[k][1]:.3f})": pr_points(y, p) for k, (y, p) in parts.items()}
    roc = {f"{k} (ROC AUC {aucs[k][0]:.3f})": roc_points(y, p) for k, (y, p) in parts.items()}
    rows = [[k, fmt(y.size), fmt(int(y.sum())), fmt(aucs[k][0]), fmt(aucs[k][1])] for k, (y, p) in parts.items()]
    y_all = parts["both strands"][0]
    where = ", ".join(f"{r.chrom}:{r.start:,}-{r.end:,}" for r in ev["regions"])
    plots = RunDir(rep.run_dir).plots
    threshold, source = validation_threshold(rep.run_dir)
    points, point_text = {}, ""
    if threshold is not None:  # where the peak threshold (chosen on validation) sits on the test curve
        op = M.operating_point(*parts["both strands"], threshold)
        if op["calls"]:
            points[f"peak threshold {threshold:.3g} (validation): precision {op['precision']:.2f}, recall {op['recall']:.2f}"] = (
                op["recall"],
                op["precision"],
            )
            point_text = (
                f" The marked point is the peak threshold {threshold:.4g} ({source}) applied per position: "
                f"{op['calls']:,} positions called, precision {op['precision']:.3f}, recall {op['recall']:.3f}, "
                f"F1 {op['f1']:.3f}."
            )
    png_pr = plot_pr(pr, plots / "test_pr.png", f"Test split PR ({ev['label_set']})", base_rate=float(y_all.mean()), points=points)
    png_roc = plot_roc(roc, plots / "test_roc.png", f"Test split ROC ({ev['label_set']})")
    text = (
        f"Per-position curves over the test split ({where}; {y_all.size:,} positions on both strands, "
        f"{int(y_all.sum()):,} labelled TSSs of '{ev['label_set']}'), computed from the predicted "
        "probability bigWigs (tracks/tss.plus.bw, tss.minus.bw). They can differ slightly from the metrics "
        "table's, computed on the model's own streamed test pass." + point_text
    )
    table = ("table", "From the tracks", ["strands", "positions", "TSSs", "ROC AUC", "PR AUC"], rows, None)
    return Section("PR and ROC curves (test split)", [("p", text), table, ("gallery", rep.images([png_pr, png_roc]))])


def _comparison(rep: _Report, ev: dict, cfg) -> tuple[Section | None, dict | None]:
    root = Path(str(cfg.paths.shared_data)) if cfg is not None and cfg.get("paths") else shared_data()
    path = root / PROMOTECH_FILE
    regions = [r for r in ev["regions"] if r.chrom == "NC_000913.3" and ev["values"][(r.chrom, "+")].size == NC_000913_3_LENGTH]
    if not regions or not path.is_file():
        why = f"{path} not found" if regions else "not an NC_000913.3 run"
        rep.missing.append(f"Promotech peer comparison ({why})")
        return None, None
    r = regions[0]
    result = compare_with_promotech(
        {s: ev["values"][(r.chrom, s)] for s in "+-"},
        ev["sites"],
        path,
        (r.chrom, r.start, r.end),
        own_threshold=validation_threshold(rep.run_dir)[0],
    )
    files = write_comparison(result, RunDir(rep.run_dir).comparison)
    header, rows = comparison_rows(result)
    w = result["windows"]
    blocks = [
        (
            "p",
            f"Test region {r.chrom}:{r.start:,}-{r.end:,}, labels '{ev['label_set']}': {w['n']:,} bins "
            f"({w['positive']:,} positive), {w['promotech_listed']:,} with a published Promotech window.",
        ),
        ("p", "Matching rule: " + result["rule"]),
        ("p", PROMOTECH_CAVEAT),
        ("table", "genometracks vs Promotech on the same bins and labels", header, [[fmt(v) for v in row] for row in rows], None),
        ("gallery", rep.images([files["png"]])),
        ("links", [("comparison table (TSV)", rep.rel(files["tsv"])), ("comparison (JSON)", rep.rel(files["json"]))]),
    ]
    return Section("Peer comparison: Promotech", blocks), result


def _metrics(rep: _Report, metrics: dict, comparison: dict | None) -> None:
    labels = metrics.get("labels")
    extra = [("Promotech (per position, same labels)", comparison["positions"]["promotech"])] if comparison else []
    header, rows = side_by_side_rows((metrics.get("test") or {}).get("both") or {}, labels, extra)
    p_header, p_rows, hl = paper_rows(labels)
    s_header, s_rows = split_metric_rows(metrics)
    rep.sections.append(
        Section(
            "Metrics",
            [
                (
                    "p",
                    f"Labels '{labels}'. Per-position metrics from {metrics.get('source', 'the training stage (metrics.json)')} "
                    f"(model: {metrics.get('best_checkpoint', '–')}); PR AUC k=4/k=10 pool consecutive k-mers as in "
                    "the TSS paper. Precision, recall, F1 and LR+ are per position at one threshold, the validation "
                    "split's F1-optimal probability, on every split (the test split's own optimum would be an "
                    "oracle).",
                ),
                (
                    "row",
                    [
                        ("table", "This run beside the paper", header, rows, None),
                        ("table", "Paper, Table 2 (test region [2,738,785, 3,667,115) of NC_000913.3)", p_header, p_rows, hl),
                    ],
                ),
                ("table", "All splits and strands", s_header, s_rows, None),
            ],
        )
    )


def _limit(value: object) -> str:
    """A trainer limit for the budget table: None / -1 mean no limit."""
    return "none" if value is None or value == -1 else fmt(value)


def _budget(rep: _Report, cfg, metrics: dict | None, ev: dict | None) -> None:
    rows = []
    if cfg is not None:
        tr, m = cfg.get("trainer") or {}, cfg.get("model") or {}
        rows += [
            ["data / labels", f"{cfg.data.get('name')} / {cfg.get('labels') or cfg.data.get('labels')}"],
            ["model", ", ".join(f"{k}={m.get(k)}" for k in ("n_layer", "n_head", "d_model", "window", "seg_len") if m.get(k) is not None)],
            ["trainer.max_epochs", _limit(tr.get("max_epochs"))],
            ["trainer.max_steps", _limit(tr.get("max_steps"))],
            ["trainer.limit_train_batches", _limit(tr.get("limit_train_batches"))],
            ["task.lr", f"{(cfg.get('task') or {}).get('lr', float('nan')):g}"],
        ]
        step_nt = int(cfg.data.get("n_streams") or 0) * int(m.get("seg_len") or 0)
        rows.append(["positions per step (n_streams × seg_len)", fmt(step_nt)])
    if metrics is not None:
        rows += [["optimiser steps run", fmt(metrics.get("global_step"))], ["epochs run", fmt(metrics.get("epochs"))]]
        if cfg is not None and metrics.get("global_step") is not None:
            seen = int(metrics["global_step"]) * step_nt
            frac = f" ≈ {seen / ev['train_nt']:.2f} × the training split (both strands)" if ev else ""
            rows.append(["positions trained on", f"{seen:,}{frac}"])
    if rows:
        table = ("table", "What this run was trained with", ["", "value"], rows, None)
        rep.sections.append(Section("Training budget", [table]))
    else:
        rep.missing.append("training budget (config.yaml / metrics.json; run `genometracks train`)")


def _shipped_model(rep: _Report, card: dict) -> None:
    """What the shipped model that wrote the tracks is, from its card (DIR/model_card.json)."""
    t, a = card.get("training") or {}, card.get("architecture") or {}
    labels = card.get("labels") or {}
    rows = [
        ["model", f"{card.get('name')} (shipped with genometracks; no training in this run)"],
        [
            "architecture",
            ", ".join(f"{k}={a.get(k)}" for k in ("n_layer", "n_head", "d_model", "window", "seg_len") if a.get(k) is not None),
        ],
        ["labels trained on", str(labels.get("trained_on"))],
        ["trained by", f"{t.get('command')} (commit {t.get('commit')})"],
        ["positions trained on", f"{fmt(t.get('positions_seen'))} ({fmt(t.get('global_step'))} steps)"],
        ["training wall time (s)", fmt(t.get("wall_seconds"), 1)],
    ]
    parent = t.get("parent") or {}
    if parent:  # a fine-tune: what it started from, and the whole training behind the weights
        rows += [
            ["started from", f"{parent.get('kind', 'model')} trained on '{parent.get('labels')}' ({parent.get('command')})"],
            ["positions trained on, all stages", fmt(t.get("positions_seen_total"))],
            ["training wall time, all stages (s)", fmt(t.get("wall_seconds_total"), 1)],
        ]
    rows += [
        ["calibration logit offset", fmt((card.get("calibration") or {}).get("logit_offset"))],
        ["peak threshold", f"{fmt((card.get('peaks') or {}).get('threshold'))} (validation F1-optimal)"],
    ]
    licences = [[s.get("name", ""), s.get("licence", "")] for s in labels.get("sets") or []]
    rep.sections.append(
        Section(
            "Shipped model",
            [
                ("p", "Metrics in the model card are those of its training genome's validation and test splits."),
                ("table", "The model that wrote these tracks (model_card.json)", ["", "value"], rows, None),
                ("table", "Label sets and their licences", ["set", "licence"], licences, None),
            ],
        )
    )


def motif_hit_sentence(interpret_json: Path) -> str:
    """One sentence on the motif-hit track from interpret.json (heads → motif_hits); '' when there is none."""
    try:
        info = json.loads(interpret_json.read_text())["heads"]["motif_hits"]
        words, null = (int(info[k]) for k in ("records", "at_random_positions"))
        calls, slack, cut, per_head = int(info["calls"]), int(info["slack"]), float(info["q_threshold"]), dict(info["per_head"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""  # no heads part, or an interpret.json of the genome-wide scan before session 16
    per = ", ".join(f"{head} {count:,}" for head, count in per_head.items()) or "no informative head"
    if words == 0:  # no track file: say so, and how close the scan came
        closest = info.get("min_q_value")
        near = f" (smallest q {closest:.3g})" if isinstance(closest, (int, float)) else ""
        return (
            f"Motif-hit track: no head word at q ≤ {cut:g} in the promoters of {calls:,} TSS calls{near}, so no "
            "tracks/motif_hits.bb was written; a 7-nt word gives window p-values of 1e-4 at best, and over "
            "calls × heads tests only a large enough share of near-consensus words passes (interpret.scan_qvalue sets the cut-off)."
        )
    return (
        f"Motif-hit track (tracks/motif_hits.bb): {words:,} head words at q ≤ {cut:g} in the promoters of {calls:,} TSS calls, "
        f"each within {slack} nt of its head's offset ({per}); the same scan at as many random positions keeps {null:,}."
    )


def _interpretation(rep: _Report) -> None:
    d = RunDir(rep.run_dir)
    heads = rep.images([d.plots / "heads_heatmap.png", d.plots / "heads_correlation.png", d.plots / "heads_stability.png"])
    if heads:
        rep.sections.append(Section("Attention heads", [("gallery", heads)]))
    else:
        rep.missing.append("attention heatmap (plots/heads_heatmap.png; run `genometracks interpret`)")
    logos = sorted((d.logos).glob("*.png"))
    path = d.interpret / "heads.tsv" if (d.interpret / "heads.tsv").is_file() else None
    table = read_tsv(path) if path else None
    blocks, captions = [], {}
    if table is not None:
        header, rows, more = table_rows(table, HEAD_COLUMNS)
        blocks.append(("table", f"Head motifs and their best known-motif matches ({rep.rel(path)}){more}", header, rows, None))
        hits = motif_hit_sentence(d.interpret_json)
        if hits:
            blocks.append(("p", hits))
        captions = {
            str(r.get("head_id")): f"{r.get('head_id')}: {r.get('consensus', '')}, best match "
            f"{r.get('best_match', '.')} (Tomtom q = {fmt(r.get('match_q_value'))})"
            for r in table.to_dict("records")
        }
    head_logos = [(rep.rel(p), captions[p.stem]) for p in logos if p.stem in captions]
    other_logos = rep.images([p for p in logos if p.stem not in captions and p.stem not in CONTRIBUTION_LOGOS])
    if blocks or head_logos or other_logos:
        rep.sections.append(
            Section(
                "Head logos and known-motif matches",
                blocks
                + [
                    ("gallery", head_logos),
                    ("p", "Other logos (kernels, class optimisation, attribution):" if other_logos and head_logos else ""),
                    ("gallery", other_logos),
                ],
            )
        )
    if not logos:
        rep.missing.append("head logos (logos/*.png; run `genometracks interpret`)")
    if table is None:
        rep.missing.append("head known-motif matches (interpret/heads.tsv; run `genometracks interpret`)")
    contributions = contribution_blocks(rep.run_dir, rep.rel)
    if contributions:
        rep.sections.append(Section("DeepLIFT/SHAP and TF-MoDISco", contributions))
    else:
        rep.missing.append("DeepLIFT/SHAP and TF-MoDISco (interpret.json → deeplift; run `genometracks interpret`)")
    metaplots = rep.images(sorted((d.plots).glob("metaplot*.png")))
    if metaplots:
        rep.sections.append(Section("Metaplots", [("gallery", metaplots)]))
    else:
        rep.missing.append("metaplots (plots/metaplot*.png; run `genometracks interpret`)")
    known = {"heads_heatmap", "heads_correlation", "heads_stability", "test_pr", "test_roc", "browser_snapshot", "tss_context"}
    other = [p for p in sorted((d.plots).glob("*.png")) if p.stem not in known and not p.stem.startswith("metaplot")]
    if other:
        rep.sections.append(Section("Other figures", [("gallery", rep.images(other))]))


def _nt(value: float | None) -> str:
    """A length in nt as written in the report: '45' or '45.5' ('-' where none)."""
    return "-" if value is None else f"{value:g}"


def _gene_context(rep: _Report) -> None:
    """The calls by gene context beside the data set's TSSs (tracks/tss_context.json, plots/tss_context.png)."""
    d = RunDir(rep.run_dir)
    summary = _json(d.tracks / "tss_context.json")
    if summary is None:
        rep.missing.append("TSS calls in gene context (tracks/tss_context.json; needs data.annotation=GFF3, then `genometracks peaks`)")
        return
    calls, reference = summary["calls"], summary.get("reference")
    header = ["class", "TSS calls", "% of calls"] + ([f"{reference['labels']} TSSs", "%"] if reference else [])

    def cells(part: dict, key: str) -> list[str]:
        return [fmt(part[key]), f"{100 * part[key] / part['calls']:.1f}" if part["calls"] else "-"]

    rows = [[c, *cells(calls, c), *(cells(reference, c) if reference else [])] for c in CONTEXT_CLASSES]
    rows.append(["all", fmt(calls["calls"]), "", *([fmt(reference["calls"]), ""] if reference else [])])
    rows.append(
        [
            "median 5'UTR of primary TSSs, nt",
            _nt(calls["median_primary_utr"]),
            "",
            *([_nt(reference["median_primary_utr"]), ""] if reference else []),
        ]
    )
    rules = summary["rules"]
    text = (
        f"Each call against the {summary['genes']:,} genes of {Path(summary['annotation']).name}: primary/secondary = "
        f"up to {rules['max_utr']} nt upstream of a gene's start on its strand (the most probable TSS of each gene is its "
        f"primary), internal = inside a gene on its strand, antisense = inside a gene on the other strand or within "
        f"{rules['antisense_flank']} nt of it, orphan = none of these; a TSS may be in several classes. Every call with its "
        "classes and genes: tracks/tss_context.tsv, and as GFF3 with its sigma class: tracks/tss_calls.gff3."
    )
    per_gene = summary.get("per_gene")  # written since session 27
    if per_gene and per_gene["genes"]:
        text += (
            f" {fmt(per_gene['with_primary_tss'])} of the {fmt(per_gene['genes'])} genes "
            f"({100 * per_gene['share_with_primary_tss']:.0f} %) have a primary call (median 5'UTR "
            f"{_nt(per_gene['median_utr_length'])} nt), {fmt(per_gene['with_secondary_tss'])} a secondary one; each gene "
            "with its calls: tracks/gene_tss.tsv."
        )
    blocks = [("p", text), ("table", "TSS calls by gene context", header, rows, None)]
    blocks.append(("gallery", rep.images([d.plots / "tss_context.png"])))
    rep.sections.append(Section("TSS calls in gene context", blocks))


def _sigma70_promoters(rep: _Report) -> None:
    """Each call's σ70 promoter beside random positions and the labels (interpret.json → promoters)."""
    d = RunDir(rep.run_dir)
    info = (_json(d.interpret_json) or {}).get("promoters")
    if not info or "calls" not in info:
        return  # no promoters part, or no rpoD15-19 matrices among the reference motifs (interpret.json says which)
    scans = [("TSS calls", info["calls"]), ("random positions", info["at_random_positions"])]
    if info.get("reference"):
        scans.insert(1, (f"{info.get('labels') or 'reference'} TSSs", info["reference"]))

    def near(scan: dict) -> str:
        best = {int(k): int(v) for k, v in scan["best_discriminator_all"].items()}
        share = (best.get(6, 0) + best.get(7, 0)) / scan["tested"] if scan["tested"] else None
        return "-" if share is None else f"{100 * share:.1f}"

    rows = [[name, fmt(s["calls"]), fmt(s["kept"]), f"{100 * (s['kept_fraction'] or 0):.1f}", near(s)] for name, s in scans]
    header = ["sites", "n", f"σ70 promoter at q ≤ {info['q_threshold']:g}", "%", "best window 6-7 nt upstream, %"]
    text = (
        f"Each call's σ70 promoter: the DPInteract windows {', '.join(info['matrices'])} (−35 hexamer, spacer 15-19 nt, "
        f"−10 hexamer) with {info['discriminators'][0]}-{info['discriminators'][1]} nt between the −10 hexamer and the +1, "
        "the window of smallest FIMO p per call, Šidák-corrected for its 35 windows, Benjamini-Hochberg over the calls. "
        "Kept promoters: tracks/sigma70_boxes.bb (−35 and −10 boxes) and the calls' GFF3; every call's best window: "
        "interpret/sigma70_promoters.tsv. Where a call's best window lies says how exactly it sits on a +1: at random "
        "positions each of the 7 placements is as likely (14 %)."
    )
    blocks = [("p", text), ("table", "σ70 promoters", header, rows, None)]
    blocks.append(("gallery", rep.images([d.plots / "sigma70_promoters.png"])))
    rep.sections.append(Section("σ70 promoters of the calls", blocks))


def _sigma(rep: _Report) -> None:
    d = RunDir(rep.run_dir)
    sdir = RunDir(d.sigma)
    metrics = _json(sdir.metrics_json)
    logos = rep.images(sorted({*(d.logos / "sigma").glob("*.png"), *(sdir.logos / "sigma").glob("*.png")}))
    if metrics is None and not logos:
        rep.missing.append(
            f"sigma-class table and logos (sigma/metrics.json; run `genometracks train experiment=sigma_cnn run_dir={sdir.root}`)"
        )
        return
    blocks = []
    if metrics is not None:
        header = ["mode", "class", "n", "accuracy", "sensitivity", "specificity", "ROC AUC", "PR AUC"]
        rows = [
            [
                mode,
                name,
                fmt(m.get("n_pos")),
                fmt(m.get("accuracy")),
                fmt(m.get("sensitivity")),
                fmt(m.get("specificity")),
                fmt(m.get("roc_auc")),
                fmt(m.get("pr_auc")),
            ]
            for mode, per in (metrics.get("metrics") or {}).items()
            for name, m in per.items()
        ]
        if "softmax+prior" in (metrics.get("metrics") or {}):
            blocks.append(
                (
                    "p",
                    "softmax+prior: the softmax model's out-of-fold probabilities re-weighted to the class shares "
                    "its fold was trained on, as the sigma track re-weights the final model's; its rows describe "
                    "the track's calls (the softmax rows, of balanced class weights, treat the classes as equally common).",
                )
            )
        blocks.append(("table", f"Sigma CNN, out-of-fold ({metrics.get('folds', '?')}-fold CV), one class vs rest", header, rows, None))
    blocks.append(("gallery", rep.images([sdir.root / "roc.png", sdir.motifs / "sigma_cnn_kernels.png"]) + logos))
    rep.sections.append(Section("Sigma-factor classes", blocks))


def _snapshot_is_stale(d: RunDir) -> bool:
    """Whether DIR/plots/browser_snapshot.png is older than the page or a track it shows (a track rewritten
    since, e.g. by `stages=[interpret]`, would be shown as it was)."""
    shot = d.plots / "browser_snapshot.png"
    if not shot.is_file():
        return False
    shown = [d.igv / "index.html", *(p for p in d.tracks.glob("*") if p.is_file())]
    return any(p.is_file() and p.stat().st_mtime_ns > shot.stat().st_mtime_ns for p in shown)


def _browser(rep: _Report, snapshot: bool) -> None:
    """Links to the views, and an igv.js snapshot at the locus the views open at (browser.locus), taken
    again when a track changed since the last one."""
    d = RunDir(rep.run_dir)
    if snapshot and _snapshot_is_stale(d):
        (d.plots / "browser_snapshot.png").unlink()
    shots = [
        p
        for p in [d.plots / "browser_snapshot.png", *sorted((d.igv).glob("snapshot*.png")), *sorted((d.igv / "snapshots").glob("*.png"))]
        if p.is_file()
    ]
    if not shots and snapshot and (d.igv / "index.html").is_file():
        try:
            shot = browser_snapshot(d.root)
            shots = [shot] if shot else []
            if shot is None:
                rep.missing.append("browser snapshot (Chromium is not installed)")
        except (SnapshotError, OSError) as err:
            rep.missing.append(f"browser snapshot ({err})")
    elif not shots:
        rep.missing.append("browser snapshot (igv/index.html not found; run `genometracks export`)")
    links = [
        (label, rep.rel(p))
        for label, p in (
            ("UCSC track hub (hub.txt)", d.hub / "hub.txt"),
            ("UCSC hub on GenArk (hub.txt)", d.hub_genark / "hub.txt"),
            ("IGV desktop session", d.igv / "session.xml"),
            ("igv.js page (open via `genometracks serve DIR`)", d.igv / "index.html"),
            ("TSS probability, + strand (bigWig)", d.tss_bigwig("+")),
            ("TSS probability, − strand (bigWig)", d.tss_bigwig("-")),
        )
        if p.is_file()
    ]
    for what, p in (("UCSC track hub", d.hub / "hub.txt"), ("IGV session", d.igv / "session.xml")):
        if not p.is_file():
            rep.missing.append(f"{what} ({p.relative_to(d.root)}; run `genometracks export`)")
    if shots or links:
        rep.sections.append(Section("Genome browser", [("gallery", rep.images(shots)), ("links", links)]))


def _cell(text: str) -> str:
    return html.escape(str(text), quote=True)


def _html_block(block: tuple) -> str:
    kind = block[0]
    if kind == "p":
        return f"<p>{_cell(block[1])}</p>"
    if kind == "table":
        _, caption, header, rows, hl = block
        head = "".join(f"<th>{_cell(h)}</th>" for h in header)
        marks = ['<tr class="hl">' if i == hl else "<tr>" for i in range(len(rows))]
        cells = [
            "".join(f"<td>{_cell(v)}</td>" if _NUMBER.match(str(v)) else f'<td class="t">{_cell(v)}</td>' for v in row) for row in rows
        ]
        body = "".join(f"{mark}{row}</tr>" for mark, row in zip(marks, cells))
        return f"<table><caption>{_cell(caption)}</caption><tr>{head}</tr>{body}</table>"
    if kind == "row":
        return '<div class="row">' + "".join(f"<div>{_html_block(b)}</div>" for b in block[1]) + "</div>"
    if kind == "gallery":
        return (
            '<div class="gallery">'
            + "".join(
                f'<figure><a href="{_cell(quote(p))}"><img src="{_cell(quote(p))}" alt="{_cell(c)}"></a>'
                f"<figcaption>{_cell(c)}</figcaption></figure>"
                for p, c in block[1]
            )
            + "</div>"
        )
    if kind == "links":
        return "<ul>" + "".join(f'<li><a href="{_cell(quote(p))}">{_cell(label)}</a> ({_cell(p)})</li>' for label, p in block[1]) + "</ul>"
    raise ValueError(f"unknown report block {kind!r}")


def _md_text(text: object) -> str:
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _md_block(block: tuple) -> str:
    kind = block[0]
    if kind == "p":
        return _md_text(block[1]) + "\n"
    if kind == "table":
        _, caption, header, rows, hl = block
        lines = [f"**{_md_text(caption)}**", "", "| " + " | ".join(_md_text(h) or " " for h in header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join((f"**{_md_text(v)}**" if i == hl else _md_text(v)) for v in row) + " |" for i, row in enumerate(rows)]
        return "\n".join(lines) + "\n"
    if kind == "row":
        return "\n".join(_md_block(b) for b in block[1])
    if kind == "gallery":
        return "\n".join(f"![{_md_text(c)}]({quote(p)})" for p, c in block[1]) + "\n"
    if kind == "links":
        return "\n".join(f"- [{_md_text(label)}]({quote(p)})" for label, p in block[1]) + "\n"
    raise ValueError(f"unknown report block {kind!r}")


def render(rep: _Report, title: str) -> tuple[str, str]:
    """(HTML, Markdown) of the report's sections and its "not produced" list."""
    sections = [s for s in rep.sections if any(b[1] for b in s.blocks)]
    body = "".join(f"<h2>{_cell(s.title)}</h2>" + "".join(_html_block(b) for b in s.blocks if b[1]) for s in sections)
    md = "".join(f"## {_md_text(s.title)}\n\n" + "\n".join(_md_block(b) for b in s.blocks if b[1]) + "\n" for s in sections)
    if rep.missing:
        body += '<h2>Not produced in this run</h2><ul class="missing">' + "".join(f"<li>{_cell(m)}</li>" for m in rep.missing) + "</ul>"
        md += "## Not produced in this run\n\n" + "".join(f"- {_md_text(m)}\n" for m in rep.missing)
    page = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_cell(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{_cell(title)}</h1>{body}</body></html>\n"
    )
    return page, f"# {_md_text(title)}\n\n{md}"


def build_report(run_dir: str | Path, snapshot: bool = True, compare: bool = True) -> tuple[Path, Path]:
    """Write DIR/report.html and DIR/report.md (atomically) from the run directory's outputs.

    snapshot: take a browser snapshot (DIR/plots/browser_snapshot.png) when DIR/igv/ exists and none
    is there yet; compare: run the Promotech comparison on E. coli runs."""
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run directory not found; pass run_dir=DIR of a `genometracks` run")
    rep = _Report(run_dir)
    run = RunDir(run_dir)
    cfg = OmegaConf.load(run.config) if run.config.is_file() else None
    metrics = _json(run.metrics_json)
    if metrics is not None and "test" not in metrics and "metrics" in metrics:  # DIR is itself a sigma run
        metrics = None
    ev = curves = comparison = result = None
    if cfg is not None and OmegaConf.select(cfg, "task.test_split", default=True) is False:
        rep.missing.append(
            "PR and ROC curves of the test split and the Promotech comparison (task.test_split=false: this run leaves the "
            "test region alone)"
        )
    elif not run.tss_bigwig("+").is_file() or cfg is None:
        rep.missing.append("PR and ROC curves (tracks/tss.*.bw and config.yaml; run `genometracks predict`)")
    else:
        try:
            ev = evaluate_test_split(run_dir, cfg)
            curves = _curves(rep, ev)
        except (ValueError, OSError, KeyError, AttributeError) as err:  # labels/tracks that do not fit the config
            log.warning("test-split curves left out: %s", err)
            rep.missing.append(f"PR and ROC curves (could not evaluate the tracks: {err})")
    if ev is not None and compare:
        try:
            comparison, result = _comparison(rep, ev, cfg)
        except (ValueError, OSError) as err:  # PromotechError: a predictions file that cannot be read
            rep.missing.append(f"Promotech peer comparison ({err})")
    card = _json(run_dir / "model_card.json") if metrics is None else None  # tracks made by a shipped model
    same_data = cfg is not None and card is not None and cfg.data.get("name") == (card.get("task") or {}).get("data")
    if same_data and card.get("metrics"):  # the card's splits are this genome's (else they would mislead)
        # the labels the tracks are scored on here: labels= overrides data.labels (conf/config.yaml)
        run_labels = ev["label_set"] if ev is not None else (cfg.get("labels") or cfg.data.get("labels"))
        card_labels = card["metrics"].get("labels")
        if card_labels == run_labels:
            evaluated = card["metrics"].get("evaluated_by") or "at ship time"
            metrics = {
                **card["metrics"],
                "best_checkpoint": f"shipped model {card.get('name')}",
                "source": f"the shipped model's card (model_card.json: {evaluated})",
            }
        else:  # scored on other labels than the curves and the peer comparison below: not side by side
            rep.missing.append(
                f"the shipped model's own metrics (model_card.json, labels '{card_labels}'): this run scores its tracks "
                f"on labels '{run_labels}' (curves and peer comparison below); add data.labels={card_labels} to see them"
            )
    if metrics is not None:
        # the peer's column only beside metrics of the same labels
        same_labels = ev is not None and ev.get("label_set") == metrics.get("labels")
        _metrics(rep, metrics, result if same_labels else None)
    elif card is None or not card.get("metrics"):
        rep.missing.append("metrics table (metrics.json; run `genometracks train`)")
    if card is not None:
        _shipped_model(rep, card)
    else:
        _budget(rep, cfg, metrics, ev)
    rep.sections += [s for s in (curves, comparison) if s is not None]
    _gene_context(rep)
    _sigma70_promoters(rep)
    _interpretation(rep)
    _sigma(rep)
    _browser(rep, snapshot)
    labels = (metrics or {}).get("labels") or (ev or {}).get("label_set")
    scored = f" (labels {labels})" if labels else " (no TSS labels: tracks only)"
    page, md = render(rep, f"genometracks report: {run_dir.resolve().name}{scored}")
    return write_text_atomic(run.report_html, page), write_text_atomic(run.report_md, md)
