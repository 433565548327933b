"""Transformer-XL model: relative-position maths, the two attention paths against a loop-by-loop
reference, segment/stream invariance, exact receptive field, attention maps and first-block kernels.
The fast path's pieces are in test_model_fast.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genometracks.model import Memory, ModelInputError, TransformerXL
from genometracks.model.relative import band_view, by_offset, rel_shift, sinusoid_encoding, window_mask
from tests.model_reference import naive_logits, run_segments, small_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sinusoid_encoding_values():
    enc = sinusoid_encoding(torch.tensor([0, 1, 3]), 4)
    expected = torch.tensor(
        [
            [0, 0, 1, 1],
            [math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)],
            [math.sin(3), math.sin(0.03), math.cos(3), math.cos(0.03)],
        ],
        dtype=torch.float64,
    )
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


@pytest.mark.parametrize("overrides", [{}, {"per_head_conv": True, "d_inner": 24}, {"norm": "pre", "d_inner": 24}])
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


@pytest.mark.parametrize(
    "window, seg_lens, chunk",
    [
        (32, (32, 16, 50, 240), 60),  # below, at, not a multiple of and above the window
        (512, (512, 128, 1000), 600),  # the segment lengths at the paper's window
    ],
)
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
        streams = torch.cat([tokens[:, s : s + span + model.lookahead] for s in starts])
        for seg_len in seg_lens[:2]:
            logits = run_segments(model, streams, seg_len)
            for k, s in enumerate(starts):
                got = logits[k, k * chunk - s : (k + 1) * chunk - s]
                torch.testing.assert_close(got, reference[0, k * chunk : (k + 1) * chunk], rtol=0, atol=1e-5)


def test_pre_norm_blocks_normalise_before_attention_and_keep_segments_invisible():
    post, pre = small_model(6), small_model(6, norm="pre")
    assert pre.final_norm is not None and post.final_norm is None
    pre.load_state_dict(post.state_dict(), strict=False)  # same weights; pre adds the final norm
    tokens = torch.randint(0, 5, (1, 90 + pre.lookahead))
    with torch.inference_mode():
        reference = run_segments(pre, tokens, 90)
        assert not torch.allclose(reference, run_segments(post, tokens, 90))  # a different function
        torch.testing.assert_close(run_segments(pre, tokens, 20), reference, rtol=0, atol=1e-5)
        # by hand for one block: h + attention(LayerNorm(h)) then the final LayerNorm before the head
        block, h = pre.blocks[0], pre.embed(tokens[:, : 40 + pre.lookahead])
        out, _, _ = block.attn(block.norm1(h), pre.init_memory(1).layers[0], pre.init_memory(1).valid, 40)
        got, _, _ = block(h, pre.init_memory(1).layers[0], pre.init_memory(1).valid, 40, "fast", None)
        torch.testing.assert_close(got, h[:, : out.shape[1]] + out, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="norm must be one of"):
        small_model(6, norm="sandwich")


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
        logits, memory, att = model(tokens[:, : 40 + model.lookahead], path="textbook", attention_queries=queries)
        _, _, att2 = model(tokens[:, 40:], memory, path="textbook", attention_queries=queries)
        fast, _ = model(tokens[:, : 40 + model.lookahead])
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
        _, _, att = model(tokens[:, : 40 + model.lookahead], path="textbook", attention_queries=queries)
    for q, n in enumerate([0, 5, 39]):
        n_exist = min(n + 1, window)
        expected = torch.zeros(window)
        expected[:n_exist] = 1.0 / n_exist
        torch.testing.assert_close(att[..., q, :], expected.expand_as(att[..., q, :]))


@pytest.mark.parametrize("window", [128, 100, 512])
def test_fast_path_probabilities_of_chosen_queries_equal_the_textbook(window):
    """The fast path's attention for chosen queries (relative.query_probabilities) = the textbook
    path's full probabilities re-indexed by offset, in float64: across segments with memory carried,
    a stream reset mid-way (its remembered keys absent, the others' present), queries at the
    segment's first and last index, windows that are and are not a multiple of the query tile, and
    the stream-group threads on and off."""
    torch.manual_seed(window)
    model = TransformerXL(n_layer=3, n_head=2, d_model=16, d_head=8, conv_width=7, window=window, query_block=64).double().eval()
    length = 150
    tokens = torch.randint(0, 5, (3, 3 * length + model.lookahead))
    queries = torch.tensor([0, 3, 64, 99, length - 1])
    for workers in (1, 2):
        model.workers = workers
        fast_memory = textbook_memory = None
        for s in range(3):
            segment = tokens[:, s * length : (s + 1) * length + model.lookahead]
            reset = torch.tensor([False, s == 1, False])
            with torch.no_grad():
                fast, fast_memory, fast_att = model(segment, fast_memory, reset, path="fast", attention_queries=queries)
                textbook, textbook_memory, textbook_att = model(segment, textbook_memory, reset, path="textbook", attention_queries=queries)
            assert fast_att.shape == (3, 3, 2, 5, window)
            torch.testing.assert_close(fast_att, textbook_att, rtol=0, atol=1e-12)
            torch.testing.assert_close(fast, textbook, rtol=0, atol=1e-12)
            if s == 1:  # the reset stream: query i sees offsets 0..i only
                for q, i in enumerate(queries.tolist()):
                    assert (fast_att[:, 1, :, q, i + 1 :] == 0).all() and (fast_att[:, 1, :, q, : min(i + 1, window)] > 0).all()
    assert torch.allclose(fast_att.sum(-1), torch.ones(()).double())


# --- first-block kernels ---------------------------------------------------------------------


@pytest.mark.parametrize("per_head_conv,norm", [(False, "post"), (True, "post"), (False, "pre")])
def test_first_block_kernels_reproduce_q_k_v(per_head_conv, norm):
    model = small_model(7, per_head_conv=per_head_conv, norm=norm)
    if norm == "pre":  # a LayerNorm that is not the identity, so leaving it out would show
        with torch.no_grad():
            model.blocks[0].norm1.weight.uniform_(0.5, 2.0)
            model.blocks[0].norm1.bias.uniform_(-0.5, 0.5)
    c, hd = model.conv_width // 2, model.n_head * model.d_head
    tokens = torch.randint(0, 4, (2, 30))  # A/C/G/T only; a stream reset at position 0
    attn = model.blocks[0].attn
    seen = {}  # what block 0's attention reads in the model's own forward pass
    hook = attn.register_forward_pre_hook(lambda module, args: seen.update(h=args[0]))  # returns None: args unchanged
    with torch.no_grad():
        model(torch.cat([tokens, torch.zeros(2, model.lookahead, dtype=torch.long)], dim=1))
        hook.remove()
        q, k, v, _ = attn.project(seen["h"][:, :30], torch.zeros(2, 3 * hd, c), torch.zeros(2, c, dtype=torch.bool))
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
    logits_a, memory = model(tokens[:, : 30 + h])
    full, _ = model(tokens[:, 30:], memory)
    picked, _ = model(tokens[[2, 0], 30:], memory.select(torch.tensor([2, 0])))
    torch.testing.assert_close(picked, full[[2, 0]], rtol=0, atol=1e-6)
    cleared = memory.reset(torch.tensor([True, False, False]))
    assert not cleared.valid[0].any() and cleared.valid[1:].equal(memory.valid[1:])
    assert not cleared.layers[0].k[0].any() and cleared.layers[0].k[1:].equal(memory.layers[0].k[1:])
    # no stream to clear (prediction's usual segment): the memory itself, no copy of every layer's keys
    assert memory.reset(torch.zeros(3, dtype=torch.bool)) is memory
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


def test_several_outputs_share_the_trunk_and_output_0_is_the_default():
    """n_outputs = 3: forward returns output 0 [B, L] unless all_outputs ([B, L, 3]); output k is the
    one-output model with head row k; fast = textbook; the concurrent path's gradients = one thread's."""
    model = small_model(4, n_outputs=3, norm="pre")
    tokens = torch.randint(0, 5, (4, 40 + model.lookahead))
    with torch.no_grad():
        every, _ = model(tokens, all_outputs=True)
        primary, _ = model(tokens)
        textbook, _ = model(tokens, path="textbook", all_outputs=True)
    assert every.shape == (4, 40, 3) and primary.shape == (4, 40)
    torch.testing.assert_close(primary, every[..., 0], rtol=0, atol=0)
    torch.testing.assert_close(every, textbook, rtol=0, atol=1e-5)
    single = small_model(4, norm="pre")
    state = model.state_dict()
    for k in range(3):
        single.load_state_dict({**state, "head.weight": state["head.weight"][k : k + 1], "head.bias": state["head.bias"][k : k + 1]})
        with torch.no_grad():
            torch.testing.assert_close(single(tokens)[0], every[..., k], rtol=0, atol=1e-6)
    grads = {}
    for workers in (1, 2):
        model.workers = workers
        model.zero_grad()
        logits, _ = model(tokens, all_outputs=True)
        (logits * torch.tensor([1.0, -2.0, 0.5])).sum().backward()
        grads[workers] = [p.grad.clone() for p in model.parameters()]
    for a, b in zip(grads[1], grads[2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="n_outputs"):
        small_model(0, n_outputs=0)


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
    with pytest.raises(ModelInputError, match="attention_queries"):
        model(good, attention_queries=torch.tensor([10]))  # past the segment's last query
    with pytest.raises(ModelInputError, match="attention_queries"):
        model(good, attention_queries=torch.tensor([[0]]))
