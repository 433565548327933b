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
