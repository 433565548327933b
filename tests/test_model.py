"""Transformer-XL model: relative-position maths, the two attention paths against a loop-by-loop
reference, segment/stream invariance, exact receptive field, attention maps, first-block kernels,
the fast path's pieces (fused projection, banded bias, factorised positional term, tiles, threads)
and the bench's arithmetic."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genometracks.bench import flops_per_position
from genometracks.bench import main as bench_main
from genometracks.model import Memory, ModelInputError, TransformerXL
from genometracks.model.relative import (band_view, by_offset, head_band_bias, key_features, query_rotation,
                                         rel_shift, rotate_queries, sinusoid_encoding, window_mask)

SMALL = dict(n_layer=2, n_head=2, d_model=16, d_head=8, window=32, query_block=8)  # several query blocks


pytestmark = pytest.mark.usefixtures("one_thread")


def small_model(seed: int = 0, **overrides) -> TransformerXL:
    torch.manual_seed(seed)
    return TransformerXL(**{**SMALL, **overrides}).eval()


def run_segments(model: TransformerXL, tokens: torch.Tensor, seg_len: int, path: str = "fast",
                 reset_at: dict[int, list[int]] | None = None) -> torch.Tensor:
    """Logits [B, T] for tokens [B, T + H], fed as segments of seg_len; all streams reset at 0 and
    streams reset_at[t] at segment start t."""
    batch, total = tokens.shape
    length = total - model.lookahead
    memory, out = None, []
    for start in range(0, length, seg_len):
        stop = min(start + seg_len, length)
        reset = torch.zeros(batch, dtype=torch.bool)
        reset[(reset_at or {}).get(start, [])] = True
        if start == 0:
            reset[:] = True
        logits, memory = model(tokens[:, start:stop + model.lookahead], memory, reset, path=path)
        out.append(logits)
    return torch.cat(out, dim=1)


def naive_logits(model: TransformerXL, tokens: torch.Tensor) -> torch.Tensor:
    """Loop-by-loop reference of the documented semantics: tokens [T + H] of one stream reset at
    position 0 → logits [T]."""
    c, window = model.conv_width // 2, model.window
    n_h, d = model.n_head, model.d_head
    h = model.embed.weight[tokens]
    for block in model.blocks:
        attn = block.attn
        p = h @ attn.qkv.weight.T  # [S, 3*H*D]
        weight, bias = attn.conv_kernels()  # [3, H, D, D, K], [3, H, D]
        n_out = h.shape[0] - c
        qkv = bias[:, :, None, :].repeat(1, 1, n_out, 1)  # [3, H, n_out, D]
        for j in range(n_out):
            for m in range(model.conv_width):
                if j - c + m >= 0:  # positions before the reset point are zero vectors
                    x = p[j - c + m].view(3, n_h, d)
                    qkv[:, :, j] += torch.einsum("shoi,shi->sho", weight[..., m], x)
        q, k, v = qkv
        r_all = attn.r_net(sinusoid_encoding(torch.arange(window), model.d_model).to(h.dtype))
        out = torch.zeros(n_out, n_h * d, dtype=h.dtype)
        for n in range(n_out):
            keys = torch.arange(max(0, n - window + 1), n + 1)
            for head in range(n_h):
                r = r_all[n - keys, head * d:(head + 1) * d]
                score = (k[head, keys] @ (q[head, n] + attn.u[head]) + r @ (q[head, n] + attn.v[head]))
                prob = torch.softmax(score / math.sqrt(d), dim=0)
                out[n, head * d:(head + 1) * d] = prob @ v[head, keys]
        h = block.norm1(h[:n_out] + out @ attn.out.weight.T)
        if block.ff is not None:
            h = block.norm2(h + block.ff(h))
    return model.head(h).squeeze(-1)


# --- relative-position functions -------------------------------------------------------------

def test_sinusoid_encoding_values():
    enc = sinusoid_encoding(torch.tensor([0, 1, 3]), 4)
    expected = torch.tensor([[0, 0, 1, 1],
                             [math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)],
                             [math.sin(3), math.sin(0.03), math.cos(3), math.cos(0.03)]], dtype=torch.float64)
    torch.testing.assert_close(enc, expected)


def test_rel_shift_and_band_view_index_by_distance():
    torch.manual_seed(0)
    n_q, n_mem = 5, 3
    x = torch.randn(2, n_q, n_mem + n_q)  # column c ↔ distance K-1-c
    shifted = rel_shift(x)
    width = n_mem + 1
    bd = torch.randn(2, n_q, width)  # column e ↔ distance W-1-e
    band = band_view(bd)
    assert band.shape == (2, n_q, n_mem + n_q)
    n_k = n_mem + n_q
    for i in range(n_q):
        for j in range(n_k):
            dist = n_mem + i - j
            if 0 <= dist:
                assert shifted[:, i, j].equal(x[:, i, n_k - 1 - dist])
            if 0 <= dist < width:
                assert band[:, i, j].equal(bd[:, i, width - 1 - dist])
            else:
                assert bool((band[:, i, j] == float("-inf")).all())
    mask = window_mask(n_q, n_mem, width)
    assert mask[0].tolist() == [True] * 4 + [False] * 4
    assert mask[4].tolist() == [False] * 4 + [True] * 4


def test_by_offset_reindexes_keys():
    probs = torch.arange(3 * 5, dtype=torch.float32).view(3, 5)  # Lq=3, M=2 → 5 keys
    out = by_offset(probs, torch.tensor([0, 2]), n_memory=2, window=4)
    # query 0 sits at key 2: offsets 0,1,2 → keys 2,1,0; offset 3 → before the memory → 0
    assert out.tolist() == [[2, 1, 0, 0], [14, 13, 12, 11]]


# --- the two paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [{}, {"per_head_conv": True, "d_inner": 24}])
def test_textbook_matches_loop_reference(overrides):
    model = small_model(1, **overrides).double()
    tokens = torch.randint(0, 5, (1, 50 + model.lookahead))
    expected = naive_logits(model, tokens[0])
    got = run_segments(model, tokens, 20, path="textbook")
    torch.testing.assert_close(got[0], expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("overrides", [{}, {"per_head_conv": True, "d_inner": 24}])
def test_fast_equals_textbook_with_memory_and_reset(overrides):
    model = small_model(2, **overrides)
    tokens = torch.randint(0, 5, (3, 130 + model.lookahead))
    resets = {60: [1]}  # stream 1 restarts at position 60
    fast = run_segments(model, tokens, 20, "fast", resets)
    textbook = run_segments(model, tokens, 20, "textbook", resets)
    torch.testing.assert_close(fast, textbook, rtol=0, atol=1e-5)
    # the reset stream forgot everything: equals a fresh run from position 60
    fresh = run_segments(model, tokens[1:2, 60:], 20, "fast")
    torch.testing.assert_close(fast[1:2, 60:], fresh, rtol=0, atol=1e-5)
    fast.sum().backward()
    grads_fast = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    run_segments(model, tokens, 20, "textbook", resets).sum().backward()
    for g_fast, p in zip(grads_fast, model.parameters()):
        torch.testing.assert_close(g_fast, p.grad, rtol=1e-4, atol=1e-5)


def test_paper_config_paths_agree_and_segments_do_not_matter():
    torch.manual_seed(3)
    model = TransformerXL().eval()  # paper: 6 layers, 6 heads, d_model 32, d_head 32, conv 7, W 512
    assert (model.lookahead, model.context) == (18, 6 * (511 + 3))
    tokens = torch.randint(0, 5, (2, 120 + model.lookahead))
    with torch.inference_mode():
        fast = run_segments(model, tokens, 40, "fast")
        torch.testing.assert_close(run_segments(model, tokens, 40, "textbook"), fast, rtol=0, atol=1e-5)
        torch.testing.assert_close(run_segments(model, tokens, 120, "fast"), fast, rtol=0, atol=1e-5)


# --- invariance and receptive field ----------------------------------------------------------

@pytest.mark.parametrize("window, seg_lens, chunk", [
    (32, (32, 16, 50, 240), 60),  # below, at, not a multiple of and above the window
    (512, (512, 128, 1000), 600),  # the segment lengths at the paper's window
])
def test_logits_do_not_depend_on_segment_length_or_stream_count(window, seg_lens, chunk):
    model = small_model(4, window=window, query_block=64)
    burn_in = model.context  # 68 and 1028
    length = 4 * chunk
    tokens = torch.randint(0, 5, (1, length + model.lookahead))
    with torch.inference_mode():
        reference = run_segments(model, tokens, seg_lens[0])
        for seg_len in seg_lens[1:]:
            torch.testing.assert_close(run_segments(model, tokens, seg_len), reference, rtol=0, atol=1e-5)
        # 4 streams: stream k scores [k*chunk, (k+1)*chunk) after a burn-in from a reset
        span = chunk + burn_in
        starts = [max(0, k * chunk - burn_in) for k in range(4)]
        streams = torch.cat([tokens[:, s:s + span + model.lookahead] for s in starts])
        for seg_len in seg_lens[:2]:
            logits = run_segments(model, streams, seg_len)
            for k, s in enumerate(starts):
                got = logits[k, k * chunk - s:(k + 1) * chunk - s]
                torch.testing.assert_close(got, reference[0, k * chunk:(k + 1) * chunk], rtol=0, atol=1e-5)


@pytest.mark.parametrize("path", ["fast", "textbook"])
def test_receptive_field_is_exactly_context_and_lookahead(path):
    model = small_model(5).double()
    tokens = torch.randint(0, 4, (1, 200 + model.lookahead))
    changed = tokens.clone()
    p = 100
    changed[0, p] = (tokens[0, p] + 1) % 4
    with torch.no_grad():
        diff = (run_segments(model, tokens, 30, path) - run_segments(model, changed, 30, path))[0].abs()
    affected = torch.nonzero(diff).flatten()
    assert affected.min().item() == p - model.lookahead
    assert affected.max().item() == p + model.context


# --- attention maps --------------------------------------------------------------------------

def test_attention_probabilities_by_offset():
    model = small_model(6)
    window = model.window
    tokens = torch.randint(0, 5, (2, 80 + model.lookahead))
    queries = torch.tensor([0, 5, 39])
    with torch.no_grad():
        logits, memory, att = model(tokens[:, :40 + model.lookahead], path="textbook", attention_queries=queries)
        _, _, att2 = model(tokens[:, 40:], memory, path="textbook", attention_queries=queries)
        fast, _ = model(tokens[:, :40 + model.lookahead])
    torch.testing.assert_close(logits, fast, rtol=0, atol=1e-5)
    assert att.shape == (2, 2, 2, 3, window)  # [n_layer, B, n_head, nq, W]
    for a in (att, att2):
        torch.testing.assert_close(a.sum(-1), torch.ones(2, 2, 2, 3))
    # first segment after reset: query at position n sees offsets 0..n only
    for q, n in enumerate([0, 5, 39]):
        n_exist = min(n + 1, window)
        assert (att[..., q, :n_exist] > 0).all() and (att[..., q, n_exist:] == 0).all()
    assert (att2 > 0).all()  # position >= 40: the whole window exists

    # constant scores (zero queries, u = v = 0) → uniform over existing keys
    with torch.no_grad():
        for block in model.blocks:
            attn, hd = block.attn, model.n_head * model.d_head
            attn.qkv.weight[:hd] = 0
            attn.conv_weight[0] = 0
            attn.conv_bias[0] = 0
            attn.u.zero_()
            attn.v.zero_()
        _, _, att = model(tokens[:, :40 + model.lookahead], path="textbook", attention_queries=queries)
    for q, n in enumerate([0, 5, 39]):
        n_exist = min(n + 1, window)
        expected = torch.zeros(window)
        expected[:n_exist] = 1.0 / n_exist
        torch.testing.assert_close(att[..., q, :], expected.expand_as(att[..., q, :]))


# --- first-block kernels ---------------------------------------------------------------------

@pytest.mark.parametrize("per_head_conv", [False, True])
def test_first_block_kernels_reproduce_q_k_v(per_head_conv):
    model = small_model(7, per_head_conv=per_head_conv)
    c, hd = model.conv_width // 2, model.n_head * model.d_head
    tokens = torch.randint(0, 4, (2, 30))  # A/C/G/T only; a stream reset at position 0
    attn = model.blocks[0].attn
    with torch.no_grad():
        q, k, v, _ = attn.project(model.embed(tokens), torch.zeros(2, 3 * hd, c), torch.zeros(2, c, dtype=torch.bool))
        kernels = model.first_block_kernels()
    n_out = q.shape[2]  # positions [0, 30 - c)
    onehot = F.one_hot(tokens, 4).permute(0, 2, 1).float()
    for name, got in zip("qkv", (q, k, v)):
        got = got.permute(0, 1, 3, 2).reshape(2, hd, n_out)  # channel = head * d_head + dim
        assert kernels[name].shape == (hd, 4, model.conv_width)
        ref = F.conv1d(onehot, kernels[name], kernels[f"{name}_bias"], padding=c)[..., :n_out]
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
        # the documented convention, by hand at position j = 10: kernel index m reads j - c + m
        j = 10
        by_hand = kernels[f"{name}_bias"] + sum(kernels[name][:, tokens[0, j - c + m], m] for m in range(7))
        torch.testing.assert_close(got[0, :, j], by_hand, rtol=0, atol=1e-5)


# --- memory, training, errors ----------------------------------------------------------------

def test_memory_select_reset_and_detach():
    model = small_model(8)
    h = model.lookahead
    tokens = torch.randint(0, 5, (3, 60 + h))
    logits_a, memory = model(tokens[:, :30 + h])
    full, _ = model(tokens[:, 30:], memory)
    picked, _ = model(tokens[[2, 0], 30:], memory.select(torch.tensor([2, 0])))
    torch.testing.assert_close(picked, full[[2, 0]], rtol=0, atol=1e-6)
    cleared = memory.reset(torch.tensor([True, False, False]))
    assert not cleared.valid[0].any() and cleared.valid[1:].equal(memory.valid[1:])
    fresh, _ = model(tokens[:1, 30:])
    torch.testing.assert_close(model(tokens[:, 30:], cleared)[0][0], fresh[0], rtol=0, atol=1e-6)
    assert memory.layers[0].k.requires_grad and not memory.detach().layers[0].k.requires_grad
    assert isinstance(memory.detach(), Memory) and memory.batch_size == 3


def test_training_step_reduces_loss_on_tiny_task():
    model = small_model(9, query_block=64).train()
    tokens = torch.randint(0, 4, (4, 64 + model.lookahead))
    labels = (tokens[:, :64] == 0).float().roll(2, dims=1)  # "an A two positions upstream"
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        logits, _ = model(tokens)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        if not losses:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bad_inputs_raise_clear_errors():
    model = small_model(10)
    h = model.lookahead
    good = torch.zeros(2, 10 + h, dtype=torch.long)
    with pytest.raises(ModelInputError, match="lookahead"):
        model(good[:, :h])
    with pytest.raises(ModelInputError, match="integer"):
        model(good.float())
    with pytest.raises(ModelInputError, match=r"\[0, 5\)"):
        model(good + 5)
    with pytest.raises(ModelInputError, match="init_memory"):
        model(good, model.init_memory(3))
    with pytest.raises(ModelInputError, match="reset"):
        model(good, reset=torch.ones(2))
    with pytest.raises(ModelInputError, match="textbook"):
        model(good, attention_queries=torch.tensor([0]))


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
        got = y[..., index * hd:(index + 1) * hd].view(3, -1, model.n_head, model.d_head).transpose(1, 2)
        torch.testing.assert_close(got, ref + (bias[:, None] if index == 0 else bias), rtol=0, atol=1e-12)


@pytest.mark.parametrize("query_block, stream_block", [(5, 2), (64, 3), (1, 1)])
def test_fast_tiles_do_not_change_logits_or_gradients(query_block, stream_block):
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


def test_paper_config_gradients_equal_textbook():
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
def test_concurrent_stream_groups_give_the_same_logits_memory_and_gradients(workers):
    model = small_model(15)
    tokens = torch.randint(0, 5, (5, 60 + model.lookahead))

    def run(n: int) -> tuple[torch.Tensor, Memory, list[torch.Tensor]]:
        model.workers = n
        model.zero_grad()
        memory, total = None, 0.0
        for start in (0, 20, 40):  # memory not detached: gradients flow across segments
            reset = torch.tensor([start == 0 or (start == 20 and row == 3) for row in range(5)])
            logits, memory = model(tokens[:, start:start + 20 + model.lookahead], memory, reset)
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
        fast, _ = model(tokens[:, 20:40 + model.lookahead], memory.detach())
        model.workers = 1
        torch.testing.assert_close(fast, model(tokens[:, 20:40 + model.lookahead], memory.detach())[0],
                                   rtol=0, atol=1e-6)


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
