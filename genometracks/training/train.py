"""`genometracks train`: fit the TSS model, keep the best checkpoint by validation loss, test it.

Writes `DIR/checkpoints/best.ckpt`, `DIR/checkpoints/last.ckpt`, `DIR/metrics.json`,
`DIR/config.yaml` and the logger's files (`DIR/logs/`). `resume=true` continues from last.ckpt,
mid-epoch included (the training memory and the position in the epoch are restored).
"""

from __future__ import annotations

import json
import math
import shlex
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from genometracks.data.datamodule import TSSDataModule
from genometracks.data.dataset import Dataset, load_dataset, load_sites
from genometracks.data.streams import build_labels, stack_labels
from genometracks.io.atomic import write_text_atomic
from genometracks.io.jsonsafe import json_safe
from genometracks.io.malloc import keep_freed_memory
from genometracks.io.provenance import command_line, git_commit, sha256_file
from genometracks.io.run_config import ConfigError, check_resume, save_configuration, save_overrides, shipped_name
from genometracks.io.rundir import RunDir
from genometracks.model import TransformerXL
from genometracks.training.checkpoint import AtomicCheckpoint, LatestCheckpoint, init_source_file, init_weights, load_model
from genometracks.training.task import TSSTask


def job_command() -> tuple[str, dict | None]:
    """The command that reproduces this training job alone, and (in a Hydra multirun) the sweep it
    came from: {"command": the sweep as typed (None where a launcher's subprocess cannot see it), "job":
    its number, "dir": the sweep folder}. A sweep job's own command is `genometracks train` with that
    job's overrides and its own folder as run_dir, so a model card names the one point it was."""
    typed = command_line()
    try:
        hydra = HydraConfig.get()
    except ValueError:  # not under Hydra
        return typed, None
    if hydra.mode != RunMode.MULTIRUN:
        return typed, None
    folder = Path(hydra.runtime.output_dir)
    here = Path.cwd()
    shown = folder.relative_to(here) if folder.is_relative_to(here) else folder
    overrides = [o for o in hydra.overrides.task if not o.startswith("run_dir=")]
    job = " ".join(["genometracks train", *(shlex.quote(o) for o in overrides), f"run_dir={shown}"])
    sweep = {"command": typed if typed.startswith("genometracks") else None, "job": int(hydra.job.num), "dir": str(shown.parent)}
    return job, sweep


def _experiment_name() -> str | None:
    try:
        return HydraConfig.get().runtime.choices.get("experiment")
    except ValueError:
        return None


def model_kwargs(model_cfg: DictConfig) -> dict:
    """Constructor arguments of the model (the config minus `_target_` and stream settings)."""
    plain = OmegaConf.to_container(model_cfg, resolve=True)
    return {k: v for k, v in plain.items() if k not in ("_target_", "seg_len")}


def build_model(model_cfg: DictConfig) -> TransformerXL:
    """The model of a `model=` config, built by `hydra.utils.instantiate` from its `_target_`
    (`seg_len` is a stream setting, not a constructor argument); ConfigError on a non-positive size."""
    kwargs = model_kwargs(model_cfg)
    for key in ("window", "n_layer", "n_head", "d_model", "d_head", "conv_width"):
        if int(kwargs.get(key, 1)) <= 0:
            raise ConfigError(f"model.{key}={kwargs[key]} must be a positive integer")
    if int(model_cfg.seg_len) <= 0:
        raise ConfigError(f"model.seg_len={model_cfg.seg_len} must be a positive integer")
    model = instantiate({"_target_": model_cfg._target_, **kwargs}, _convert_="all")
    if not isinstance(model, TransformerXL):
        raise ConfigError(
            f"model._target_={model_cfg._target_}: the TSS model must be a TransformerXL "
            "(model=small or model=paper); the sigma CNN trains with experiment=sigma_cnn"
        )
    return model


def aux_label_sets(cfg: DictConfig) -> list[str]:
    """`data.aux_labels`: the label sets trained alongside `data.labels`, one extra output each;
    sets the model's `n_outputs` to 1 + their number (ConfigError on a repeat or a contradiction)."""
    aux = [str(name) for name in (cfg.data.get("aux_labels") or [])]
    primary = str(cfg.get("labels") or cfg.data.labels)
    if primary in aux or len(set(aux)) != len(aux):
        raise ConfigError(f"data.aux_labels={aux}: name each label set once, and not data.labels={primary} again")
    wanted, given = 1 + len(aux), int(cfg.model.get("n_outputs", 1))
    if given not in (1, wanted):
        raise ConfigError(
            f"model.n_outputs={given} but data.aux_labels has {len(aux)} sets; leave model.n_outputs=1 (train sets it to {wanted})"
        )
    with open_dict(cfg):
        cfg.model.n_outputs = wanted
    return aux


def training_labels(cfg: DictConfig, dataset: Dataset, aux: list[str]) -> dict:
    """`build_labels` of `data.labels`, or [n, 1 + len(aux)] stacked with the auxiliary sets."""
    primary = build_labels(dataset.genome, dataset.sites, dataset.shift)
    if not aux:
        return primary
    extra = [build_labels(dataset.genome, load_sites(cfg, dataset.genome, name, None), dataset.shift) for name in aux]
    return stack_labels([primary, *extra])


def build_datamodule(
    cfg: DictConfig, dataset: Dataset, model: TransformerXL, ddp_eval_streams: int | None = None, labels: dict | None = None
) -> TSSDataModule:
    """Streams of `dataset` cut for `model` (its lookahead and context) at `model.seg_len`; `labels`
    (default: `data.labels` built on the genome) may stack auxiliary sets (`training_labels`)."""
    seg_len = int(cfg.model.seg_len)
    longest = max(c.length for c in dataset.genome.contigs.values())
    if seg_len > longest:
        raise ConfigError(f"model.seg_len={seg_len} is longer than the longest contig ({longest} nt); use a shorter segment")
    return TSSDataModule(
        genome=dataset.genome,
        labels=labels if labels is not None else build_labels(dataset.genome, dataset.sites, dataset.shift),
        splits=dataset.splits,
        n_streams=int(cfg.data.n_streams),
        seg_len=seg_len,
        lookahead=model.lookahead,
        burn_in=model.context,
        eval_streams=int(ddp_eval_streams or cfg.data.eval_streams),
        seed=int(cfg.seed),
        target_spread=int(cfg.task.target_spread),
        spread_decay=float(cfg.task.spread_decay),
        overfit_batches=overfit_batches(cfg),
    )


def overfit_batches(cfg: DictConfig) -> int:
    """trainer.overfit_batches (debug=overfit) as a whole number of batches, 0 when off. The datamodule
    does the overfitting (same batches every epoch, validated on): Lightning's own cannot re-make our
    ordered stream loaders."""
    value = cfg.trainer.get("overfit_batches") or 0
    if float(value) != int(float(value)) or float(value) < 0:
        raise ConfigError(f"trainer.overfit_batches={value}: give a whole number of training batches (debug=overfit uses 4)")
    return int(float(value))


def build_trainer(cfg: DictConfig, out: Path, callbacks: list, enable_checkpointing: bool = True) -> pl.Trainer:
    """A Lightning Trainer from `trainer=` (its strategy instantiated when given as a config), logging
    to DIR/logs (CSV or TensorBoard, `task.logger`)."""
    tr = OmegaConf.to_container(cfg.trainer, resolve=True)
    tr.pop("_target_", None)
    tr.pop("overfit_batches", None)  # done by the datamodule (build_datamodule)
    if str(tr.get("accelerator")) in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={tr.get('accelerator')}, but this process sees no GPU (CUDA); use trainer=cpu here, or run on a GPU node"
        )
    strategy = tr.pop("strategy", "auto")
    if isinstance(strategy, dict):
        strategy = instantiate(strategy)
    logger = TensorBoardLogger(str(out), name="logs") if cfg.task.logger == "tensorboard" else CSVLogger(str(out), name="logs")
    tr = {k: v for k, v in tr.items() if v is not None}
    return pl.Trainer(
        default_root_dir=str(out), logger=logger, callbacks=callbacks, strategy=strategy, enable_checkpointing=enable_checkpointing, **tr
    )


def train(cfg: DictConfig) -> dict:
    """Fit, pick the best checkpoint by validation loss, test it; returns the metrics dict."""
    keep_freed_memory()  # per-segment tensors reuse heap pages (measured in scripts/bench.py)
    if shipped_name(cfg):
        raise ConfigError(
            f"model={shipped_name(cfg)} is a shipped model (trained already); to train, choose "
            "model=small or model=paper (or an experiment=...)"
        )
    run = RunDir.checked(cfg)  # a run directory made with other data or another model is refused, resumed or not
    if not cfg.get("resume") and (run.last_ckpt.exists() or run.best_ckpt.exists()):
        raise ConfigError(
            f"{run.root}: holds a trained model already (checkpoints/); add resume=true to continue it, or "
            "choose a new run_dir to train again"
        )
    if cfg.get("resume") and not run.last_ckpt.exists():
        raise ConfigError(f"resume=true, but {run.last_ckpt} does not exist; check run_dir, or drop resume=true to start training")
    if cfg.get("resume"):
        check_resume(cfg, run.root)
    out = run.root
    out.mkdir(parents=True, exist_ok=True)
    started, commit = time.time(), git_commit()  # the code that trains: HEAD now, not when training ends
    command, sweep = job_command()
    pl.seed_everything(int(cfg.seed), workers=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    dataset = load_dataset(cfg)
    aux = aux_label_sets(cfg)
    model = build_model(cfg.model)
    init_from = None
    if cfg.task.get("init_from"):  # fine-tune: weights only; resume=true still restores the whole state
        init_weights(model, str(cfg.task.init_from))
        # which weights exactly: a shipped model's folder can be re-shipped later under the same name
        init_from = {"source": str(cfg.task.init_from), "sha256": sha256_file(init_source_file(str(cfg.task.init_from)))}
    datamodule = build_datamodule(cfg, dataset, model, labels=training_labels(cfg, dataset, aux))
    task = TSSTask(
        model,
        **{k: cfg.task[k] for k in ("lr", "weight_decay", "warmup_steps", "loss", "pos_weight", "focal_gamma", "attention_path")},
        aux_weight=float(cfg.task.get("aux_weight", 1.0)),
        schedule=str(cfg.task.get("schedule", "constant")),
        train_memory=bool(cfg.task.get("train_memory", True)),
        model_config=model_kwargs(cfg.model) | {"seg_len": int(cfg.model.seg_len)},
        shift=int(cfg.data.shift),  # recorded in the checkpoint: predict places a checkpoint's outputs with its own shift
    )
    task.metrics_dir = str(run.eval)
    ckpt_dir = run.checkpoints
    best = AtomicCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min", save_top_k=1, save_last=True, enable_version_counter=False
    )
    # last.ckpt = the latest state: mid-epoch snapshots for resume=true, and after every validation and at the end
    last = LatestCheckpoint(
        dirpath=ckpt_dir,
        filename="last",
        save_top_k=1,
        every_n_train_steps=int(cfg.task.checkpoint_every_n_steps),
        enable_version_counter=False,
    )
    callbacks = [best, last, EarlyStopping(monitor="val_loss", mode="min", patience=int(cfg.task.early_stopping_patience), strict=False)]
    trainer = build_trainer(cfg, out, callbacks)
    resume_from = str(run.last_ckpt) if cfg.get("resume") else None
    save_configuration(cfg, run.root)
    jobs = _record_job(run.root / TRAIN_JOBS, command, commit, started, bool(resume_from), write=trainer.is_global_zero)
    save_overrides(out)
    if resume_from is None:  # an earlier run's eval/*.json in this folder would pass as this run's
        for stale in run.eval.glob("*.json"):
            stale.unlink(missing_ok=True)  # every rank of a multi-process run clears it
    task.wall_clock_start = started
    trainer.fit(task, datamodule=datamodule, ckpt_path=resume_from)
    earlier_seconds = task.wall_seconds_before  # read now: validate/test below load other checkpoints
    if trainer.fast_dev_run:
        return {}
    best_path = best.best_model_path or str(run.last_ckpt)
    validated = {}
    if best.best_model_path:  # metrics.json's validation is the kept checkpoint's, not the last epoch's
        validated = trainer.validate(task, datamodule=datamodule, ckpt_path=best_path, weights_only=True, verbose=False)[0]
    test_split = bool(cfg.task.get("test_split", True))
    if test_split:  # studies choose on validation and leave the test region alone
        task.test_threshold = _validation_threshold(_read_json(run.eval / "val.json"))
        trainer.test(task, datamodule=datamodule, ckpt_path=best_path, weights_only=True)
    result = {
        "experiment": _experiment_name(),
        "data": cfg.data.name,
        "labels": dataset.label_set,
        "aux_labels": aux,
        "model": model_kwargs(cfg.model),
        "best_checkpoint": str(Path(best_path).relative_to(out)) if best_path.startswith(str(out)) else best_path,
        "global_step": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "validation": _read_json(run.eval / "val.json"),
        "val_loss": float(validated["val_loss"]) if "val_loss" in validated else None,
        "test": _read_json(run.eval / "test.json") if test_split else {},
        "provenance": {
            "command": command,
            "sweep": sweep,
            "commit": commit,
            "resumed": bool(resume_from),
            "init_from": init_from,
            "wall_seconds": round(time.time() - started, 1),
            # every job of the run: the earlier ones up to the checkpoint each left (None: not recorded)
            "wall_seconds_all_jobs": None if earlier_seconds is None else round(earlier_seconds + time.time() - started, 1),
            "jobs": jobs,  # every job of this training, the first one's command starts it afresh
        },  # for `genometracks ship`
    }
    if trainer.is_global_zero:
        write_text_atomic(run.metrics_json, json.dumps(json_safe(result), indent=2, allow_nan=False))
    return result


TRAIN_JOBS = "train_jobs.json"


def _record_job(path: Path, command: str, commit: str, started: float, resumed: bool, write: bool = True) -> list[dict]:
    """Append this training job (command, commit, start time UTC) to DIR/train_jobs.json, started afresh
    unless it resumes: a resumed run's metrics.json then still names the job that began it."""
    jobs: list[dict] = []
    if resumed and path.is_file():
        try:
            jobs = list(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            jobs = []
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    jobs.append({"command": command, "commit": commit, "started": stamp, "resumed": resumed})
    if write:  # one process of a multi-process run
        write_text_atomic(path, json.dumps(jobs, indent=1) + "\n")
    return jobs


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _validation_threshold(validation: dict) -> float | None:
    """The validation split's both-strand F1-optimal probability (None when it has none)."""
    value = (validation.get("both") or {}).get("threshold_f1")
    return float(value) if value is not None and math.isfinite(float(value)) else None


def evaluate_checkpoint(cfg: DictConfig, ckpt: str | Path, out: Path | None = None) -> dict:
    """Test-split metrics of a checkpoint in this process (one device), e.g. to check a DDP run; the
    validation split is scored first, so the test's `at_threshold` uses its threshold as training does."""
    model, seg_len, hparams = load_model(ckpt)
    with open_dict(cfg):
        cfg.model.seg_len = seg_len
        if hparams.get("shift") is not None:  # labels placed as the model was trained to answer them
            cfg.data.shift = int(hparams["shift"])
    dataset = load_dataset(cfg)
    datamodule = build_datamodule(cfg, dataset, model)
    task = TSSTask(
        model,
        attention_path=str(cfg.task.attention_path),
        loss=str(hparams.get("loss", "ce")),
        pos_weight=float(hparams.get("pos_weight", 1.0)),
    )  # the same calibration as in training
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.validate(task, datamodule=datamodule, verbose=False)
    task.test_threshold = _validation_threshold(task.last_metrics["val"])
    trainer.test(task, datamodule=datamodule, verbose=False)
    return task.last_metrics["test"]
