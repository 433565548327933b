"""The `sigma` stage of `genometracks run`: a sigma-class CNN on RegulonDB promoters (a short
k-fold check, one model on all rows), its Grad-CAM class logos, and the sigma track of the peaks.

The full benchmark (10-fold, softmax and one-vs-rest) is `genometracks train experiment=sigma_cnn`;
this stage keeps to a budget that fits the pipeline. Writes DIR/sigma/ and DIR/tracks/tss_sigma.bb.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hydra import compose
from omegaconf import DictConfig, OmegaConf, open_dict

from genometracks.data.dataset import open_genome
from genometracks.io.atomic import write_text_atomic
from genometracks.io.rundir import RunDir
from genometracks.sigma.evaluate import run_sigma
from genometracks.sigma.track import sigma_track


def sigma_config(cfg: DictConfig) -> DictConfig:
    """The sigma_cnn experiment config composed in the running Hydra app: the user's sigma.* settings
    (overrides included) with the pipeline's budget (sigma.stage: modes, folds, epochs). The class logos
    come from `sigma.logo_model` when the budget's modes hold it, else from the first mode."""
    sig = compose(config_name="config", overrides=["experiment=sigma_cnn", f"seed={int(cfg.seed)}"])
    budget = cfg.sigma.stage  # conf/sigma/default.yaml
    modes = [str(m) for m in budget.modes]
    with open_dict(sig):
        sig.sigma = OmegaConf.create(OmegaConf.to_container(cfg.sigma, resolve=True))
        sig.sigma.modes = modes
        sig.sigma.folds = int(budget.folds)
        if str(sig.sigma.logo_model) not in modes:
            sig.sigma.logo_model = modes[0]
        sig.trainer.max_epochs = int(budget.max_epochs)
        sig.paths = cfg.paths
    return sig


# What the sigma stage writes from the same settings, numbered: raised when a code change alters its outputs, so
# run directories made before redo the stage once. 2: session 20 (HiResCAM through the last batch norm; kernel
# Tomtom q-values over the informative kernels only, session 19).
SIGMA_OUTPUTS = 2


def trained_with(sig: DictConfig) -> str:
    """Fingerprint (SHA-256 of canonical JSON, 16 hex) of what a sigma training reads: sigma.* (threads
    aside), epochs, seed, and the outputs' version (SIGMA_OUTPUTS)."""
    settings = OmegaConf.to_container(sig.sigma, resolve=True)
    assert isinstance(settings, dict)
    settings.pop("threads", None)  # how fast it trains, not what
    chosen = {"sigma": settings, "max_epochs": int(sig.trainer.max_epochs), "seed": int(sig.seed), "outputs": SIGMA_OUTPUTS}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _finished_with(run: RunDir, fingerprint: str) -> bool:
    """Whether the sigma CNN run directory `run` (DIR/sigma) finished training (model, logos and metrics; its
    settings file is written last) with these settings."""
    try:
        recorded = json.loads(run.sigma_trained_with.read_text()).get("settings")
    except (OSError, ValueError):
        return False
    return recorded == fingerprint and run.sigma_model.is_file() and run.metrics_json.is_file()


def run_sigma_stage(cfg: DictConfig, out: Path) -> dict:
    """Train/evaluate the sigma CNN into DIR/sigma (again when its settings changed or an earlier training
    was cut short) unless `sigma_model=` names one, then classify DIR/tracks/tss_peaks.bed.gz."""
    run = RunDir(out)
    sigma_run = RunDir(run.sigma)  # the sigma CNN's own run directory inside DIR
    result: dict = {}
    if cfg.get("sigma_model"):
        model_path = Path(str(cfg.sigma_model))
        if not model_path.is_file():
            raise FileNotFoundError(f"sigma_model={model_path}: no such file; give a sigma CNN (DIR/models/sigma_cnn.pt of a run)")
    else:
        model_path = sigma_run.sigma_model
        sig = sigma_config(cfg)
        fingerprint = trained_with(sig)
        if not _finished_with(sigma_run, fingerprint):
            sigma_run.sigma_trained_with.unlink(missing_ok=True)
            with open_dict(sig):
                sig.run_dir = str(sigma_run.root)
            trained = run_sigma(sig)
            write_text_atomic(sigma_run.sigma_trained_with, json.dumps({"settings": fingerprint}) + "\n")
            result = {"metrics": str(sigma_run.metrics_json.relative_to(out)), "runtime_s": trained.get("runtime_s")}
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
