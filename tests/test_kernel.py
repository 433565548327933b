"""genometracks' compiled attention kernel (genometracks/model/band_attention.cpp) against a dense
reference written from the definition, its gradients (torch.autograd.gradcheck), its checks, and the
fallback to PyTorch's kernels when it cannot be built."""

from __future__ import annotations

import math

import pytest
import torch

from genometracks.model import kernel
from genometracks.model.attention import KernelAttention, band_attention
from tests.model_reference import run_segments, small_model


@pytest.fixture()
def own(monkeypatch):
    """The compiled kernel module (skipped where it cannot be built; a failure under CI)."""
    monkeypatch.delenv(kernel.SWITCH, raising=False)
    module = kernel.compiled()
    if module is None:
        pytest.skip("the compiled attention kernel could not be built here (g++ and ninja needed)")
    return module


def dense_reference(q, k, v, g, enc, first_key, scale):
    """The definition, position by position: query n (key index n + before) scores key j in its window
    [n + before - (W-1), n + before] that exists (j >= first_key[b]) as scale q_n.k_j + g_n.enc[:, W-1-dist],
    dist = n + before - j. Returns (output [B, Lq, H, D], log-sum-exp [B, H, Lq])."""
    batch, n_q, heads, _ = q.shape
    window, before = enc.shape[1], k.shape[1] - n_q
    out, lse = torch.zeros_like(q), q.new_zeros(batch, heads, n_q)
    for b in range(batch):
        for h in range(heads):
            for n in range(n_q):
                keys = [j for j in range(n + before - window + 1, n + before + 1) if j >= max(int(first_key[b]), 0)]
                scores = torch.stack([scale * q[b, n, h] @ k[b, j, h] + g[b, n, h] @ enc[:, window - 1 - (n + before - j)] for j in keys])
                lse[b, h, n] = torch.logsumexp(scores, 0)
                out[b, n, h] = torch.softmax(scores, 0) @ v[b, keys, h]
    return out, lse


def split(q, k, v):
    """Keys and values [B, M' + Lq, H, D] as the kernel takes them: remembered k, own k, remembered v, own v."""
    before = k.shape[1] - q.shape[1]
    return k[:, :before], k[:, before:], v[:, :before], v[:, before:]


def kernel_forward(module, q, k, v, g, enc, first_key, scale, tile, want_lse):
    return module.forward(q, *split(q, k, v), g, enc, first_key, scale, tile, want_lse)


def inputs(batch, n_q, before, heads, d, d_pos, window, dtype=torch.float64, seed=0):
    """Random q (a strided view, as the model's split projection gives it), k, v, g and enc."""
    generator = torch.Generator().manual_seed(seed)
    wide = torch.randn(batch, n_q, 3 * heads * d, dtype=dtype, generator=generator)
    q = wide[..., : heads * d].view(batch, n_q, heads, d)
    k, v = (torch.randn(batch, n_q + before, heads, d, dtype=dtype, generator=generator) for _ in range(2))
    g = torch.randn(batch, n_q, heads, d_pos, dtype=dtype, generator=generator) * 0.5
    enc = torch.randn(d_pos, window, dtype=dtype, generator=generator) * 0.5
    return q, k, v, g, enc


@pytest.mark.parametrize(
    "n_q, before, window, tile, first",
    [
        (7, 4, 5, 3, [0, 3, 4]),  # tiles of 3 over 7 queries; a stream whose keys start mid-window
        (6, 0, 4, 64, [0, 0, 0]),  # no memory, one tile larger than the segment
        (5, 0, 1, 1, [0, 0, 0]),  # window 1: each query attends itself only
        (9, 8, 9, 4, [-3, 8, 5]),  # full memory; first_key below 0 means "all exist"
    ],
)
def test_forward_equals_the_definition(own, n_q, before, window, tile, first):
    q, k, v, g, enc = inputs(3, n_q, before, 2, 3, 4, window)
    first_key = torch.tensor(first)
    expected, expected_lse = dense_reference(q, k, v, g, enc, first_key, 0.4)
    out, lse = kernel_forward(own, q, k, v, g, enc, first_key, 0.4, tile, True)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(lse, expected_lse, rtol=0, atol=1e-12)
    assert kernel_forward(own, q, k, v, g, enc, first_key, 0.4, tile, False)[1].numel() == 0


def test_forward_by_hand(own):
    # one stream, one head, d 1, window 2, two queries after one remembered key; no positional term:
    # query 0 (key 1) sees keys 0, 1 with scores 1*2, 1*1 → weights e^2, e^1 on values 10, 20
    module = own
    q = torch.tensor([[[[1.0]], [[0.0]]]], dtype=torch.float64)  # [1, 2, 1, 1]
    k = torch.tensor([[[[2.0]], [[1.0]], [[5.0]]]], dtype=torch.float64)  # keys 0, 1, 2
    v = torch.tensor([[[[10.0]], [[20.0]], [[30.0]]]], dtype=torch.float64)
    g, enc = torch.zeros(1, 2, 1, 1, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    out, lse = kernel_forward(module, q, k, v, g, enc, torch.tensor([0]), 1.0, 64, True)
    w = math.exp(2) / (math.exp(2) + math.exp(1))
    assert out[0, 0, 0, 0].item() == pytest.approx(10 * w + 20 * (1 - w), abs=1e-12)
    assert lse[0, 0, 0].item() == pytest.approx(math.log(math.exp(2) + math.exp(1)), abs=1e-12)
    assert out[0, 1, 0, 0].item() == pytest.approx(25.0, abs=1e-12)  # query 1: q = 0, keys 1 and 2 equal
    # key 0 absent (first_key 1): query 0 sees key 1 only
    out, _ = kernel_forward(module, q, k, v, g, enc, torch.tensor([1]), 1.0, 64, False)
    assert out[0, 0, 0, 0].item() == pytest.approx(20.0, abs=1e-12)
    # a positional term of +1 at distance 1 (column 0 of enc) only: query 1 now leans to key 1
    enc = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    out, _ = kernel_forward(module, q, k, v, torch.ones(1, 2, 1, 1, dtype=torch.float64), enc, torch.tensor([0]), 1.0, 64, False)
    w = math.exp(1) / (math.exp(1) + 1)
    assert out[0, 1, 0, 0].item() == pytest.approx(20 * w + 30 * (1 - w), abs=1e-12)


def test_float32_equals_float64(own):
    q, k, v, g, enc = inputs(2, 40, 31, 3, 8, 6, 32)
    first_key = torch.tensor([0, 20])
    out64, lse64 = kernel_forward(own, q, k, v, g, enc, first_key, 0.35, 16, True)
    out32, lse32 = kernel_forward(own, *(t.float() for t in (q, k, v, g, enc)), first_key, 0.35, 16, True)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=1e-5)
    torch.testing.assert_close(lse32.double(), lse64, rtol=0, atol=1e-5)


def test_forward_equals_pytorch_flash_tiles(own):
    # the kernel against the fast path's other kernel, at the paper's window and tile, float32
    model = small_model(3, window=512, d_model=32, d_head=32, n_head=2, query_block=64, stream_block=2)
    attn = model.blocks[0].attn
    q, k, v, g, enc = inputs(3, 150, 511, 2, 32, 32, 512, dtype=torch.float32)
    key_exists = torch.arange(661)[None, :] >= torch.tensor([0, 300, 511])[:, None]
    expected = band_attention(q, k, v, g, enc, attn._tiles(key_exists, 150), 0.18)
    got, _ = kernel_forward(own, q, k, v, g, enc, torch.tensor([0, 300, 511]), 0.18, 64, False)
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("first", [[0, 2], [5, 0]])
def test_gradients_pass_gradcheck(own, first):
    q, k, v, g, enc = (t.clone().requires_grad_(t.dim() == 4) for t in inputs(2, 6, 5, 2, 3, 4, 6))
    first_key = torch.tensor(first)

    def attend(q, g, k, v):
        return KernelAttention.apply(q, g, *split(q, k, v), enc, first_key, 0.5, 4)

    assert torch.autograd.gradcheck(attend, (q, g, k, v), eps=1e-6, atol=1e-8)


def test_gradients_equal_the_definitions(own):
    q, k, v, g, enc = (t.clone().requires_grad_(t.dim() == 4) for t in inputs(2, 7, 4, 2, 3, 4, 5))
    first_key = torch.tensor([0, 3])
    weights = torch.randn(2, 7, 2, 3, dtype=torch.float64)
    grads = {}
    for name, run in (
        ("kernel", lambda: KernelAttention.apply(q, g, *split(q, k, v), enc, first_key, 0.7, 3)),
        ("definition", lambda: dense_reference(q, k, v, g, enc, first_key, 0.7)[0]),
    ):
        (run() * weights).sum().backward()
        grads[name] = [t.grad.clone() for t in (q, g, k, v)]
        for t in (q, g, k, v):
            t.grad = None
    for got, expected in zip(grads["kernel"], grads["definition"]):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_detached_memory_gets_no_gradient_and_leaves_the_others_unchanged(own):
    # training carries its memory detached: the kernel then skips the remembered keys' and values' gradient
    # products; every other gradient is the same as when the memory needs one
    q, k, v, g, enc = inputs(2, 9, 6, 2, 3, 4, 7)
    first_key, weights = torch.tensor([0, 4]), torch.randn(2, 9, 2, 3, dtype=torch.float64)
    grads = {}
    for memory_needs_grad in (True, False):
        leaves = [t.clone().requires_grad_(True) for t in (q, g, *split(q, k, v))]
        q_, g_, old_k, new_k, old_v, new_v = leaves
        old_k.requires_grad_(memory_needs_grad)
        old_v.requires_grad_(memory_needs_grad)
        (KernelAttention.apply(q_, g_, old_k, new_k, old_v, new_v, enc, first_key, 0.6, 4) * weights).sum().backward()
        grads[memory_needs_grad] = [t.grad for t in leaves]
    assert grads[False][2] is None and grads[False][4] is None
    assert grads[True][2].abs().sum() > 0 and grads[True][4].abs().sum() > 0
    for index in (0, 1, 3, 5):
        torch.testing.assert_close(grads[False][index], grads[True][index], rtol=0, atol=0)


def test_misuse_is_refused_in_one_line(own):
    q, k, v, g, enc = inputs(1, 4, 2, 1, 2, 2, 3)
    with pytest.raises(RuntimeError, match="own key must exist"):
        kernel_forward(own, q, k, v, g, enc, torch.tensor([3]), 1.0, 2, False)  # query 0's key (2) before first_key
    with pytest.raises(RuntimeError, match="at most W-1 keys"):
        kernel_forward(own, q, torch.cat([k, k], 1), torch.cat([v, v], 1), g, enc, torch.tensor([0]), 1.0, 2, False)
    with pytest.raises(RuntimeError, match="one dtype"):
        kernel_forward(own, q, k.float(), v, g, enc, torch.tensor([0]), 1.0, 2, False)
    # an expanded view (row stride 0) reached MKL as a row length it refused: the product was skipped
    # and the output held whatever the buffer did (max error 1.49), with no exception
    q4, k4, v4, g4, enc4 = inputs(1, 4, 0, 1, 2, 2, 3)
    with pytest.raises(RuntimeError, match=r"rows overlap \(stride\(1\) < D"):
        kernel_forward(own, q4[:, :1].expand(1, 4, 1, 2), k4, v4, g4, enc4, torch.tensor([0]), 1.0, 2, False)


def test_switch_and_failed_build_fall_back_to_pytorch(monkeypatch, own):
    model = small_model(21)
    tokens = torch.randint(0, 5, (2, 70 + model.lookahead))
    compiled = run_segments(model, tokens, 35, "fast")
    monkeypatch.setenv(kernel.SWITCH, "torch")
    assert kernel.compiled() is None
    torch.testing.assert_close(run_segments(model, tokens, 35, "fast"), compiled, rtol=0, atol=1e-6)
    # a build that fails (here: its source is missing) warns once, in one line, and the model still runs
    monkeypatch.delenv(kernel.SWITCH)
    monkeypatch.setattr(kernel, "SOURCE", kernel.SOURCE.with_name("missing.cpp"))
    kernel._build.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="compiled attention kernel is not available") as caught:
            assert kernel.compiled() is None
            torch.testing.assert_close(run_segments(model, tokens, 35, "fast"), compiled, rtol=0, atol=1e-6)
        assert len(caught) == 1 and "\n" not in str(caught[0].message)
    finally:
        kernel._build.cache_clear()


def test_build_name_is_per_cpu_and_per_source(monkeypatch, tmp_path):
    fingerprint = kernel.cpu_fingerprint()
    assert len(fingerprint) == 8 and int(fingerprint, 16) >= 0 and fingerprint == kernel.cpu_fingerprint()
    here = kernel.build_name()
    assert here.startswith(f"genometracks_band_{fingerprint}_") and here == kernel.build_name()
    monkeypatch.setattr(kernel, "SOURCE", tmp_path / "band_attention.cpp")  # another checkout's source
    assert kernel.build_name() != here


def test_threads_share_stream_head_pairs_with_identical_results(own):
    # at::parallel_for hands (stream, head) pairs to torch's threads: the same numbers as one thread
    q, k, v, g, enc = inputs(3, 40, 31, 3, 8, 6, 32, dtype=torch.float32)
    first_key, grad_out = torch.tensor([0, 20, 31]), torch.randn(3, 40, 3, 8)
    threads, results = torch.get_num_threads(), []
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            out, lse = kernel_forward(own, q, k, v, g, enc, first_key, 0.35, 16, True)
            grads = own.backward(grad_out, q, *split(q, k, v), g, enc, first_key, out, lse, 0.35, 16, True)
            results.append([out, lse, *grads])
    finally:
        torch.set_num_threads(threads)
    for one, several in zip(*results):
        assert torch.equal(one, several)


def test_scores_spanning_hundreds_of_units_stay_exact(own):
    # a trained model's scores span ~1,500 units (the shipped paper model): terms below e^-50 of a row's
    # largest are dropped as 0 (no underflow, no denormals), invisible at float64's rounding of the sum
    q, k, v, g, enc = inputs(2, 20, 15, 2, 4, 4, 16)
    q, g = q * 60, g * 60
    first_key = torch.tensor([0, 7])
    expected, expected_lse = dense_reference(q, k, v, g, enc, first_key, 1.0)
    assert float(expected_lse.max() - expected_lse.min()) > 300  # the rows really span hundreds of units
    out, lse = kernel_forward(own, q, k, v, g, enc, first_key, 1.0, 8, True)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(lse, expected_lse, rtol=1e-15, atol=1e-10)
    out32, _ = kernel_forward(own, *(t.float() for t in (q, k, v, g, enc)), first_key, 1.0, 8, False)
    assert torch.isfinite(out32).all()
    torch.testing.assert_close(out32.double(), expected, rtol=1e-4, atol=1e-4)
