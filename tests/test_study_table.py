"""scripts/study_table.py: one Markdown row per training job, read from the job's own files."""

import importlib.util
import json
import os
from pathlib import Path

import yaml


def _study_table():
    spec = importlib.util.spec_from_file_location("study_table", Path(__file__).parents[1] / "scripts" / "study_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_row_has_positions_validation_per_epoch_and_test(tmp_path):
    job = tmp_path / "sweep" / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / "config.yaml").write_text(yaml.safe_dump({"data": {"n_streams": 32}, "model": {"seg_len": 512}}))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model=paper", "run_dir=x"]))
    metrics = {"global_step": 1000, "validation": {"both": {"roc_auc": 0.91234, "pr_auc": 0.01234}}}
    (job / "metrics.json").write_text(json.dumps(metrics))
    for version, rows in ((0, ["0,420,,0.004,0.82481,0.00389"]), (1, ["1,841,0.1,,,", "1,842,,0.003,0.9,0.012"])):
        log = job / "logs" / f"version_{version}"
        log.mkdir(parents=True)
        (log / "metrics.csv").write_text("epoch,step,train_loss,val_loss,val_roc_auc,val_pr_auc\n" + "\n".join(rows) + "\n")
    os.utime(job / "config.yaml", (1_000_000, 1_000_000))
    os.utime(job / "metrics.json", (1_000_090, 1_000_090))  # no wall time recorded: the files' 90 s
    row = _study_table().job_row(job)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["sweep/0", "`model=paper`", "16.4 M", "1.5", "0.912 / 0.0123", "0.825 / 0.0039, 0.900 / 0.0120", "—"]
    # recorded by the training job: every job of a resumed run (the files' times would count the gaps)
    metrics["provenance"] = {"resumed": True, "wall_seconds": 60.0, "wall_seconds_all_jobs": 600.0}
    (job / "metrics.json").write_text(json.dumps(metrics))
    assert _study_table().job_row(job).split("|")[4].strip() == "10.0"
    metrics["provenance"] = {"resumed": False, "wall_seconds": 180.0, "wall_seconds_all_jobs": None}
    (job / "metrics.json").write_text(json.dumps(metrics))
    assert _study_table().job_row(job).split("|")[4].strip() == "3.0"


def test_a_metric_stored_as_null_is_a_dash_not_a_crash(tmp_path):
    # json_safe writes NaN (a validation split without TSSs) as null; the row formatted None and crashed
    job = tmp_path / "sweep" / "1"
    job.mkdir(parents=True)
    (job / "config.yaml").write_text(yaml.safe_dump({"data": {"n_streams": 8}, "model": {"seg_len": 256}}))
    metrics = {
        "global_step": 10,
        "validation": {"both": {"roc_auc": None, "pr_auc": None}},
        "test": {"both": {"roc_auc": 0.9, "pr_auc": None}},
    }
    (job / "metrics.json").write_text(json.dumps(metrics))
    cells = [c.strip() for c in _study_table().job_row(job).strip("|").split("|")]
    assert cells[4] == "— / —" and cells[6] == "0.900 / —"
