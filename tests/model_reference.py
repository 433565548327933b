"""Reference helpers shared by the model tests: a small model, segment-by-segment runs, and a
loop-by-loop implementation of the documented attention semantics."""

from __future__ import annotations

import math

import torch

from genometracks.model import TransformerXL
from genometracks.model.relative import sinusoid_encoding

SMALL = dict(n_layer=2, n_head=2, d_model=16, d_head=8, window=32, query_block=8)  # several query blocks


def small_model(seed: int = 0, **overrides) -> TransformerXL:
    torch.manual_seed(seed)
    return TransformerXL(**{**SMALL, **overrides}).eval()


def run_segments(
    model: TransformerXL, tokens: torch.Tensor, seg_len: int, path: str = "fast", reset_at: dict[int, list[int]] | None = None
) -> torch.Tensor:
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
        logits, memory = model(tokens[:, start : stop + model.lookahead], memory, reset, path=path)
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
                r = r_all[n - keys, head * d : (head + 1) * d]
                score = k[head, keys] @ (q[head, n] + attn.u[head]) + r @ (q[head, n] + attn.v[head])
                prob = torch.softmax(score / math.sqrt(d), dim=0)
                out[n, head * d : (head + 1) * d] = prob @ v[head, keys]
        h = block.norm1(h[:n_out] + out @ attn.out.weight.T)
        if block.ff is not None:
            h = block.norm2(h + block.ff(h))
    return model.head(h).squeeze(-1)


# --- relative-position functions -------------------------------------------------------------
