"""The fast attention path's pieces against the textbook path (fused projection, banded bias,
factorised positional term, tiles, threads, dropout) and the bench's arithmetic. The model-level
tests run on both CPU attention kernels (the `attention_kernel` fixture: genometracks' compiled one
and PyTorch's flash-attention tiles)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from genometracks.bench import flops_per_position
from genometracks.bench import main as bench_main
from genometracks.model import Memory, TransformerXL
from genometracks.model.attention import Tile, _band_bias, absent_prefix
from genometracks.model.relative import head_band_bias, key_features, query_rotation, rotate_queries, sinusoid_encoding
from tests.model_reference import run_segments, small_model

pytestmark = pytest.mark.usefixtures("one_thread")

# --- fast path pieces ------------------------------------------------------------------------


def test_factorised_encoding_is_the_encoding_of_the_difference():
    # one frequency (d_model 2): r(d) = [sin d, cos d]; g = [1, 0] scores sin(a - b), g = [0, 1] cos(a - b)
    a, b = torch.tensor([2.0]), torch.tensor([0.5])
    s, c = query_rotation(a, 2)
    for g, expected in (([1.0, 0.0], math.sin(1.5)), ([0.0, 1.0], math.cos(1.5))):
        got = rotate_queries(torch.tensor([g], dtype=torch.float64), s, c) @ key_features(b, 2).T
        assert got.item() == pytest.approx(expected, abs=1e-12)
    # d_model 32, positions up to 1100 (a window of 512 plus a segment), queries before and after keys
    torch.manual_seed(0)
    a, b = torch.randint(0, 1100, (50,)), torch.randint(0, 1100, (60,))
    g = torch.randn(50, 32, dtype=torch.float64)
    s, c = query_rotation(a, 32)
    got = rotate_queries(g, s, c) @ key_features(b, 32).T
    expected = torch.einsum("af,abf->ab", g, sinusoid_encoding((a[:, None] - b[None]).flatten(), 32).view(50, 60, 32))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_head_band_bias_puts_each_distance_on_the_band():
    groups, n_q, n_head, width = 2, 5, 3, 4
    target, bias = head_band_bias(n_q, groups, n_head, width)
    bd = torch.randn(groups, n_q, n_head, width)  # column e ↔ distance W-1-e
    target.copy_(bd)
    assert bias.shape == (groups, n_head, n_q, n_q + width - 1)
    for g in range(groups):
        for h in range(n_head):
            for i in range(n_q):
                for j in range(n_q + width - 1):
                    dist = width - 1 + i - j
                    expected = bd[g, i, h, width - 1 - dist] if 0 <= dist < width else float("-inf")
                    assert bias[g, h, i, j] == expected


def test_band_bias_is_built_on_the_device_of_its_queries():
    # off the CPU (a GPU) the fast path's bias buffer must lie where g lies; "meta" stands in for a second
    # device here: a buffer made on the CPU would make torch.mm(..., out=buffer) refuse the meta inputs
    target, bias = head_band_bias(4, 2, 3, 5, device="meta")
    assert target.device.type == bias.device.type == "meta"
    g, encoding = torch.randn(2, 4, 3, 8, device="meta"), torch.randn(8, 5, device="meta")
    absent = torch.zeros(2, 8, dtype=torch.bool, device="meta")
    tile = Tile(slice(0, 2), slice(0, 4), slice(0, 8), absent, 0)
    got = _band_bias(g, encoding, tile, {})
    assert got.device.type == "meta" and got.shape == (2, 3, 4, 8)


@pytest.mark.parametrize("per_head_conv", [False, True])
def test_fused_projection_equals_linear_then_convolution(per_head_conv):
    model = small_model(11, per_head_conv=per_head_conv).double()
    attn, c, hd = model.blocks[0].attn, model.conv_width // 2, model.n_head * model.d_head
    h = torch.randn(3, 12, model.d_model, dtype=torch.float64)
    p_memory = torch.randn(3, 3 * hd, c, dtype=torch.float64)
    p_valid = torch.tensor([[True] * c, [False] * c, [False, True, True]])
    with torch.no_grad():
        q, k, v, _ = attn.project(h, p_memory, p_valid)  # [B, H, S-c, D] each
        y = attn._fast_project(h, p_memory.masked_fill(~p_valid[:, None], 0.0))  # [B, S-c, 3HD]
    for index, (ref, bias) in enumerate(((q, attn.u), (k, 0.0), (v, 0.0))):
        got = y[..., index * hd : (index + 1) * hd].view(3, -1, model.n_head, model.d_head).transpose(1, 2)
        torch.testing.assert_close(got, ref + (bias[:, None] if index == 0 else bias), rtol=0, atol=1e-12)


@pytest.mark.parametrize("query_block, stream_block", [(5, 2), (64, 3), (1, 1)])
def test_fast_tiles_do_not_change_logits_or_gradients(query_block, stream_block, attention_kernel):
    model = small_model(12, query_block=query_block, stream_block=stream_block)
    tokens = torch.randint(0, 5, (3, 90 + model.lookahead))
    resets = {40: [0, 2]}
    textbook = run_segments(model, tokens, 30, "textbook", resets)
    textbook.square().sum().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    fast = run_segments(model, tokens, 30, "fast", resets)
    torch.testing.assert_close(fast, textbook, rtol=0, atol=1e-5)
    fast.square().sum().backward()
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(run_segments(model, tokens, 30, "fast", resets), textbook, rtol=0, atol=1e-5)


@pytest.mark.parametrize("window", [128, 512, 100])
@pytest.mark.parametrize("memory", ["carried", "none"])
def test_banded_tiles_equal_textbook_at_paper_windows(window, memory, attention_kernel):
    # query blocks of 64: window 100 is not a multiple of the tile; segments of 150 reach past one
    # window; "none" resets every stream at every segment (training without memory: every tile is
    # clipped to the keys that exist), "carried" resets two streams mid-run (tiles mixing streams
    # with and without memory). float32 logits to 1e-5; gradients in float64, where rounding does not
    # hide a wrong term, to 1e-5 of each parameter's largest gradient.
    model = small_model(16, window=window, query_block=64, stream_block=2)
    tokens = torch.randint(0, 5, (3, 450 + model.lookahead))
    resets = {t: [0, 1, 2] for t in (150, 300)} if memory == "none" else {150: [1], 300: [0, 2]}
    torch.testing.assert_close(
        run_segments(model, tokens, 150, "fast", resets), run_segments(model, tokens, 150, "textbook", resets), rtol=0, atol=1e-5
    )
    model.double()
    weights = torch.linspace(-1, 1, 450, dtype=torch.float64)
    grads = {}
    for path in ("textbook", "fast"):
        model.zero_grad()
        (run_segments(model, tokens, 150, path, resets) * weights).sum().backward()
        grads[path] = [p.grad.clone() for p in model.parameters()]
    for fast, textbook in zip(grads["fast"], grads["textbook"]):
        assert float((fast - textbook).abs().max()) <= 1e-5 * max(float(textbook.abs().max()), 1e-6)


def test_training_with_detached_memory_gives_the_textbook_gradients(attention_kernel):
    # a training step carries the previous step's memory detached (task.train_memory=true): the compiled
    # kernel then skips the remembered keys' gradients and the remembered inputs enter the projection through
    # AddAtStart; the weights' gradients are still the textbook path's (float64, to 1e-10 of the largest)
    model = small_model(18, window=64, query_block=16, stream_block=1).double().train()
    tokens = torch.randint(0, 5, (3, 160 + model.lookahead))
    grads = {}
    for path in ("textbook", "fast"):
        with torch.no_grad():
            _, memory = model(tokens[:, : 80 + model.lookahead], path=path)
        model.zero_grad()
        logits, _ = model(tokens[:, 80:], memory.detach(), path=path)
        (logits * torch.linspace(-1, 1, 80, dtype=torch.float64)).sum().backward()
        grads[path] = [p.grad.clone() for p in model.parameters()]
    for fast, textbook in zip(grads["fast"], grads["textbook"]):
        assert float((fast - textbook).abs().max()) <= 1e-10 * max(float(textbook.abs().max()), 1e-6)


def test_tiles_skip_keys_that_exist_in_no_stream():
    model = small_model(17, window=32, query_block=8, stream_block=1)
    attn = model.blocks[0].attn  # M = 31 remembered positions
    valid = torch.zeros(2, 31, dtype=torch.bool)
    valid[1, 21:] = True  # stream 1 remembers its last 10 positions, stream 0 nothing
    assert absent_prefix(valid) == 21 and absent_prefix(torch.zeros(2, 31, dtype=torch.bool)) == 31
    key_exists = torch.cat([valid[:, 21:], torch.ones(2, 16, dtype=torch.bool)], dim=1)  # 10 + 16 keys
    tiles = attn._tiles(key_exists, 16)
    # stream 0, queries 0..7 (keys 10..17): its own keys only, from the bias column of key 10
    first = tiles[0]
    assert (first.streams, first.rows, first.reach) == (slice(0, 1), slice(0, 8), slice(10, 18))
    assert first.absent is None and first.column == 10 - (0 + 10 - 31)
    # stream 1, queries 8..15: keys 0..25 reach back 31, all that exist
    last = tiles[-1]
    assert (last.streams, last.rows, last.reach, last.absent) == (slice(1, 2), slice(8, 16), slice(0, 26), None)
    assert last.column == 0 - (8 + 10 - 31)


@pytest.mark.slow
def test_paper_config_gradients_equal_textbook(attention_kernel):
    torch.manual_seed(13)
    model = TransformerXL().train()  # dropout 0: the fused kernels' backward
    tokens = torch.randint(0, 5, (2, 600 + model.lookahead))
    resets = {200: [1]}
    grads = {}
    for path in ("textbook", "fast"):
        model.zero_grad()
        logits = run_segments(model, tokens, 200, path, resets)
        F.binary_cross_entropy_with_logits(logits, (tokens[:, :600] == 0).float()).backward()
        grads[path] = [p.grad.clone() for p in model.parameters()]
    for fast, textbook in zip(grads["fast"], grads["textbook"]):
        torch.testing.assert_close(fast, textbook, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_trained_float32_fast_path_is_as_near_the_exact_logits_as_the_textbook():
    # the shipped paper model's float32 logits differ between the paths by a few 1e-5 (larger logits than
    # random weights give): that is float32 rounding, of the textbook path as much as of the fast one; float64
    # (the exact value to ~1e-14, where both paths agree) is the yardstick
    from genometracks.inference.shipped import load_shipped

    model = load_shipped("ecoli_k12_paper").model.eval()
    tokens = torch.randint(0, 4, (2, 2 * 512 + model.lookahead), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        float32 = {path: run_segments(model, tokens, 512, path).double() for path in ("fast", "textbook")}
        model.double()
        exact = run_segments(model, tokens, 512, "textbook")
        torch.testing.assert_close(run_segments(model, tokens, 512, "fast"), exact, rtol=0, atol=1e-10)
    error = {path: float((logits - exact).abs().max()) for path, logits in float32.items()}
    assert error["fast"] <= 1.5 * error["textbook"] and error["fast"] < 1e-4, error


def test_attention_dropout_in_training_draws_as_the_textbook_path():
    model = small_model(14, dropout=0.3, workers=2).train()  # no threads while dropout draws
    tokens = torch.randint(0, 5, (2, 60 + model.lookahead))
    torch.manual_seed(1)
    textbook = run_segments(model, tokens, 20, "textbook")
    torch.manual_seed(1)
    fast = run_segments(model, tokens, 20, "fast")
    torch.testing.assert_close(fast, textbook, rtol=0, atol=1e-5)
    assert not torch.equal(fast, run_segments(model, tokens, 20, "fast"))  # dropout is on


@pytest.mark.parametrize("workers", [2, 3])
def test_concurrent_stream_groups_give_the_same_logits_memory_and_gradients(workers, attention_kernel):
    model = small_model(15)
    tokens = torch.randint(0, 5, (5, 60 + model.lookahead))

    def run(n: int) -> tuple[torch.Tensor, Memory, list[torch.Tensor]]:
        model.workers = n
        model.zero_grad()
        memory, total = None, 0.0
        for start in (0, 20, 40):  # memory not detached: gradients flow across segments
            reset = torch.tensor([start == 0 or (start == 20 and row == 3) for row in range(5)])
            logits, memory = model(tokens[:, start : start + 20 + model.lookahead], memory, reset)
            total = total + (logits * torch.linspace(-1, 1, 20)).sum()
        total.backward()
        return logits, memory, [p.grad.clone() for p in model.parameters()]

    logits, memory, grads = run(1)
    got_logits, got_memory, got_grads = run(workers)
    torch.testing.assert_close(got_logits, logits, rtol=0, atol=1e-6)
    assert got_memory.layers[0].k.requires_grad and got_memory.valid.equal(memory.valid)
    for layer, expected in zip(got_memory.layers, memory.layers):
        torch.testing.assert_close(layer.k, expected.k, rtol=0, atol=1e-6)
        torch.testing.assert_close(layer.p, expected.p, rtol=0, atol=1e-6)
    for got, expected in zip(got_grads, grads):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    with torch.inference_mode():
        model.workers = workers
        fast, _ = model(tokens[:, 20 : 40 + model.lookahead], memory.detach())
        model.workers = 1
        torch.testing.assert_close(fast, model(tokens[:, 20 : 40 + model.lookahead], memory.detach())[0], rtol=0, atol=1e-6)


# --- bench -----------------------------------------------------------------------------------


def test_bench_flop_count_and_argument_errors(capsys):
    # per layer: q|k|v linear 2*32*576, convolution 2*576*32*7, content + position + values 3*2*512*192,
    # output 2*192*32; then the head 2*32
    per_layer = 36_864 + 258_048 + 589_824 + 12_288
    assert flops_per_position(TransformerXL()) == 6 * per_layer + 64
    assert bench_main(["--tasks", "inference,predict"]) == 2
    assert "--tasks" in capsys.readouterr().err
    assert bench_main(["--genome", "--fasta", "/nonexistent/genome.fa"]) == 2
    assert "/nonexistent/genome.fa" in capsys.readouterr().err
    assert bench_main(["--weights", "/nonexistent/best.ckpt", "--tasks", "training"]) == 2
    assert "/nonexistent/best.ckpt: checkpoint not found" in capsys.readouterr().err
    assert bench_main(["--device", "tpu"]) == 2
    assert "--device 'tpu'" in capsys.readouterr().err
    assert bench_main(["--stream-block", "0"]) == 2
    assert "--stream-block must be >= 1" in capsys.readouterr().err
    if not torch.cuda.is_available():  # a machine without a GPU says so in one line
        assert bench_main(["--device", "cuda"]) == 2
        assert "sees no CUDA device" in capsys.readouterr().err


def test_bench_fast_only_times_the_fast_path_alone(capsys):
    # --fast-only: for A/B runs of two revisions; no textbook timing, no ratio, the fast figures as always
    assert (
        bench_main(["--fast-only", "--tasks", "inference,training", "--batch", "2", "--seg-len", "64", "--segments", "1", "--repeats", "2"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cpu" and "peak_gpu_mib" not in result
    assert result["inference_fast"]["positions_per_s"]["n"] == 2 and result["training_fast"]["positions_per_s"]["median"] > 0
    assert not [key for key in result if "textbook" in key or "ratio" in key]
    assert result["training_fast"]["first_loss"] > 0


def test_gpu_check_script_is_valid_bash_and_its_bench_commands_parse(capsys):
    # scripts/gpu_check.sh runs on a lent GPU machine with little time: its bench command lines must still
    # parse after the bench's options change (checked here with the CPU standing in for the GPU)
    import re
    import shlex
    import subprocess
    from pathlib import Path

    from genometracks.bench import parse_args

    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert subprocess.run(["bash", str(script)], capture_output=True).returncode == 2  # usage
    text = script.read_text()
    tiles = shlex.split(re.search(r"GPU_TILES=\((.*)\)", text).group(1))
    commands = [line.split("scripts/bench.py", 1)[1] for line in text.splitlines() if "scripts/bench.py" in line and "step " in line]
    assert len(commands) == 2
    for command in commands:
        argv = [tiles if word == "${GPU_TILES[@]}" else [word] for word in shlex.split(command)]
        args = parse_args([word.replace("cuda", "cpu") for words in argv for word in words])
        assert args.query_block == 512 and args.stream_block == 64 and args.batch == 64


def test_model_threads_flush_denormal_floats_to_zero():
    """The row-block threads run with FTZ/DAZ: a float below 1.2e-38 is read and written as 0 there
    (a trained model's gradients are full of them; without it the backward pass ran 2.6x slower).
    Checked on the bits, so the caller's own FTZ state (set by any in-process CLI call) does not matter."""
    import subprocess
    import sys

    from genometracks.model.transformer import _in_threads

    tiny = torch.tensor([1, 700_000], dtype=torch.int32).view(torch.float32)  # denormals: 1.4e-45, 9.8e-40
    products = _in_threads(lambda t: (t * 2.0).view(torch.int32).tolist(), [tiny, tiny.clone()])
    assert products == [[0, 0], [0, 0]]  # without DAZ/FTZ: [2, 1_400_000]
    # the command line sets it for the whole process (threads started later inherit it)
    code = (
        "import torch; from genometracks.cli import _flush_denormals; _flush_denormals(); "
        "print((torch.tensor([700_000], dtype=torch.int32).view(torch.float32) * 2.0).view(torch.int32).item())"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "0"


def test_bench_names_shared_inputs_without_the_machines_path(tmp_path, monkeypatch):
    from genometracks.bench import portable_path

    monkeypatch.setenv("GENOMETRACKS_DATA", str(tmp_path / "data"))
    inside = tmp_path / "data" / "ecoli_k12" / "genome" / "g.fa"
    assert portable_path(inside) == "$GENOMETRACKS_DATA/ecoli_k12/genome/g.fa"
    assert portable_path(tmp_path / "mine.fa") == str(tmp_path / "mine.fa")


def test_remembered_keys_get_their_gradient_when_the_attention_weights_are_frozen(attention_kernel):
    # step 3 decided 'no gradient' from the queries alone: with the attention frozen (only the head
    # trained), d logits / d memory.k came back None on the fast path and 1.9e-2 on the textbook path
    torch.manual_seed(0)
    model = TransformerXL(n_layer=1, n_head=2, d_model=8, d_head=4, window=9, conv_width=1, workers=1).double().eval()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("head"))
    tokens = torch.randint(0, 4, (1, 12))
    with torch.no_grad():
        _, memory = model(tokens)
    grads = {}
    for path in ("textbook", "fast"):
        layer = memory.detach().layers[0]
        k = layer.k.clone().requires_grad_(True)
        carried = type(memory)((type(layer)(k, layer.v, layer.p),), memory.valid)
        logits, _ = model(tokens, carried, path=path)
        logits.sum().backward()
        grads[path] = k.grad
    assert grads["fast"] is not None and float(grads["textbook"].abs().max()) > 1e-3
    torch.testing.assert_close(grads["fast"], grads["textbook"], rtol=1e-10, atol=1e-12)


def test_a_dtype_round_trip_keeps_the_fast_paths_encodings_exact():
    # fast_pos is kept in float64; a .float() then .double() cast kept float32-rounded sinusoids (1.9e-10)
    torch.manual_seed(1)
    model = TransformerXL(n_layer=1, n_head=2, d_model=8, d_head=4, window=9, workers=1).float().double().eval()
    assert all(m.fast_pos.dtype == torch.float64 for m in model.modules() if hasattr(m, "fast_pos"))
    tokens = torch.randint(0, 4, (2, 30 + model.lookahead))
    with torch.no_grad():
        fast, textbook = (model(tokens, path=path)[0] for path in ("fast", "textbook"))
    torch.testing.assert_close(fast, textbook, rtol=0, atol=1e-13)
