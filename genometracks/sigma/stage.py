"""The `sigma` stage of `genometracks run`: a sigma-class CNN on RegulonDB promoters (a short
k-fold check, one model on all rows), its Grad-CAM class logos, and the sigma track of the peaks.

The full benchmark (10-fold, softmax and one-vs-rest) is `genometracks train experiment=sigma_cnn`;
this stage keeps to a budget that fits the pipeline. Writes DIR/sigma/ and DIR/tracks/tss_sigma.bb.
"""

from __future__ import annotations

import json
from pathlib import Path

from hydra import compose
from omegaconf import DictConfig, open_dict

from genometracks.data.dataset import open_genome
from genometracks.io.rundir import RunDir
from genometracks.sigma.evaluate import run_sigma
from genometracks.sigma.track import sigma_track


def sigma_config(cfg: DictConfig) -> DictConfig:
    """The sigma_cnn experiment config composed in the running Hydra app, with the pipeline's budget."""
    sig = compose(config_name="config", overrides=["experiment=sigma_cnn", f"seed={int(cfg.seed)}"])
    budget = cfg.sigma.stage  # conf/sigma/default.yaml
    with open_dict(sig):
        sig.sigma.modes = list(budget.modes)
        sig.sigma.folds = int(budget.folds)
        sig.sigma.logo_model = "softmax"
        sig.sigma.kernels = True
        sig.trainer.max_epochs = int(budget.max_epochs)
        sig.paths = cfg.paths
    return sig


def run_sigma_stage(cfg: DictConfig, out: Path) -> dict:
    """Train/evaluate the sigma CNN into DIR/sigma and classify DIR/tracks/tss_peaks.bed.gz."""
    run = RunDir(out)
    sigma_run = RunDir(run.sigma)  # the sigma CNN's own run directory inside DIR
    sigma_dir = sigma_run.root
    model_path = Path(str(cfg.sigma_model)) if cfg.get("sigma_model") else sigma_run.sigma_model
    result: dict = {}
    if not model_path.exists():
        sig = sigma_config(cfg)
        with open_dict(sig):
            sig.run_dir = str(sigma_dir)
        result = run_sigma(sig)
        result = {"metrics": str(sigma_run.metrics_json.relative_to(out)), "runtime_s": result.get("runtime_s")}
    peaks = run.peaks_bed_gz
    if peaks.exists():
        genome, _, _ = open_genome(cfg)
        try:
            result["track"] = sigma_track(model_path, genome, peaks, run.sigma_bigbed)
        except ValueError as err:  # e.g. no peak far enough from a linear contig end
            run.sigma_bigbed.unlink(missing_ok=True)
            result["track"] = {"skipped": str(err)}
    else:  # no TSS call: an earlier run's sigma bigBed would go on into the hub
        run.sigma_bigbed.unlink(missing_ok=True)
        result["track"] = {"skipped": f"no TSS calls ({peaks.relative_to(out)} not written)"}
    print(json.dumps(result, default=str))
    return result
