"""Checkpoints: written atomically during training, read back with weights-only semantics."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from safetensors import SafetensorError
from safetensors.torch import load_file

from genometracks.io.atomic import replace_into
from genometracks.io.paths import SHIPPED_MODELS
from genometracks.model import TransformerXL


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the fix."""


class AtomicCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes to a temporary name, flushes and renames (`io.atomic.replace_into`):
    a kill never leaves a truncated best.ckpt or last.ckpt behind."""

    def load_state_dict(self, state_dict: dict) -> None:
        """A run directory moved or copied elsewhere (its checkpoints folder named another way) is the same
        run: its best score and paths are read against the folder it is in now (Lightning keeps only the
        best path then, and the next validation replaced best.ckpt with a worse model)."""
        saved = state_dict.get("dirpath")
        if saved and self.dirpath and str(saved) != str(self.dirpath):

            def moved(path: object) -> object:
                text = str(path or "")
                return str(Path(str(self.dirpath)) / Path(text).name) if text.startswith(str(saved)) else path

            state_dict = dict(state_dict)
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                state_dict[key] = moved(state_dict.get(key))
            state_dict["best_k_models"] = {moved(k): v for k, v in (state_dict.get("best_k_models") or {}).items()}
            state_dict["dirpath"] = self.dirpath
        super().load_state_dict(state_dict)

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.partial"
        trainer.save_checkpoint(tmp, self.save_weights_only)
        if trainer.is_global_zero:
            replace_into(tmp, filepath)
        trainer.strategy.barrier("atomic_checkpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(self)


class LatestCheckpoint(AtomicCheckpoint):
    """last.ckpt every `every_n_train_steps` steps (a mid-epoch resume) and also after every validation
    and at the end of training, so that a finished or early-stopped run's last.ckpt is its latest state
    (ModelCheckpoint's save_last writes it only with a new best, and a continued run trained again from there)."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._save_latest(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._save_latest(trainer)

    def _save_latest(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or self.dirpath is None or self._last_global_step_saved == trainer.global_step:
            return
        self._save_checkpoint(trainer, str(Path(self.dirpath) / f"{self.filename}{self.FILE_EXTENSION}"))


def checkpoint_progress(ckpt: str | Path) -> tuple[int | None, int | None]:
    """(optimiser steps, epochs begun) when a Lightning checkpoint was saved; (None, None) when it does not
    say (weights-only read). Epochs begun come from the fit loop's progress: the checkpoint's `epoch` counter
    has already moved on in one saved when training stopped (max_steps, the end), and is the 0-based epoch
    of one saved inside an epoch (a step snapshot, the end of a validation)."""
    try:
        state = torch.load(Path(ckpt), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - load_model names what is wrong with the file
        return None, None
    if not isinstance(state, dict):
        return None, None
    step, epoch = state.get("global_step"), state.get("epoch")
    try:
        begun = int(state["loops"]["fit_loop"]["epoch_progress"]["current"]["started"])
    except (KeyError, TypeError, ValueError):
        begun = int(epoch) + 1 if epoch is not None else None
    return (int(step) if step is not None else None), begun


def load_model(ckpt: str | Path) -> tuple[TransformerXL, int, dict]:
    """(model in eval mode, segment length, hyper-parameters) from a Lightning checkpoint written by
    `genometracks train` (weights only; no pickled objects are loaded)."""
    path = Path(ckpt)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; train first (genometracks train run_dir=DIR) or pass ckpt=PATH")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, foreign pickle, not a torch file
        why = (
            "it holds Python objects besides tensors, which a weights-only load refuses, or is not a torch file"
            if isinstance(err, pickle.UnpicklingError)
            else f"{type(err).__name__}: {str(err)[:200]}"
        )
        raise CheckpointError(
            f"{path}: not a readable genometracks checkpoint ({why}); re-train or point ckpt= at DIR/checkpoints/best.ckpt"
        ) from err
    hparams = state.get("hyper_parameters", {}) if isinstance(state, dict) else {}
    config = hparams.get("model_config")
    if not config or "state_dict" not in state:
        raise CheckpointError(
            f"{path}: no genometracks model config in this checkpoint (a foreign checkpoint?); use one written by `genometracks train`"
        )
    config = dict(config)
    seg_len = int(config.pop("seg_len", 512))
    model = TransformerXL(**config)
    weights = {k[len("model.") :]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the model config ({str(err)[:200]})") from err
    model.eval()
    return model, seg_len, hparams


def init_source_file(source: str | Path) -> Path:
    """The file `task.init_from=source` reads: a checkpoint, or a shipped model's `model.safetensors`
    (`source` a shipped model's name or folder)."""
    path = Path(source)
    if not path.exists() and "/" not in str(source):
        path = SHIPPED_MODELS / str(source)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: task.init_from names no file; give a checkpoint "
            "(DIR/checkpoints/best.ckpt), a shipped model's name or its model.safetensors"
        )
    return path


def init_weights(model: TransformerXL, source: str | Path) -> TransformerXL:
    """Load the weights of `source` into `model` in place (fine-tuning: the optimiser, schedule and step
    count start afresh). `source` is a checkpoint written by `genometracks train` (read weights-only),
    a shipped model's name (`ecoli_k12`), folder or `model.safetensors`; its architecture must be the
    configured one (same `model=` and `model.*` settings), except that a one-output source may start a
    model with more outputs (`widened_head`)."""
    path = init_source_file(source)
    if path.suffix == ".safetensors":
        try:
            weights = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{path}: not a readable safetensors file ({str(err)[:200]})") from err
        card = path.with_name("card.json")
        try:
            trained_window = json.loads(card.read_text())["architecture"]["window"] if card.is_file() else None
        except (OSError, ValueError, KeyError, TypeError):
            trained_window = None
    else:
        model_from_ckpt, _, _ = load_model(path)
        weights, trained_window = model_from_ckpt.state_dict(), model_from_ckpt.window
    # the attention window shapes no weight, so load_state_dict cannot tell: the weights learned that reach
    if trained_window is not None and int(trained_window) != int(model.window):
        raise CheckpointError(
            f"{path}: trained with model.window={int(trained_window)}, the configured model has window {int(model.window)}; "
            f"set model.window={int(trained_window)} to start from these weights"
        )
    try:
        model.load_state_dict(widened_head(weights, model.n_outputs))
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: weights do not fit the configured model; choose the model= and "
            f"model.* settings it was trained with ({str(err)[:160]})"
        ) from err
    return model


def widened_head(weights: dict, n_outputs: int) -> dict:
    """`weights` whose one-output head (head.weight [1, d], head.bias [1]) is repeated to `n_outputs`
    rows, so that a model trained on one label set starts every auxiliary output from its TSS read-out;
    any other shape is returned as it is (and load_state_dict names the mismatch)."""
    head_weight, head_bias = weights.get("head.weight"), weights.get("head.bias")
    if n_outputs == 1 or head_weight is None or head_bias is None or head_weight.shape[0] != 1:
        return weights
    return {**weights, "head.weight": head_weight.repeat(n_outputs, 1), "head.bias": head_bias.repeat(n_outputs)}
