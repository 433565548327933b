"""A tiny TransformerXL trained on a small planted-promoter genome, shared by the interpretation tests.

The boxes are deliberately not sigma70's (TATAAT / TTGACA) so nothing can be hard-coded. The
checkpoint is written in `genometracks train`'s format (hyper_parameters.model_config +
state_dict with the 'model.' prefix) so `predict.load_model` and `interpret_command` read it,
and cached once per test session (a file under pytest's base temp folder).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

MINUS35, MINUS10 = "TTGCGA", "TAGCAT"
DATA_OVERRIDES = (
    "experiment=smoke",
    "data.generator.length=60000",
    "data.generator.n_contigs=2",
    "data.generator.density=0.004",
    f"data.generator.minus35={MINUS35}",
    f"data.generator.minus10={MINUS10}",
    "data.generator.seed=1",
)
# One layer of six heads: every head reads 7-mer keys directly, so box heads appear within a few
# epochs for any seed tried (0, 1, 2); two layers need about twice the epochs and time.
MODEL = dict(n_layer=1, n_head=6, d_model=32, d_head=8, conv_width=7, window=64)
SEG_LEN, STREAMS, EPOCHS, LR, POS_WEIGHT = 256, 32, 8, 1e-2, 20.0


def save_checkpoint(model, ckpt: Path) -> None:
    """`genometracks train`'s checkpoint layout, written atomically."""
    from genometracks.io.atomic import atomic_path

    state = {
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "hyper_parameters": {"model_config": dict(MODEL, seg_len=SEG_LEN)},
    }
    with atomic_path(ckpt) as tmp:
        torch.save(state, tmp)


def train_tiny(cfg, ckpt: Path, epochs: int = EPOCHS, seed: int = 0, log=print, keep_epochs: bool = False) -> dict:
    """Train on cfg's data (train split, streamed with memory carried; Adam, one-cycle learning rate,
    positive class weighted) and save a checkpoint (and `epoch{e}.ckpt` beside it with keep_epochs)."""
    from genometracks.data.dataset import load_dataset
    from genometracks.data.streams import SegmentStreams, build_labels
    from genometracks.model import TransformerXL

    torch.manual_seed(seed)
    dataset = load_dataset(cfg)
    labels = build_labels(dataset.genome, dataset.sites, dataset.shift)
    model = TransformerXL(**MODEL)
    streams = SegmentStreams(
        dataset.genome,
        labels,
        dataset.splits["train"],
        n_streams=STREAMS,
        seg_len=SEG_LEN,
        lookahead=model.lookahead,
        burn_in=model.context,
        seed=seed,
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=LR, total_steps=epochs * len(streams), pct_start=0.25)
    weight = torch.tensor(POS_WEIGHT)
    start, losses = time.time(), []
    for epoch in range(epochs):
        streams.set_epoch(epoch)
        memory, total = None, 0.0
        for batch in streams:
            logits, memory = model(batch["tokens"], memory, batch["reset"])
            memory = memory.detach()
            mask = batch["mask"]
            if not mask.any():
                continue
            loss = F.binary_cross_entropy_with_logits(logits[mask], batch["labels"][mask], pos_weight=weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
        losses.append(total / len(streams))
        log(f"epoch {epoch}: loss {losses[-1]:.4f} ({time.time() - start:.0f} s)")
        if keep_epochs:
            save_checkpoint(model, ckpt.with_name(f"epoch{epoch}.ckpt"))
    model.eval()
    save_checkpoint(model, ckpt)
    return {"seconds": time.time() - start, "losses": losses}


def predict_and_interpret(cfg) -> dict:
    """`predict` then `interpret` on cfg with 2 torch threads (restored after); interpret's summary."""
    from genometracks.inference.predict import predict_command
    from genometracks.interpret.command import interpret_command

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        predict_command(cfg)
        return interpret_command(cfg)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def trained_smoke(tmp_path_factory):
    """(checkpoint path, composed config overrides) of the session's tiny trained model."""
    from tests.conftest import compose

    ckpt = tmp_path_factory.getbasetemp() / "interpret_model" / "best.ckpt"
    if not ckpt.exists():
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            train_tiny(compose(*DATA_OVERRIDES), ckpt, log=lambda *_: None)
        finally:
            torch.set_num_threads(threads)
    return ckpt, DATA_OVERRIDES


if __name__ == "__main__":  # measure: python -m tests.conftest_interpret OUT_DIR
    import sys

    from genometracks.cli import _register_resolvers
    from tests.conftest import compose

    _register_resolvers()
    torch.set_num_threads(2)
    print(
        train_tiny(
            compose(*DATA_OVERRIDES),
            Path(sys.argv[1]) / "best.ckpt",
            epochs=int(sys.argv[2]) if len(sys.argv) > 2 else EPOCHS,
            keep_epochs=True,
        )
    )
