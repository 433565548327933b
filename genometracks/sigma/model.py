"""Sigma-class promoter CNN and its LightningModule.

SigmaCNN: one-hot [B, 4, L] → three blocks Conv1d("same") → ReLU → BatchNorm → Dropout, so the last
convolution keeps the input length L → flatten [B, C·L] → linear output layer [B, n_outputs].
Modes: "softmax" (one logit per class, cross-entropy) and "binary" (one logit, one class vs the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from genometracks.io.atomic import atomic_path


class SigmaModelError(ValueError):
    """Bad model configuration or checkpoint; the message names the file or key and the fix."""


class SigmaCNN(nn.Module):
    """CNN over a one-hot window. channels/kernel_sizes: one entry per convolution layer (three)."""

    def __init__(
        self,
        length: int,
        n_outputs: int,
        channels: Sequence[int] = (32, 32, 32),
        kernel_sizes: Sequence[int] = (9, 7, 5),
        dropout: float = 0.3,
    ):
        super().__init__()
        if len(channels) != len(kernel_sizes) or not channels:
            raise SigmaModelError(
                f"model.channels {list(channels)} and model.kernel_sizes {list(kernel_sizes)} need one entry per convolution layer"
            )
        even = [int(k) for k in kernel_sizes if int(k) % 2 == 0 or int(k) < 1]
        if even:  # 'same' padding pads an even kernel one side more: every map column would read 1.5 nt downstream
            raise SigmaModelError(
                f"model.kernel_sizes {list(kernel_sizes)}: {even[0]} is not a positive odd width; give odd widths "
                "(e.g. 9,7,5) so each Grad-CAM column is centred on its base"
            )
        self.config = {
            "length": int(length),
            "n_outputs": int(n_outputs),
            "channels": [int(c) for c in channels],
            "kernel_sizes": [int(k) for k in kernel_sizes],
            "dropout": float(dropout),
        }
        convs, norms = [], []
        c_in = 4
        for c, k in zip(channels, kernel_sizes):
            convs.append(nn.Conv1d(c_in, c, k, padding="same"))
            norms.append(nn.BatchNorm1d(c))
            c_in = c
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c_in * length, n_outputs)

    def forward_with_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, n_outputs], the last convolution block's map [B, C, L]: after its ReLU and batch
        norm, so what the output layer reads; in eval mode the logit is the head's bias plus, per
        position l, sum_c W[c, l] · map[c, l])."""
        h = x
        last = x
        for conv, norm in zip(self.convs, self.norms):
            last = norm(F.relu(conv(h)))
            h = self.dropout(last)
        return self.head(h.flatten(1)), last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One-hot [B, 4, L] → logits [B, n_outputs]."""
        return self.forward_with_map(x)[0]

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax over classes (n_outputs > 1) or the sigmoid of the one logit: [B, n_outputs]."""
        z = self.forward(x)
        return torch.softmax(z, dim=1) if z.shape[1] > 1 else torch.sigmoid(z)


class SigmaTask(pl.LightningModule):
    """Training of a SigmaCNN. class_weights: float [n_classes] (softmax) or [1] positive weight (binary)."""

    def __init__(self, model: SigmaCNN, lr: float = 1e-3, weight_decay: float = 1e-4, class_weights: Sequence[float] | None = None):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay = lr, weight_decay
        weights = (
            torch.ones(model.config["n_outputs"]) if class_weights is None else torch.as_tensor(list(class_weights), dtype=torch.float32)
        )
        self.register_buffer("class_weights", weights)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (softmax mode, y int [B]) or sigmoid cross-entropy (binary mode, y 0/1 [B])."""
        if logits.shape[1] == 1:
            return F.binary_cross_entropy_with_logits(logits[:, 0], y.float(), pos_weight=self.class_weights)
        return F.cross_entropy(logits, y, weight=self.class_weights)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss(self.model(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def balanced_weights(y: np.ndarray, n_classes: int, binary: bool) -> list[float]:
    """Loss weights that give each class the same total weight: n / (k · count_c); binary → [n_neg / n_pos]."""
    counts = np.bincount(y, minlength=2 if binary else n_classes).astype(np.float64)
    if binary:
        return [float(counts[0] / max(counts[1], 1.0))]
    return list(len(y) / (n_classes * np.maximum(counts, 1.0)))


@torch.no_grad()
def predict_proba(model: SigmaCNN, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class probabilities float64 [n, n_outputs] for one-hot x [n, 4, L] (eval mode, batched)."""
    model.eval()
    out = [model.probabilities(torch.from_numpy(x[i : i + batch_size])).double().numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.config["n_outputs"]))


def save_model(model: SigmaCNN, path: str | Path, classes: Sequence[str], upstream: int, prior: Sequence[float] | None = None) -> Path:
    """Write {config, classes, upstream, prior, state_dict} atomically (loadable with weights_only=True).
    `prior`: the training set's class shares when the model was trained with balanced class weights
    (its softmax then treats the classes as equally common; `with_prior` puts the shares back)."""
    payload = {
        "config": model.config,
        "classes": list(classes),
        "upstream": int(upstream),
        "prior": None if prior is None else [float(v) for v in prior],
        "state_dict": model.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_model(path: str | Path) -> tuple[SigmaCNN, list[str], int]:
    """(model in eval mode, class names, upstream nt) from a file written by `save_model`; the model's
    `prior` attribute is the stored class prior (None: its outputs need no correction)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = SigmaCNN(**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, EOFError) as err:
        raise SigmaModelError(
            f"{path}: not a sigma CNN model file ({err}); pass the models/sigma_cnn.pt written by `genometracks train experiment=sigma_cnn`"
        ) from err
    model.eval()
    model.prior = payload.get("prior")
    return model, list(payload["classes"]), int(payload["upstream"])


def with_prior(probs: np.ndarray, prior: Sequence[float] | None) -> np.ndarray:
    """Class probabilities [n, k] of a model trained with balanced class weights (uniform implicit prior)
    re-weighted to the class shares `prior` [k] (Bayes: p_c · π_c / Σ p_j · π_j); unchanged when None."""
    if prior is None:
        return probs
    weighted = probs * np.asarray(prior, dtype=np.float64)[None, :]
    return weighted / weighted.sum(axis=1, keepdims=True)
