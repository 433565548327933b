"""The model, its fast path, whole-genome prediction and the bench on a GPU (CUDA): the same numbers as
the textbook path and as the CPU. They run where torch sees a CUDA device (`bash scripts/gpu_check.sh`
runs them on a lent GPU machine); CI's machines have none, so there they skip, the one place a skip is
allowed for them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genometracks.bench import main as bench_main
from genometracks.genome.sequence import Genome
from genometracks.inference.predict import predict_genome
from tests.model_reference import run_segments, small_model

pytestmark = [
    pytest.mark.ci_may_skip,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (scripts/gpu_check.sh runs these on a GPU)"),
]
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def ieee_float32():
    """IEEE float32 products and convolutions (TF32 would move float32 logits by ~1e-3), as the bench sets."""
    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "ieee"
    yield
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


@pytest.mark.parametrize("query_block, stream_block", [(8, 1), (40, 3)])  # the CPU's tiles and a GPU's
def test_fast_path_on_the_gpu_equals_the_textbook_path_and_the_cpu(query_block, stream_block):
    model = small_model(3, query_block=query_block, stream_block=stream_block).double()
    tokens = torch.randint(0, 5, (3, 100 + model.lookahead), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        on_cpu = run_segments(model, tokens, 40)
        model.to(CUDA)
        fast = run_segments(model, tokens.to(CUDA), 40)
        textbook = run_segments(model, tokens.to(CUDA), 40, path="textbook")
    assert fast.device.type == "cuda"
    torch.testing.assert_close(fast, textbook, rtol=0, atol=1e-10)
    torch.testing.assert_close(fast.cpu(), on_cpu, rtol=0, atol=1e-10)


def test_training_step_on_the_gpu_gives_the_cpus_gradients():
    model = small_model(5).double().train()
    tokens = torch.randint(0, 4, (2, 60 + model.lookahead), generator=torch.Generator().manual_seed(2))
    labels = (torch.rand(2, 60, generator=torch.Generator().manual_seed(3)) < 0.1).double()
    grads = {}
    for device in ("cpu", "cuda"):
        model.to(device).zero_grad(set_to_none=True)
        logits, _ = model(tokens.to(device))
        torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.to(device)).backward()
        grads[device] = {name: p.grad.detach().cpu().clone() for name, p in model.named_parameters() if p.grad is not None}
    assert grads["cpu"].keys() == grads["cuda"].keys() and len(grads["cpu"]) > 10
    for name, expected in grads["cpu"].items():
        torch.testing.assert_close(grads["cuda"][name], expected, rtol=1e-8, atol=1e-12, msg=name)


def test_whole_genome_prediction_on_the_gpu_equals_the_cpu():
    rng = np.random.default_rng(4)
    sequences = {name: "".join(rng.choice(list("ACGT"), n)) for name, n in (("chrom", 700), ("short", 90), ("plasmid", 150))}
    genome = Genome.from_sequences(sequences, circular=["chrom", "plasmid"])
    model = small_model(6)
    probs = {}
    for device in ("cpu", "cuda"):
        probs[device], _ = predict_genome(model.to(device), genome, shift=3, seg_len=64, n_streams=2, progress=False)
    for name in sequences:
        for strand in "+-":
            np.testing.assert_allclose(probs["cuda"].values[name][strand], probs["cpu"].values[name][strand], rtol=0, atol=1e-6)


def test_bench_runs_on_the_gpu(capsys):
    argv = ["--device", "cuda", "--batch", "4", "--seg-len", "128", "--segments", "2", "--repeats", "2", "--textbook-repeats", "1"]
    assert bench_main([*argv, "--query-block", "128", "--stream-block", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cuda" and result["machine_start"]["attention_kernel"] == "torch (cuda)"
    assert result["inference_fast"]["positions_per_s"]["median"] > 0 and result["peak_gpu_mib"] > 0
    assert result["max_abs_logit_diff_fast_vs_textbook"] < 1e-5
