"""Class optimisation (DeepMotif) and the one-hot entry point the gradient methods share.

`onehot_logits` runs the model on a (soft) one-hot input x [B, S, A] (A = 4 letters A, C, G, T, or
5 with N) by replacing the embedding lookup with x @ embed.weight[:A] through a forward hook, so
the model's own forward (lookahead, memory, checks) is used unchanged; for a hard one-hot x it
gives exactly the logits of the tokens.

`optimise_class` maximises  logit(last position) - l2 * sum ||x_j||^2  over a soft window
x = softmax(theta) [S, 4] (S = length + lookahead, nothing upstream of it), with the weights
frozen. The +1 of the TSS the last output scores sits at window column length - 1 - shift.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from genometracks.interpret.motifs import Motif


class OptimiseError(ValueError):
    """Bad class-optimisation settings; the message names the key and the fix."""


@contextmanager
def embedding_override(model, embedded: Tensor) -> Iterator[None]:
    """Inside the block, model.embed returns `embedded` [B, S, d_model] whatever the tokens, and the
    model runs its plain forward (workers = 1: no row blocks on threads of its own, whose embedding
    calls would each see a part of the batch and whose backward does not reach `embedded`)."""
    handle = model.embed.register_forward_hook(lambda module, inputs, output: embedded)
    workers = getattr(model, "workers", None)
    if hasattr(model, "workers"):
        model.workers = 1
    try:
        yield
    finally:
        handle.remove()
        if hasattr(model, "workers"):
            model.workers = workers


def onehot_logits(model, x: Tensor, path: str = "fast") -> Tensor:
    """Logits [B, S - lookahead] for a one-hot or soft input x [B, S, 4 or 5], nothing upstream."""
    if x.dim() != 3 or x.shape[-1] not in (4, 5):
        raise OptimiseError(f"one-hot input must be [B, S, 4 or 5] (A, C, G, T[, N]); got {tuple(x.shape)}")
    embedded = x.to(model.embed.weight.dtype) @ model.embed.weight[: x.shape[-1]]
    tokens = torch.zeros(x.shape[:2], dtype=torch.long, device=x.device)
    with embedding_override(model, embedded):
        logits, _ = model(tokens, None, None, path=path)
    return logits


@contextmanager
def frozen(model) -> Iterator[None]:
    """Eval mode and no parameter gradients inside the block; both restored afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(training)


@dataclass
class Optimised:
    """probabilities float64 [S, 4] (A, C, G, T per window column), tss_column (+1 of the scored TSS),
    probability = calibrated sigmoid(logit + offset) of the last output (as in the tracks), history:
    objective per step."""

    probabilities: np.ndarray
    tss_column: int
    probability: float
    history: np.ndarray

    def relative_positions(self) -> np.ndarray:
        """int64 [S]: window columns relative to the TSS (0 = +1, -10 = 10 nt upstream)."""
        return np.arange(self.probabilities.shape[0]) - self.tss_column

    def motif(self, name: str = "class_optimised") -> Motif:
        return Motif(
            name,
            self.probabilities,
            nsites=1.0,
            source="class optimisation",
            meta={"tss_column": self.tss_column, "probability": self.probability},
        )


def optimise_class(
    model,
    shift: int,
    length: int = 100,
    steps: int = 300,
    lr: float = 0.1,
    l2: float = 0.01,
    seed: int = 0,
    progress: bool = True,
    logit_offset: float = 0.0,
) -> Optimised:
    """Soft input window maximising the TSS output at its last position (see the module docstring);
    the reported probability is calibrated as the tracks are: sigmoid(logit + `logit_offset`) (the
    offset moves no optimum, so the raw logit is what is optimised)."""
    from tqdm.auto import tqdm

    if length <= shift:
        raise OptimiseError(
            f"interpret.optimise_length={length} must exceed the label shift {shift} (the scored TSS must lie inside the window)"
        )
    if steps < 1 or lr <= 0 or l2 < 0:
        raise OptimiseError(f"need interpret.optimise_steps >= 1, optimise_lr > 0, optimise_l2 >= 0; got {steps}, {lr}, {l2}")
    generator = torch.Generator().manual_seed(int(seed))
    dtype = model.embed.weight.dtype
    theta = (0.01 * torch.randn(1, length + model.lookahead, 4, generator=generator)).to(dtype).requires_grad_(True)
    optimiser = torch.optim.Adam([theta], lr=lr)
    history = np.zeros(steps)
    with frozen(model), torch.enable_grad():
        for step in tqdm(range(steps), desc="class optimisation", disable=not progress, mininterval=2.0):
            x = theta.softmax(dim=-1)
            logit = onehot_logits(model, x)[0, length - 1]
            objective = logit - l2 * (x**2).sum()
            optimiser.zero_grad()
            (-objective).backward()
            optimiser.step()
            history[step] = float(objective.detach())
        with torch.no_grad():
            x = theta.softmax(dim=-1)
            final = float(torch.sigmoid(onehot_logits(model, x)[0, length - 1] + float(logit_offset)))
    return Optimised(x[0].double().numpy(), length - 1 - int(shift), final, history)


def tick_labels(relative: np.ndarray, every: int = 10) -> list[str]:
    """Logo x labels: the relative position at multiples of `every` (and at 0), '' elsewhere."""
    return [str(int(r)) if r % every == 0 else "" for r in relative]
