"""Relative-position maths for Transformer-XL attention, as small pure functions.

Index convention used throughout the model: a block's queries i = 0..Lq-1 sit at genome positions
t+i (t = segment start); its keys are the M remembered positions followed by the Lq segment
positions, so key index j sits at position t - M + j and the query-key distance ("offset",
0 = the query itself, positive = upstream) is M + i - j. The model keeps M = window - 1.

The fast attention path scores the positional term two ways: as a banded additive bias
(`head_band_bias`) or, factorised through sin(a - b) = sin a cos b - cos a sin b, as a dot product
of a query feature and a key feature (`rotate_queries`, `key_features`) that fused attention
kernels take as extra head dimensions.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sinusoid_encoding(distances: Tensor, d_model: int) -> Tensor:
    """Sinusoidal encodings r_d of Transformer-XL: distances [n] → float64 [n, d_model].

    The first half holds sin(d / 10000^(2k/d_model)), the second half the matching cos.
    """
    if d_model % 2:
        raise ValueError(f"d_model must be even for sinusoidal encodings; got {d_model}")
    exponent = torch.arange(0, d_model, 2, dtype=torch.float64, device=distances.device) / d_model
    angles = distances.to(torch.float64)[:, None] / (10000.0**exponent)[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def rel_shift(x: Tensor) -> Tensor:
    """Textbook Transformer-XL shift (zero pad + reshape), copying.

    In: x [..., Lq, K] where column c was scored against distance K-1-c (the same distance for
    every query). Out: [..., Lq, K] where column j was scored against distance M + i - j
    (M = K - Lq), i.e. the key index convention above. Entries with j > M + i (the future) hold
    junk and must be masked by the caller.
    """
    *lead, n_q, n_k = x.shape
    padded = torch.cat([x.new_zeros(*lead, n_q, 1), x], dim=-1)
    padded = padded.reshape(*lead, n_k + 1, n_q)
    return padded[..., 1:, :].reshape(*lead, n_q, n_k)


def key_features(positions: Tensor, d_model: int) -> Tensor:
    """Key side of the factorised encoding: positions [n] → float64 [n, d_model] = [cos b*w, sin b*w]
    (w = the frequencies of `sinusoid_encoding`), so that for any g [d_model]
    sinusoid_encoding(a - b) · g = rotate_queries(g, a) · key_features(b)."""
    sin_cos = sinusoid_encoding(positions, d_model)
    half = d_model // 2
    return torch.cat([sin_cos[:, half:], sin_cos[:, :half]], dim=-1)


def query_rotation(positions: Tensor, d_model: int) -> tuple[Tensor, Tensor]:
    """Coefficients (s, c), float64 [n, d_model] each, of `rotate_queries` at positions [n]:
    s = [sin a*w, sin a*w], c = [cos a*w, -cos a*w]."""
    sin_cos = sinusoid_encoding(positions, d_model)
    half = d_model // 2
    sin, cos = sin_cos[:, :half], sin_cos[:, half:]
    return torch.cat([sin, sin], dim=-1), torch.cat([cos, -cos], dim=-1)


def rotate_queries(g: Tensor, s: Tensor, c: Tensor) -> Tensor:
    """Query side of the factorised encoding: g [..., n, (heads,) d_model] with the
    `query_rotation` coefficients s, c broadcast against it → g*s + swap(g)*c, where swap exchanges
    the sin and cos halves. For g = [g_sin, g_cos] at position a and keys at b:
    g_sin·sin(w(a-b)) + g_cos·cos(w(a-b)) = (g_sin sin wa + g_cos cos wa)·cos wb
    + (g_cos sin wa - g_sin cos wa)·sin wb."""
    half = g.shape[-1] // 2
    swapped = torch.cat([g[..., half:], g[..., :half]], dim=-1)
    return torch.addcmul(g * s, swapped, c)


def band_view(bd: Tensor, fill: float = float("-inf")) -> Tensor:
    """Strided shift: bd [..., Lq, W] whose column e was scored against distance W-1-e
    → [..., Lq, Lq + W - 1] whose column j was scored against distance W-1 + i - j (the key index
    convention above with M = W - 1), holding `fill` outside the band 0 <= j - i < W.

    One copy pads each row with Lq fill values ([..., Lq, Lq + W]); a strided view with row stride
    Lq + W - 1 then starts row i i places further right, so the band lands in place and every
    entry off the band reads padding. With fill = -inf the result is a ready attention bias.
    """
    *lead, n_q, width = bd.shape
    padded = bd.new_empty(*lead, n_q, n_q + width)  # (F.pad was slower on CPU)
    padded[..., :width] = bd
    padded[..., width:] = fill
    stride = (*padded.stride()[:-2], n_q + width - 1, 1)
    return padded.as_strided((*lead, n_q, n_q + width - 1), stride, padded.storage_offset())


def head_band_bias(
    n_queries: int,
    groups: int,
    n_head: int,
    window: int,
    fill: float = float("-inf"),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """A banded attention bias written in place by one matrix product, for all heads at once.

    Returns (target, bias): fill target [G, Lq, H, W] (column e ↔ distance W-1-e, e.g. with
    torch.mm(..., out=target.view(G*Lq*H, W)) — it is a strided view of a padded buffer) and read
    bias [G, H, Lq, Lq + W - 1], column j ↔ distance W-1 + i - j (the key index convention above with
    M = W - 1) and `fill` off the band 0 <= j - i < W. Rows of the buffer are [Lq, H, Lq + W]; the
    bias view steps one element less per query than a row holds, so query i reads its row shifted by
    i, and every entry off the band reads padding (the Lq fill values closing each row). The buffer
    lies on `device` (the CPU by default): the device of the g that fills it.
    """
    buffer = torch.empty(groups, n_queries, n_head, n_queries + window, dtype=dtype, device=device)
    buffer[..., window:] = fill
    row = n_head * (n_queries + window)
    bias = buffer.as_strided((groups, n_head, n_queries, n_queries + window - 1), (n_queries * row, n_queries + window, row - 1, 1))
    return buffer[..., :window], bias


def window_mask(n_queries: int, n_memory: int, window: int, device: torch.device | None = None) -> Tensor:
    """bool [Lq, M + Lq]: True where key j lies in query i's causal window, 0 <= M + i - j < window."""
    i = torch.arange(n_queries, device=device)[:, None]
    j = torch.arange(n_memory + n_queries, device=device)[None, :]
    distance = n_memory + i - j
    return (distance >= 0) & (distance < window)


def offset_keys(queries: Tensor, n_memory: int, window: int, device: torch.device) -> Tensor:
    """Key index [nq, window] of the key d = 0..window-1 positions upstream of each query (indices in
    [0, Lq)) when M = n_memory keys precede the segment's own: M + query - d; negative = no such key."""
    return n_memory + queries.to(device)[:, None] - torch.arange(window, device=device)[None, :]


def by_offset(probs: Tensor, queries: Tensor, n_memory: int, window: int) -> Tensor:
    """Re-index attention from key index to offset.

    probs [..., Lq, M + Lq], queries long [nq] (indices in [0, Lq)) → [..., nq, window] where
    [..., q, d] is the weight on the key d positions upstream of query queries[q]; offsets whose key
    index would fall before the memory give 0.
    """
    keys = offset_keys(queries, n_memory, window, probs.device)  # [nq, W]
    rows = probs[..., queries, :]
    index = keys.clamp(min=0).expand(*rows.shape[:-1], window)
    return rows.gather(-1, index).masked_fill(keys < 0, 0.0)


def query_probabilities(
    queries: Tensor, g: Tensor, keys: Tensor, key_exists: Tensor, encoding: Tensor, scale: float, chosen: Tensor
) -> Tensor:
    """Attention probabilities of the `chosen` queries only, by offset, from the fast path's operands.

    queries [B, Lq, H, D] (q + u), g [B, Lq, H, d_model] (W_r^T (q + v)), keys [B, K, H, D] (the
    last Lq of them the segment's own, the K - Lq before them remembered), key_exists bool [B, K],
    encoding [d_model, W] (scaled sinusoids, column e = distance W-1-e), chosen long [nq] (indices in
    [0, Lq)) → [B, H, nq, W]: [b, h, q, o] is the weight query chosen[q] puts on the key o positions
    upstream (0 = itself), 0 where that key does not exist; what `by_offset` takes from the textbook
    path's full probabilities, computed for nq queries instead of Lq."""
    window, n_q, n_keys = encoding.shape[1], queries.shape[1], keys.shape[1]
    index = offset_keys(chosen, n_keys - n_q, window, keys.device)  # [nq, W] key of each offset
    inside = index >= 0
    content = torch.einsum("bqhd,bkhd->bhqk", queries[:, chosen], keys) * scale  # [B, H, nq, K]
    positional = torch.einsum("bqhf,fe->bhqe", g[:, chosen], encoding).flip(-1)  # [B, H, nq, W] by offset
    scores = content.gather(-1, index.clamp(min=0).expand(*content.shape[:2], -1, -1)) + positional
    exists = inside & key_exists[:, index.clamp(min=0)]  # [B, nq, W]
    return scores.masked_fill(~exists[:, None], float("-inf")).softmax(dim=-1)
