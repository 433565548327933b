#!/usr/bin/env python3
"""A Markdown table of a training sweep (`genometracks train -m ... run_dir=DIR`): one row per job
with its overrides, positions seen, wall time and validation (and, where computed, test) per-base
ROC / PR AUC, both strands. Usage: python3 scripts/study_table.py DIR [DIR ...]

Positions seen = global_step x data.n_streams x model.seg_len; wall time = what metrics.json records
(every job of a resumed run), else from the job's config.yaml (written before training starts) to its
metrics.json (written after the last evaluation).
Validation per epoch: the val_roc_auc / val_pr_auc rows of the job's logs/version_*/metrics.csv."""

import csv
import json
import sys
from pathlib import Path

import yaml


def per_epoch(job: Path) -> str:
    """'ROC / PR, ...' of each validation the CSV logger recorded (all versions: a resumed run adds one)."""
    cells = []
    for log in sorted(job.glob("logs/version_*/metrics.csv")):
        with open(log) as handle:
            rows = [r for r in csv.DictReader(handle) if r.get("val_roc_auc")]
        cells += [f"{float(r['val_roc_auc']):.3f} / {float(r['val_pr_auc']):.4f}" for r in rows]
    return ", ".join(cells) or "—"


def job_row(job: Path) -> str | None:
    metrics_path, config_path = job / "metrics.json", job / "config.yaml"
    if not metrics_path.exists() or not config_path.exists():
        return None
    metrics = json.loads(metrics_path.read_text())
    config = yaml.safe_load(config_path.read_text())
    overrides_path = job / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_path.read_text()) if overrides_path.exists() else []
    varied = " ".join(o for o in overrides if not o.startswith(("run_dir", "hydra")))
    seen = metrics["global_step"] * config["data"]["n_streams"] * config["model"]["seg_len"]
    recorded = metrics.get("provenance") or {}  # the training job's own clock, every job of a resumed run
    wall = recorded.get("wall_seconds_all_jobs")
    if wall is None and not recorded.get("resumed"):
        wall = recorded.get("wall_seconds")
    if wall is None:  # runs from before it was recorded: config.yaml (written first) to metrics.json (last)
        wall = metrics_path.stat().st_mtime - config_path.stat().st_mtime

    def cell(split: str) -> str:
        both = metrics.get(split, {}).get("both", {})
        if not both:
            return "—"
        roc, pr = both.get("roc_auc"), both.get("pr_auc")  # null: NaN in the run (e.g. a split without TSSs)
        return f"{'—' if roc is None else format(roc, '.3f')} / {'—' if pr is None else format(pr, '.4f')}"

    name = f"{job.parent.name}/{job.name}"
    return f"| {name} | `{varied}` | {seen / 1e6:.1f} M | {wall / 60:.1f} | {cell('validation')} | {per_epoch(job)} | {cell('test')} |"


def main(dirs: list[str]) -> int:
    print("| job | overrides | positions seen | wall (min) | validation ROC / PR AUC | validation per epoch | test ROC / PR AUC |")
    print("|---|---|---|---|---|---|---|")
    for folder in map(Path, dirs):
        jobs = (
            sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
            if not (folder / "metrics.json").exists()
            else [folder]
        )
        for job in jobs:
            row = job_row(job)
            if row:
                print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
