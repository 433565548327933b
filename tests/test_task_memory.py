"""TSSTask's memory between training batches: carried (default) or none (task.train_memory=false)."""

import pytest
import torch

from genometracks.training.task import TSSTask
from tests.model_reference import small_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(model, n: int = 2, length: int = 40):
    torch.manual_seed(3)
    tokens = torch.randint(0, 4, (2, n * length + model.lookahead))
    return [
        {"tokens": tokens[:, i * length : (i + 1) * length + model.lookahead], "reset": torch.tensor([i == 0, i == 0])} for i in range(n)
    ]


@pytest.mark.parametrize("train_memory", [True, False])
def test_training_memory_is_carried_or_dropped(train_memory):
    model = small_model(5)
    task = TSSTask(model, train_memory=train_memory)
    first, second = _batches(model)
    with torch.no_grad():
        task._step(first, "train")
        got = task._step(second, "train")
        _, memory = model(first["tokens"], None, first["reset"])
        carried, _ = model(second["tokens"], memory)
        fresh, _ = model(second["tokens"], None)
    torch.testing.assert_close(got, carried if train_memory else fresh, rtol=0, atol=0)
    assert not torch.allclose(carried, fresh)  # the memory matters to these logits
    assert ("train" in task._memory) == train_memory


def test_evaluation_carries_memory_without_training_memory():
    model = small_model(5)
    task = TSSTask(model, train_memory=False)
    first, second = _batches(model)
    with torch.no_grad():
        task._step(first, "val")
        got = task._step(second, "val")
        _, memory = model(first["tokens"], None, first["reset"])
        torch.testing.assert_close(got, model(second["tokens"], memory)[0], rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
@pytest.mark.parametrize("loss", ["ce", "weighted"])
def test_auxiliary_outputs_add_their_mean_loss(loss):
    """With aux_labels [B, L, 2], the training loss is output 0's loss on `labels` plus aux_weight times
    the mean of outputs 1 and 2's losses on their sets (same loss kind, scored positions only)."""
    from genometracks.training.task import tss_loss

    model = small_model(6, n_outputs=3)
    first = _batches(model, n=1)[0]
    g = torch.Generator().manual_seed(1)
    batch = {
        **first,
        "labels": (torch.rand(2, 40, generator=g) < 0.1).float(),
        "aux_labels": (torch.rand(2, 40, 2, generator=g) < 0.2).float(),
        "mask": torch.rand(2, 40, generator=g) < 0.8,
    }
    task = TSSTask(model, loss=loss, pos_weight=5.0, aux_weight=0.5, train_memory=False)
    got = task.training_step(batch, 0)
    with torch.no_grad():
        logits, _ = model(batch["tokens"], None, batch["reset"], all_outputs=True)
    kw = dict(kind=loss, pos_weight=5.0)
    primary = tss_loss(logits[..., 0], batch["labels"], batch["mask"], **kw)
    aux = [tss_loss(logits[..., k + 1], batch["aux_labels"][..., k], batch["mask"], **kw) for k in range(2)]
    torch.testing.assert_close(got.detach(), primary + 0.5 * (aux[0] + aux[1]) / 2, rtol=1e-6, atol=1e-7)
    plain = {k: v for k, v in batch.items() if k != "aux_labels"}  # no aux labels: output 0's loss alone
    torch.testing.assert_close(task.training_step(plain, 0).detach(), primary, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="n_outputs"):
        TSSTask(small_model(6, n_outputs=2)).training_step(batch, 0)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_evaluation_is_scored_in_float32_under_a_bf16_mixed_trainer():
    # Lightning runs validation under autocast with precision=bf16-mixed (trainer=gpu): the logits
    # came back in bfloat16 (8 bits), so AUCs and the F1 threshold described a rounded scorer
    model = small_model(5)
    first = _batches(model, n=1)[0]
    g = torch.Generator().manual_seed(2)
    batch = {
        **first,
        "labels": (torch.rand(2, 40, generator=g) < 0.1).float(),
        "mask": torch.ones(2, 40, dtype=torch.bool),
        "start": torch.tensor([0, 0]),
        "contig": torch.tensor([0, 0]),
        "strand": torch.tensor([0, 1]),
    }
    rows = {}
    for mixed in (False, True):
        task = TSSTask(model)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            task._collect(batch, "val")
        rows[mixed] = task._collected["val"][0]
    assert rows[True].dtype == torch.float64 and torch.unique(rows[True][:, 0]).numel() == 80  # no bf16 collapse
    torch.testing.assert_close(rows[True], rows[False], rtol=0, atol=0)
