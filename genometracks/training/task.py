"""LightningModule: TSS loss over streamed segments, memory carried across batches, split metrics.

Memory is kept per phase (train / validation / test / predict), detached after every step
(truncated back-propagation through time) and cleared per stream where a batch says `reset`.
Validation/test collect every scored position's probability and label, gather them over DDP
ranks and compute the split's metrics on all of them (both strands together and per strand).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from genometracks.io.atomic import write_text_atomic
from genometracks.model.attention import LayerMemory
from genometracks.model.transformer import Memory
from genometracks.training import metrics as M


def tss_loss(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, kind: str = "ce", pos_weight: float = 1.0, gamma: float = 2.0
) -> torch.Tensor:
    """Mean loss over scored positions. logits/labels/mask [B, L]; kind ce | weighted | focal.

    One logit per position with sigmoid cross-entropy is the two-class softmax cross-entropy
    of the paper (softmax over (0, z) is sigmoid(z))."""
    z, y = logits[mask], labels[mask].to(logits.dtype)
    if z.numel() == 0:
        return logits.sum() * 0.0
    if kind == "ce":
        return F.binary_cross_entropy_with_logits(z, y)
    if kind == "weighted":
        return F.binary_cross_entropy_with_logits(z, y, pos_weight=torch.tensor(pos_weight, dtype=z.dtype))
    if kind == "focal":
        ce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
        p_true = torch.exp(-ce)
        return ((1 - p_true) ** gamma * ce).mean()
    raise ValueError(f"task.loss={kind!r} is not one of ce, weighted, focal")


def calibration_offset(hparams: dict) -> float:
    """What to add to raw logits for calibrated probabilities: a class-weighted loss with weight w
    on TSSs moves the optimum logit by +log(w) (the odds are multiplied by w), so subtract it."""
    if hparams.get("loss") == "weighted":
        return -math.log(float(hparams.get("pos_weight", 1.0)))
    return 0.0


def memory_state(memory) -> dict:
    """A model Memory as plain tensors (checkpoints load with weights_only=True)."""
    return {
        "valid": memory.valid,
        "layers": [{f.name: getattr(layer, f.name) for f in dataclasses.fields(layer)} for layer in memory.layers],
    }


def memory_from_state(state: dict) -> Memory:
    """The model Memory back from `memory_state` (per layer: keys, values [B, H, M, D]; valid [B, M])."""
    return Memory(tuple(LayerMemory(**layer) for layer in state["layers"]), state["valid"])


def lr_factor(step: int, warmup: int, total: int = 0, floor: float = 0.05) -> float:
    """Learning-rate multiplier at optimiser step `step` (0-based): linear warm-up over `warmup` steps,
    then constant (total = 0) or a cosine decay reaching `floor` at step `total`."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def position_rows(logits: torch.Tensor, batch: dict) -> torch.Tensor:
    """float64 [n, 5] for the n masked positions of a SegmentStreams batch: probability (sigmoid of
    `logits` [B, L]), label 0/1, contig index, strand (0 '+', 1 '-'), 0-based position on the stream."""
    mask = batch["mask"]
    rows = mask.nonzero(as_tuple=True)
    local = batch["start"][:, None] + torch.arange(mask.shape[1], device=mask.device)[None, :]
    columns = [logits[rows], batch["labels"][rows], batch["contig"][rows[0]], batch["strand"][rows[0]], local[rows]]
    return torch.stack([columns[0].double().sigmoid()] + [c.double() for c in columns[1:]], dim=1)


class TSSTask(pl.LightningModule):
    """Train / evaluate a `TransformerXL` on `SegmentStreams` batches (see docs/CONTRACTS.md)."""

    def __init__(
        self,
        model: torch.nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 200,
        loss: str = "ce",
        pos_weight: float = 1.0,
        focal_gamma: float = 2.0,
        attention_path: str = "fast",
        model_config: dict | None = None,
        schedule: str = "constant",
        train_memory: bool = True,
        aux_weight: float = 1.0,
        shift: int | None = None,
    ):
        super().__init__()
        self.model = model
        self.save_hyperparameters(ignore=["model"])
        self._memory: dict[str, object] = {}
        self.metrics_dir: str | None = None  # rank 0 writes <metrics_dir>/<phase>.json (survives spawned DDP)
        self._collected: dict[str, list] = {}
        self.last_metrics: dict[str, dict] = {}
        # the test split's operating point: the validation split's F1-optimal probability, set by the
        # caller before testing (an attribute, so spawned DDP workers receive it), not the test's own optimum
        self.test_threshold: float | None = None
        # wall time of the run's training jobs: `train` sets when this job began (time.time()); earlier jobs'
        # seconds come from the checkpoint resumed (None: a checkpoint from before it was recorded)
        self.wall_clock_start: float | None = None
        self.wall_seconds_before: float | None = 0.0

    def wall_seconds_so_far(self) -> float | None:
        """Seconds of every training job of the run until now: earlier jobs up to the checkpoint each left
        (which the next one resumed from), plus this job since it began; None when an earlier job's are unknown."""
        if self.wall_clock_start is None or self.wall_seconds_before is None:
            return None
        return self.wall_seconds_before + (time.time() - self.wall_clock_start)

    # -- memory ---------------------------------------------------------------------------------
    def _step(self, batch: dict, phase: str, all_outputs: bool = False) -> torch.Tensor:
        """Logits [B, L] of a batch (the primary output; [B, L, n_outputs] with all_outputs), memory
        carried from the previous batch of the phase, except in training with train_memory=False (the
        paper's recipe: every training segment starts with nothing upstream; evaluation still carries
        memory, as prediction does)."""
        carry = phase != "train" or self.hparams.get("train_memory", True)
        memory = self._memory.get(phase) if carry else None
        if memory is None:
            memory = self.model.init_memory(batch["tokens"].shape[0], device=self.device)
        logits, memory = self.model(batch["tokens"], memory, batch["reset"], path=self.hparams.attention_path, all_outputs=all_outputs)
        if carry:
            self._memory[phase] = memory.detach()
        return logits

    def reset_memory(self, phase: str | None = None) -> None:
        if phase is None:
            self._memory.clear()
        else:
            self._memory.pop(phase, None)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the training memory and torch's random state (dropout) so a run resumed mid-epoch continues
        exactly (tensors only: checkpoints are read weights-only)."""
        memory = self._memory.get("train")
        if memory is not None:
            checkpoint["genometracks_train_memory"] = memory_state(memory)
        checkpoint["genometracks_rng"] = {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        so_far = self.wall_seconds_so_far()
        if so_far is not None:
            checkpoint["genometracks_wall_seconds"] = float(so_far)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("genometracks_train_memory")
        if state is not None:
            self._memory["train"] = memory_from_state(state)
        seconds = checkpoint.get("genometracks_wall_seconds")
        self.wall_seconds_before = float(seconds) if seconds is not None else None
        rng = checkpoint.get("genometracks_rng")
        if rng is not None:  # checkpoints before session 20 carry none: dropout then draws anew
            torch.set_rng_state(rng["cpu"])
            if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(rng["cuda"])

    # -- training -------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """The primary output's loss, plus `aux_weight` times the mean loss of the auxiliary outputs
        where the batch carries `aux_labels` [B, L, n_outputs - 1] (one output per extra label set)."""
        aux = batch.get("aux_labels")
        if aux is not None and aux.shape[-1] != self.model.n_outputs - 1:
            raise ValueError(
                f"batches carry {aux.shape[-1]} auxiliary label sets but the model has {self.model.n_outputs - 1} auxiliary "
                "outputs; set model.n_outputs to 1 + len(data.aux_labels)"
            )
        logits = self._step(batch, "train", all_outputs=True)
        loss_of = lambda z, y: tss_loss(z, y, batch["mask"], self.hparams.loss, self.hparams.pos_weight, self.hparams.focal_gamma)  # noqa: E731
        loss = loss_of(logits[..., 0], batch["labels"])
        n = max(int(batch["mask"].sum()), 1)
        if aux is not None and aux.shape[-1]:
            aux_loss = torch.stack([loss_of(logits[..., k + 1], aux[..., k]) for k in range(aux.shape[-1])]).mean()
            self.log("train_aux_loss", aux_loss, batch_size=n)
            self.log("train_primary_loss", loss, batch_size=n)
            loss = loss + float(self.hparams.get("aux_weight", 1.0)) * aux_loss
        self.log("train_loss", loss, prog_bar=True, batch_size=n)
        return loss

    def on_train_epoch_start(self) -> None:
        self.reset_memory("train")

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warmup = max(int(self.hparams.warmup_steps), 0)
        schedule = self.hparams.get("schedule", "constant")
        if schedule not in ("constant", "cosine"):
            raise ValueError(f"task.schedule={schedule!r}: choose constant or cosine")
        total = int(self.trainer.estimated_stepping_batches) if schedule == "cosine" else 0
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, warmup, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- evaluation -----------------------------------------------------------------------------
    def _collect(self, batch: dict, phase: str) -> None:
        # calibrated logits (as `predict` writes them): the loss that picks the checkpoint and the
        # F1 threshold then refer to the probabilities users see in the tracks
        # scored in float32 even under a bf16-mixed trainer: autocast's bf16 logits keep 8 bits, which
        # collapsed 786,239 distinct validation probabilities into 486 and moved the F1 threshold
        with torch.autocast(device_type=self.device.type, enabled=False):
            logits = self._step(batch, phase).float() + calibration_offset(self.hparams)
        mask = batch["mask"]
        loss = tss_loss(logits, batch["labels"], mask)
        self.log(
            f"{phase}_loss", loss, prog_bar=phase == "val", batch_size=max(int(mask.sum()), 1), sync_dist=True, on_step=False, on_epoch=True
        )
        self._collected.setdefault(phase, []).append(position_rows(logits, batch).cpu())

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self.reset_memory("val")
        self._collected["val"] = []

    def on_test_epoch_start(self) -> None:
        self.reset_memory("test")
        self._collected["test"] = []

    def _gathered(self, phase: str) -> np.ndarray:
        """[n, 5] rows (prob, label, contig, strand, local position) from every rank."""
        rows = torch.cat(self._collected.get(phase) or [torch.zeros(0, 5, dtype=torch.float64)])
        if self.trainer is not None and self.trainer.world_size > 1:
            n = torch.tensor([rows.shape[0]], device=self.device)
            sizes = self.all_gather(n).flatten().tolist()
            padded = torch.zeros(max(sizes), 5, dtype=torch.float64, device=self.device)
            padded[: rows.shape[0]] = rows.to(self.device)
            gathered = self.all_gather(padded)  # [world, max, 5]
            rows = torch.cat([gathered[r, : sizes[r]].cpu() for r in range(len(sizes))])
        return rows.numpy()

    def _finish(self, phase: str) -> None:
        rows = self._gathered(phase)
        self._collected[phase] = []
        result = split_metrics(rows, threshold=self.test_threshold if phase == "test" else None)
        self.last_metrics[phase] = result
        if self.metrics_dir and (self.trainer is None or self.trainer.is_global_zero):
            write_text_atomic(Path(self.metrics_dir) / f"{phase}.json", json.dumps(result, default=float))
        for key in ("roc_auc", "pr_auc", "pr_auc_k4", "pr_auc_k10", "lr_plus"):
            value = result["both"].get(key, float("nan"))
            if value is not None and math.isfinite(value):
                self.log(f"{phase}_{key}", value, rank_zero_only=True, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")


def split_metrics(rows: np.ndarray, threshold: float | None = None) -> dict:
    """Metrics of one split from collected rows [n, 5] = (prob, label, contig, strand, position):
    both strands together and per strand; k-mers never straddle contigs, strands or gaps.
    Each part's `at_threshold` is its operating point at `threshold` (the validation split's
    both-strand F1-optimal probability) or, without one, at this split's own (`chosen_on` says which)."""
    if rows.size == 0:
        return {"both": {}, "+": {}, "-": {}}
    order = np.lexsort((rows[:, 4], rows[:, 3], rows[:, 2]))
    rows = rows[order]
    out = {}
    chosen_on = "validation" if threshold is not None else "this split"
    for name, select in (("both", slice(None)), ("+", rows[:, 3] == 0), ("-", rows[:, 3] == 1)):
        part = rows[select]
        breaks = np.flatnonzero((np.diff(part[:, 4]) != 1) | (np.diff(part[:, 2]) != 0) | (np.diff(part[:, 3]) != 0)) + 1
        runs = [(y, s) for y, s in zip(np.split(part[:, 1], breaks), np.split(part[:, 0], breaks))]
        out[name] = M.summarise(part[:, 1], part[:, 0], kmer_tracks=runs, threshold=threshold)
        if name == "both" and threshold is None:
            threshold = out["both"].get("threshold_f1")
            if threshold is not None and np.isfinite(threshold):
                out["both"]["at_threshold"] = M.operating_point(part[:, 1], part[:, 0], threshold)
        if "at_threshold" in out[name]:
            out[name]["at_threshold"]["chosen_on"] = chosen_on
    return out
