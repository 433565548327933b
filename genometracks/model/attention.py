"""Relative multi-head attention (Transformer-XL) with width-k convolutions on q, k and v.

One block's attention, for a segment starting at genome position t (c = conv_width // 2,
W = window, M = W - 1 remembered positions):

1. p = h W_qkv (no bias) for the input positions [t, t+S); the memory supplies p for [t-c, t)
   (zero where those positions do not exist, i.e. lie before the stream's reset point).
2. q, k, v = Conv1d over positions, centred, on each head's slice of p ("valid" convolution):
   outputs for [t, t+S-c). By default one Conv1d(d_head, d_head, conv_width) per q/k/v is shared
   by the heads; `per_head_conv=True` gives each head its own.
3. query n attends to keys j in [n-W+1, n] that exist:
   score = ((q_n + u)·k_j + (q_n + v)·(W_r r_{n-j})) / sqrt(d_head), softmax over j.
4. output projection W_o.

Two paths compute the same function with the same weights. "textbook": steps 1-3 as written
(einsum + zero-pad rel shift over all distances; returns probabilities). "fast":
- steps 1-2 as one convolution of h, the linear map composed into its kernel and u folded into the
  bias of q, run by oneDNN in channels-last layout (on the AMD EPYC we measured, where MKL's
  matrix products stay on AVX2, about twice as fast as a product of unfolded windows); the c
  remembered positions enter as a small correction to the first c outputs;
- step 3 on the CPU, in float32 or float64, with genometracks' own compiled kernel
  (band_attention.cpp, built on first use by model/kernel.py; `KernelAttention` with autograd): per
  tile of `query_block` queries of one stream and head, the content scores by one matrix product over
  the keys the window reaches, the positional term (g = W_r^T (q + v) times the sinusoids) by one
  product written straight onto the band, a softmax over each query's window, one product with the
  values; its backward recomputes the scores and applies the same band trick to the positional gradient,
  and leaves out the remembered keys' and values' gradients when the memory is detached (training);
- elsewhere, or where the kernel cannot be built (GENOMETRACKS_KERNEL=torch forces this), step 3 with
  PyTorch's fused CPU attention kernel on tiles of `query_block` queries of `stream_block` streams,
  each tile against only the keys its window reaches, the positional term an additive bias written by
  one product per tile straight into a buffer whose strided view puts it on the band and -inf off it
  (`band_attention`). With autograd (`WindowAttention`) the backward uses the positional term
  factorised into extra query and key features (relative.rotate_queries, key_features: sin(a-b) =
  sin a cos b - cos a sin b), so the kernel's fused backward applies with a fixed window mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genometracks.model.kernel import compiled
from genometracks.model.relative import (
    by_offset,
    head_band_bias,
    key_features,
    query_probabilities,
    query_rotation,
    rel_shift,
    rotate_queries,
    sinusoid_encoding,
    window_mask,
)

PATHS = ("fast", "textbook")


class Tile(NamedTuple):
    """One fused-attention call of the fast path: streams x query rows [a, b), the key indices
    `reach` they attend, absent: bool [G, keys] of reached keys that do not exist (None if all do),
    and column: the bias column of reach.start when the full window of query a starts at column 0."""

    streams: slice
    rows: slice
    reach: slice
    absent: Tensor | None
    column: int


def absent_prefix(valid: Tensor) -> int:
    """How many leading remembered positions exist in no stream: valid bool [B, M] (a suffix of
    True per stream) → min over streams of its leading False count (M when nothing exists)."""
    return int(valid.shape[1] - valid.sum(dim=1).max()) if valid.shape[0] else valid.shape[1]


def _carry(keys: Tensor, start: int, n_mem: int) -> Tensor:
    """Rows [start, start + n_mem) of keys [B, K, H, D] as memory [B, H, n_mem, D]; rows before 0
    (left out as absent everywhere) are zeros, as absent memory always is."""
    if start < 0:
        keys = torch.cat([keys.new_zeros(keys.shape[0], -start, *keys.shape[2:]), keys], dim=1)
        start = 0
    return keys[:, start : start + n_mem].transpose(1, 2)


def _carry_parts(old: Tensor, new: Tensor, start: int, n_mem: int) -> Tensor:
    """`_carry` of the keys [old; new] (old [B, M', H, D] remembered, new [B, Lq, H, D]) without
    concatenating them when the rows [start, start + n_mem) lie in `new` (a segment at least as long
    as the memory: the usual case), as a view."""
    if start >= old.shape[1] and start - old.shape[1] + n_mem <= new.shape[1]:
        return new[:, start - old.shape[1] : start - old.shape[1] + n_mem].transpose(1, 2)
    return _carry(torch.cat([old, new], dim=1), start, n_mem)


@dataclass(frozen=True)
class LayerMemory:
    """One block's state carried to the next segment, which starts at position t.

    k, v: [B, n_head, window-1, d_head] convolved keys and values of positions [t-W+1, t);
    p: [B, 3*n_head*d_head, c] projected, not yet convolved, q|k|v inputs of positions [t-c, t).
    """

    k: Tensor
    v: Tensor
    p: Tensor

    def map(self, fn: Callable[[Tensor], Tensor]) -> LayerMemory:
        """Apply fn to each tensor (all have the batch first)."""
        return LayerMemory(fn(self.k), fn(self.v), fn(self.p))


class RelativeAttention(nn.Module):
    """Transformer-XL relative attention with q/k/v convolutions (see the module docstring)."""

    fast_pos: Tensor  # buffer [W, d_model]: sinusoids of distances W-1..0

    def __init__(
        self,
        d_model: int,
        n_head: int,
        d_head: int,
        conv_width: int,
        window: int,
        dropout: float = 0.0,
        per_head_conv: bool = False,
        query_block: int = 64,
        stream_block: int = 1,
    ) -> None:
        super().__init__()
        if conv_width < 1 or conv_width % 2 == 0:
            raise ValueError(f"conv_width must be odd and >= 1; got {conv_width}")
        if query_block < 1 or stream_block < 1:
            raise ValueError(f"query_block and stream_block must be >= 1; got {query_block}, {stream_block}")
        if window <= conv_width // 2:
            raise ValueError(f"window must exceed conv_width // 2; got window={window}, conv_width={conv_width}")
        self.d_model, self.n_head, self.d_head = d_model, n_head, d_head
        self.conv_width, self.window, self.dropout = conv_width, window, dropout
        self.half_width = conv_width // 2  # c
        groups = n_head if per_head_conv else 1
        self.qkv = nn.Linear(d_model, 3 * n_head * d_head, bias=False)
        self.conv_weight = nn.Parameter(torch.empty(3, groups, d_head, d_head, conv_width))
        self.conv_bias = nn.Parameter(torch.empty(3, groups, d_head))
        self.r_net = nn.Linear(d_model, n_head * d_head, bias=False)
        self.u = nn.Parameter(torch.empty(n_head, d_head))
        self.v = nn.Parameter(torch.empty(n_head, d_head))
        self.out = nn.Linear(n_head * d_head, d_model, bias=False)
        self.drop = nn.Dropout(dropout)
        self.query_block, self.stream_block = query_block, stream_block  # fast path tiles (speed only)
        # kept in float64 (cast per forward): a float32 copy would make a float64 model's fast path
        # differ from the textbook path (which encodes in float64) by ~1e-7
        fast_pos = sinusoid_encoding(torch.arange(window - 1, -1, -1), d_model)
        self.register_buffer("fast_pos", fast_pos, persistent=False)  # [W, d_model], distances W-1..0
        self.reset_parameters()

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> RelativeAttention:
        """As nn.Module's (device and dtype casts), but fast_pos stays float64: a .float() then .double()
        round trip would keep float32-rounded sinusoids (1.9e-10 from the textbook path in float64)."""
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        self.fast_pos = sinusoid_encoding(torch.arange(self.window - 1, -1, -1), self.d_model).to(self.fast_pos.device)
        return self

    def reset_parameters(self) -> None:
        """Initialise conv_weight [3, groups, D, D, K] and conv_bias [3, groups, D] uniformly in ±1/sqrt(D*K)
        (as nn.Conv1d), and the biases u, v [n_head, d_head] from N(0, 0.02²); the linear maps keep
        nn.Linear's own initialisation."""
        bound = 1.0 / math.sqrt(self.d_head * self.conv_width)  # as nn.Conv1d
        nn.init.uniform_(self.conv_weight, -bound, bound)
        nn.init.uniform_(self.conv_bias, -bound, bound)
        nn.init.normal_(self.u, std=0.02)
        nn.init.normal_(self.v, std=0.02)

    def conv_kernels(self) -> tuple[Tensor, Tensor]:
        """Convolution weights for every head: [3, n_head, d_head out, d_head in, conv_width] and
        biases [3, n_head, d_head], in q, k, v order (cross-correlation, centred)."""
        h, d, w = self.n_head, self.d_head, self.conv_width
        return self.conv_weight.expand(3, h, d, d, w), self.conv_bias.expand(3, h, d)

    def project(self, h: Tensor, p_memory: Tensor, p_valid: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """q, k, v for positions [t, t+S-c), each [B, n_head, S-c, d_head].

        h: [B, S, d_model] for positions [t, t+S); p_memory: [B, 3*H*D, c] projected inputs of
        [t-c, t); p_valid: bool [B, c], False where those positions do not exist (read as zeros).
        Also returns p_ext [B, 3*H*D, c+S], the projected inputs of [t-c, t+S).
        """
        batch, n_h, d = h.shape[0], self.n_head, self.d_head
        p = self.qkv(h).transpose(1, 2)
        p_ext = torch.cat([p_memory.masked_fill(~p_valid[:, None, :], 0.0), p], dim=-1)
        weight, bias = self.conv_kernels()
        y = F.conv1d(p_ext, weight.reshape(3 * n_h * d, d, self.conv_width), bias.reshape(-1), groups=3 * n_h)
        # [B, 3HD, S-c] → [3, B, H, S-c, D] with d_head contiguous (what fused attention kernels need)
        y = y.transpose(1, 2).contiguous().view(batch, -1, 3, n_h, d).permute(2, 0, 3, 1, 4)
        return y[0], y[1], y[2], p_ext

    def forward(
        self, h: Tensor, memory: LayerMemory, valid: Tensor, advance: int, path: str = "fast", queries: Tensor | None = None
    ) -> tuple[Tensor, LayerMemory, Tensor | None]:
        """Attend from the positions [t, t+S-c) of h ([B, S, d_model], positions [t, t+S)).

        valid: bool [B, W-1], whether positions [t-W+1, t) exist. advance: where the next
        segment starts (t + advance, advance <= S - c). queries: query indices [nq] whose
        probabilities to return as [B, n_head, nq, W] by offset 0..W-1 (the fast path computes
        them for those queries alone, `relative.query_probabilities`).
        Returns (output [B, S-c, d_model], memory for the next segment, probabilities or None).
        """
        if path == "fast":
            return self._fast(h, memory, valid, advance, queries)
        if path != "textbook":
            raise ValueError(f"path must be one of {PATHS}; got {path!r}")
        n_mem, c = self.window - 1, self.half_width
        q, k, v, p_ext = self.project(h, memory.p, valid[:, n_mem - c :])
        keys = torch.cat([memory.k, k], dim=2)
        values = torch.cat([memory.v, v], dim=2)
        batch, n_q = q.shape[0], q.shape[2]
        key_exists = torch.cat([valid, valid.new_ones(batch, n_q)], dim=1)  # [B, M + Lq]
        attended, probs = self._textbook(q, keys, values, key_exists)
        out = self.drop(self.out(attended.transpose(1, 2).reshape(batch, n_q, -1)))
        carried = LayerMemory(
            keys[:, :, advance : advance + n_mem], values[:, :, advance : advance + n_mem], p_ext[:, :, advance : advance + c]
        )
        attention = by_offset(probs, queries, n_mem, self.window) if queries is not None else None
        return out, carried, attention

    def _textbook(self, q: Tensor, keys: Tensor, values: Tensor, key_exists: Tensor) -> tuple[Tensor, Tensor]:
        """Terms (a)+(c) and (b)+(d) by einsum, rel shift by zero pad + reshape. Returns the
        attention output [B, H, Lq, D] and the probabilities [B, H, Lq, M+Lq] (before dropout)."""
        n_k = keys.shape[2]
        distances = torch.arange(n_k - 1, -1, -1, device=q.device)
        r = self.r_net(sinusoid_encoding(distances, self.d_model).to(q.dtype)).view(n_k, self.n_head, self.d_head)
        content = torch.einsum("bhid,bhjd->bhij", q + self.u[:, None], keys)
        position = rel_shift(torch.einsum("bhid,jhd->bhij", q + self.v[:, None], r))
        scores = (content + position) / math.sqrt(self.d_head)
        allowed = window_mask(q.shape[2], n_k - q.shape[2], self.window, q.device) & key_exists[:, None, None, :]
        probs = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        return torch.einsum("bhij,bhjd->bhid", self.drop(probs), values), probs

    # -- fast path --------------------------------------------------------------------------------

    def fused_weights(self) -> tuple[Tensor, Tensor]:
        """Steps 1-2 as one convolution of h: weight [3*H*D, d_model, conv_width] (output channel
        s*H*D + h*D + o = q|k|v s, head h, dimension o; cross-correlation, centred) and bias
        [3*H*D], with u folded into the bias of q. Differentiable."""
        n_h, d, dm = self.n_head, self.d_head, self.d_model
        conv, conv_bias = self.conv_kernels()  # [3, H, D out, D in, K], [3, H, D]
        weight = torch.einsum("shoim,shie->shoem", conv, self.qkv.weight.view(3, n_h, d, dm))
        bias = torch.cat([(conv_bias[0] + self.u)[None], conv_bias[1:]])
        return weight.reshape(3 * n_h * d, dm, self.conv_width), bias.reshape(-1)

    def _fast_project(self, h: Tensor, p_memory: Tensor) -> Tensor:
        """[B, S-c, 3*H*D] (`fused_weights` channels: q + u, k, v) for positions [t, t+S-c) from h
        [B, S, d_model] ([t, t+S)) and p_memory [B, 3*H*D, c] ([t-c, t), zero where absent).

        One oneDNN convolution in channels-last layout (positions outer, channels inner, so the
        result is [B, S-c, 3*H*D] without a copy), [t-c, t) read as zeros; the remembered inputs
        then reach the first c outputs through a small grouped convolution added to them."""
        c, width = self.half_width, 3 * self.n_head * self.d_head
        weight, bias = self.fused_weights()
        x = F.pad(h, (0, 0, c, 0)).transpose(1, 2).unsqueeze(2)  # [B, d_model, 1, c+S], channels last
        y = F.conv2d(x.contiguous(memory_format=torch.channels_last), weight.unsqueeze(2), bias)  # [B, 3HD, 1, S-c]
        if c and bool(p_memory.any()):
            conv, _ = self.conv_kernels()
            near = F.conv1d(
                F.pad(p_memory, (0, 2 * c)), conv.reshape(width, self.d_head, self.conv_width), groups=3 * self.n_head
            )  # [B, 3HD, c]
            y = AddAtStart.apply(y, near[..., : min(c, y.shape[-1])])  # type: ignore[no-untyped-call]
        y = y.squeeze(2).transpose(1, 2)  # [B, S-c, 3HD]
        return y if y.is_contiguous() else y.contiguous()

    def _fast(
        self, h: Tensor, memory: LayerMemory, valid: Tensor, advance: int, queries: Tensor | None = None
    ) -> tuple[Tensor, LayerMemory, Tensor | None]:
        """The fast path of `forward` (same arguments, same results)."""
        n_mem, c, n_h, d = self.window - 1, self.half_width, self.n_head, self.d_head
        p_memory = memory.p.masked_fill(~valid[:, None, n_mem - c :], 0.0)
        y = self._fast_project(h, p_memory)
        batch, n_q = y.shape[:2]
        hd = n_h * d
        # remembered positions that exist in no stream (before every stream's reset point, e.g. the
        # whole memory when training without memory) are left out of the keys: no stream attends them
        skip = 0 if self._textbook_step3(y) else absent_prefix(valid)
        # one split, not three slices: its backward concatenates the three gradients instead of
        # adding each into a zero-filled copy of y (measured: 5 % of a training step)
        q_plus_u, new_keys, new_values = (part.view(batch, n_q, n_h, d) for part in torch.split(y, hd, dim=-1))
        # remembered keys and values that some stream holds: [B, M - skip, H, D] views, no copy
        old_keys, old_values = (t.transpose(1, 2)[:, skip:] for t in (memory.k, memory.v))
        key_exists = torch.cat([valid[:, skip:], valid.new_ones(batch, n_q)], dim=1)  # [B, M - skip + Lq]
        pairs = ((old_keys, new_keys), (old_values, new_values))
        if self._own_kernel(y) is not None:  # the compiled kernel reads the two parts as they are
            attended = self._kernel_attend(q_plus_u, pairs[0], pairs[1], key_exists)
            carried_k, carried_v = (_carry_parts(old, new, advance - skip, n_mem) for old, new in pairs)
        else:
            keys, values = (torch.cat([old, new], dim=1) if skip < n_mem else new for old, new in pairs)
            attended = self._fast_attend(q_plus_u, keys, values, key_exists)  # [B, Lq, H, D]
            carried_k, carried_v = _carry(keys, advance - skip, n_mem), _carry(values, advance - skip, n_mem)
        out = self.drop(self.out(attended.reshape(batch, n_q, hd)))
        # projected inputs of [t+advance-c, t+advance): from h, or partly remembered if advance < c
        recent = F.linear(h[:, max(advance - c, 0) : advance], self.qkv.weight).transpose(1, 2)
        p_next = torch.cat([p_memory[:, :, advance:], recent], dim=2) if advance < c else recent
        attention = None
        if queries is not None:  # the probabilities of a few queries, from the operands of step 3
            g, encoding, scale = self._positional(q_plus_u)
            keys = torch.cat([old_keys, new_keys], dim=1) if skip < n_mem else new_keys
            attention = query_probabilities(q_plus_u, g, keys, key_exists, encoding, scale, queries)
        return out, LayerMemory(carried_k, carried_v, p_next), attention

    def _own_kernel(self, y: Tensor) -> Any:
        """The compiled kernel where step 3 may run on it (CPU, float32/64, no attention dropout drawn), else None."""
        if self._textbook_step3(y) or (self.training and self.dropout > 0):
            return None
        return compiled_kernel(y)

    def _positional(self, queries: Tensor) -> tuple[Tensor, Tensor, float]:
        """g = W_r^T (q + v) per head [B, Lq, H, d_model] from queries = q + u, the scaled sinusoids
        [d_model, W] (column e ↔ distance W-1-e) and the score scale 1/sqrt(d_head): the positional
        term of query n at distance r is g_n · encoding[:, W-1-r]."""
        n_h, d, dm = self.n_head, self.d_head, self.d_model
        scale = 1.0 / math.sqrt(d)
        g = torch.einsum("bnhd,hdf->bnhf", queries + (self.v - self.u), self.r_net.weight.view(n_h, d, dm))
        return g, self.fast_pos.to(queries.dtype).t() * scale, scale

    def _kernel_attend(self, queries: Tensor, keys: tuple[Tensor, Tensor], values: tuple[Tensor, Tensor], key_exists: Tensor) -> Tensor:
        """Step 3 on the compiled kernel: queries [B, Lq, H, D] (q + u); keys and values as (remembered
        [B, M', H, D], the segment's own [B, Lq, H, D]); key_exists bool [B, M'+Lq]. Returns [B, Lq, H, D]."""
        g, encoding, scale = self._positional(queries)
        first_key = key_exists.shape[1] - key_exists.sum(dim=1)  # [B], existence is a suffix per stream
        tensors = (queries, rows_contiguous(g), *keys, *values, encoding.contiguous(), first_key)
        if _wants_grad(queries, g, *keys, *values):  # remembered keys may need gradients when queries do not
            return cast(Tensor, KernelAttention.apply(*tensors, scale, self.query_block))  # type: ignore[no-untyped-call]
        with torch.no_grad():
            return KernelAttention.run(*tensors, scale, self.query_block)[0]

    def _fast_attend(self, queries: Tensor, keys: Tensor, values: Tensor, key_exists: Tensor) -> Tensor:
        """Step 3 on the fast path with PyTorch's kernels (where the compiled one does not apply). queries
        [B, Lq, H, D] (q + u); keys, values [B, M+Lq, H, D]; key_exists bool [B, M+Lq]. Returns [B, Lq, H, D]."""
        if self._textbook_step3(queries):
            # WindowAttention uses PyTorch's CPU kernels, which have no dropout: textbook step 3
            attended, _ = self._textbook((queries - self.u).transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2), key_exists)
            return attended.transpose(1, 2)
        g, encoding, scale = self._positional(queries)
        tiles, dm = self._tiles(key_exists, queries.shape[1]), self.d_model
        if not _wants_grad(queries, g, keys, values):
            with torch.no_grad():
                return band_attention(queries, keys, values, g, encoding, tiles, scale, self.dropout if self.training else 0.0)
        n_k, n_q = keys.shape[1], queries.shape[1]
        positions = torch.arange(n_k, device=queries.device)
        sin, cos = (t.to(queries.dtype)[:, None] for t in query_rotation(positions[n_k - n_q :], dm))
        return cast(
            Tensor,
            WindowAttention.apply(  # type: ignore[no-untyped-call]
                queries,
                rotate_queries(g, sin, cos),
                keys,
                values,
                key_features(positions, dm).to(keys.dtype),
                g.detach(),
                encoding,
                tiles,
                scale,
            ),
        )

    def _textbook_step3(self, y: Tensor) -> bool:
        """Whether the fast path attends as the textbook does (same keys, same dropout draws):
        with gradients, under dropout or off the CPU, where WindowAttention's kernels do not apply."""
        return y.requires_grad and torch.is_grad_enabled() and ((self.training and self.dropout > 0) or y.device.type != "cpu")

    def _tiles(self, key_exists: Tensor, n_q: int) -> list[Tile]:
        """One `Tile` per attention call: `stream_block` streams x `query_block` queries [a, b), the
        keys their windows reach that exist in at least one of those streams, and which do not.

        key_exists: bool [B, K] with the Lq queries at key indices K-Lq .. K-1 (so K - Lq keys
        precede the first query, at most M = W-1; existence is a suffix per stream)."""
        batch, n_mem, tiles = key_exists.shape[0], self.window - 1, []
        before = key_exists.shape[1] - n_q  # key index of query 0
        first_key = key_exists.shape[1] - key_exists.sum(dim=1)  # [B] first existing key per stream
        for first in range(0, batch, self.stream_block):
            streams = slice(first, min(first + self.stream_block, batch))
            group_first = int(first_key[streams].min())
            for start in range(0, n_q, self.query_block):
                stop = min(start + self.query_block, n_q)
                window_start = start + before - n_mem  # key of the full window of query `start`
                low, high = max(window_start, group_first, 0), stop + before
                exists = key_exists[streams, low:high]
                absent = None if bool(exists.all()) else ~exists
                tiles.append(Tile(streams, slice(start, stop), slice(low, high), absent, low - window_start))
        return tiles


def compiled_kernel(like: Tensor) -> Any:
    """genometracks' compiled attention kernel (model/kernel.py) where it applies to tensors like
    `like` (float32/float64 on the CPU) and can be had; else None (PyTorch's flash-attention tiles)."""
    if like.device.type != "cpu" or like.dtype not in (torch.float32, torch.float64):
        return None
    return compiled()


def rows_contiguous(t: Tensor) -> Tensor:
    """t [B, L, H, D] itself when each row of D values is contiguous and rows do not overlap (what the
    compiled kernel reads: an expanded view's row stride 0 went to MKL as a row length), else a copy."""
    rows_apart = t.dim() < 2 or t.shape[1] <= 1 or t.stride(1) >= t.shape[-1]
    return t if t.stride(-1) == 1 and rows_apart else t.contiguous()


def _wants_grad(*tensors: Tensor) -> bool:
    """Whether autograd records step 3: grad mode on and any input needs a gradient (remembered keys or
    values may while the queries do not, e.g. with the attention weights frozen)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


BiasBuffers = dict[torch.Size, tuple[Tensor, Tensor]]  # [G, T, H] → `head_band_bias` (target, bias)


def _band_bias(g: Tensor, encoding: Tensor, tile: Tile, buffers: BiasBuffers) -> Tensor:
    """Additive attention bias [G, H, T, keys] of a tile's positional queries g [G, T, H, d_model]:
    g · encoding over distances W-1..0 by one product written into a reused `head_band_bias`
    buffer (-inf off the window band, and where `tile.absent` [G, keys] is True), from the tile's
    first reached key (`tile.column`) on."""
    size = g.shape[:3]
    if size not in buffers:
        buffers[size] = head_band_bias(size[1], size[0], size[2], encoding.shape[-1], dtype=g.dtype, device=g.device)
    target, bias = buffers[size]
    torch.mm(g.reshape(-1, g.shape[-1]), encoding, out=target.view(-1, encoding.shape[-1]))
    bias = bias[..., tile.column :]
    return bias if tile.absent is None else bias.masked_fill(tile.absent[:, None, None, :], -math.inf)


def band_attention(
    queries: Tensor, keys: Tensor, values: Tensor, g: Tensor, encoding: Tensor, tiles: list[Tile], scale: float, dropout: float = 0.0
) -> Tensor:
    """Windowed relative attention with the positional term as a banded additive bias (no autograd).

    queries [B, Lq, H, D]; keys, values [B, K, H, D] (K - Lq <= M keys before the first query);
    g [B, Lq, H, d_model] and encoding [d_model, W] (bias of query n at distance W-1-e:
    g_n · encoding[:, e]); tiles from RelativeAttention._tiles. Returns [B, Lq, H, D]."""
    out = queries.new_empty(queries.shape)
    buffers: BiasBuffers = {}
    group = None
    for spec in tiles:
        streams, rows, reach = spec.streams, spec.rows, spec.reach
        if streams != group:  # [G, H, L, D] views of this group of streams
            group = streams
            group_q, group_k, group_v, group_out = (t[streams].transpose(1, 2) for t in (queries, keys, values, out))
        tile = group_q[:, :, rows]
        bias = _band_bias(g[streams, rows], encoding, spec, buffers)
        if dropout or tile.device.type != "cpu":
            attended = F.scaled_dot_product_attention(
                tile, group_k[:, :, reach], group_v[:, :, reach], attn_mask=bias, dropout_p=dropout, scale=scale
            )
        else:  # the kernel F.scaled_dot_product_attention picks here, without the picking
            attended, _ = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                tile, group_k[:, :, reach], group_v[:, :, reach], attn_mask=bias, scale=scale
            )
        group_out[:, :, rows] = attended
    return out


class WindowAttention(torch.autograd.Function):
    """`band_attention` with gradients, via PyTorch's fused CPU flash-attention kernels.

    Forward: as band_attention (bias form, head size D), keeping each query's log-sum-exp.
    Backward: the positional term factorised (relative.rotate_queries / key_features), so the same
    scores are plain dot products of [q + u, fq] with [k, fk] (head size D + d_model, value padded
    with zeros) and the fused backward kernel applies per tile; key/value gradients are added in
    place per tile. Inputs: queries [B, Lq, H, D] (q + u), fq [B, Lq, H, d_model] (rotated
    W_r^T (q + v), positions counted from the first key), keys, values [B, M+Lq, H, D], fk
    [M+Lq, d_model], g and encoding as in band_attention (constants; g·encoding = the fq·fk
    term), tiles, scale.
    """

    @staticmethod
    def forward(
        ctx: Any,
        queries: Tensor,
        fq: Tensor,
        keys: Tensor,
        values: Tensor,
        fk: Tensor,
        g: Tensor,
        encoding: Tensor,
        tiles: list[Tile],
        scale: float,
    ) -> Tensor:
        """Attention output [B, Lq, H, D] (inputs as in the class docstring); saves what backward needs,
        including each query's log-sum-exp [B, H, Lq] (float32 or wider)."""
        out = queries.new_empty(queries.shape)
        lse = queries.new_empty(
            (queries.shape[0], queries.shape[2], queries.shape[1]), dtype=torch.promote_types(queries.dtype, torch.float32)
        )
        buffers: BiasBuffers = {}
        for tile in tiles:
            streams, rows, reach = tile.streams, tile.rows, tile.reach
            bias = _band_bias(g[streams, rows], encoding, tile, buffers)
            tile_out, lse[streams, :, rows] = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                queries[streams, rows].transpose(1, 2),
                keys[streams, reach].transpose(1, 2),
                values[streams, reach].transpose(1, 2),
                attn_mask=bias,
                scale=scale,
            )
            out[streams, rows] = tile_out.transpose(1, 2)
        ctx.save_for_backward(queries, fq, keys, values, fk, out, lse)
        ctx.tiles, ctx.scale, ctx.window = tiles, scale, encoding.shape[-1]
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """grad_out [B, Lq, H, D] → gradients of queries [B, Lq, H, D], fq [B, Lq, H, d_model], keys and
        values [B, M+Lq, H, D]; None for the constants fk, g, encoding, tiles and scale."""
        queries, fq, keys, values, fk, out, lse = ctx.saved_tensors
        d, n_mem = queries.shape[-1], ctx.window - 1
        pad = fk.shape[-1]
        q_aug = torch.cat([queries, fq], dim=-1)
        k_aug = torch.cat([keys, fk[None, :, None].expand(*keys.shape[:3], pad)], dim=-1)
        v_aug, out_aug, grad_aug = (F.pad(t, (0, pad)) for t in (values, out, grad_out))
        grad_q = torch.empty_like(q_aug)
        grad_k, grad_v = torch.zeros_like(keys), torch.zeros_like(values)
        masks: dict[int, Tensor] = {}
        for tile in ctx.tiles:
            streams, rows, reach = tile.streams, tile.rows, tile.reach
            n_rows = rows.stop - rows.start
            if n_rows not in masks:
                allowed = window_mask(n_rows, n_mem, n_mem + 1, queries.device)
                masks[n_rows] = queries.new_zeros(allowed.shape).masked_fill(~allowed, -math.inf)
            mask = masks[n_rows][None, None, :, tile.column :]
            if tile.absent is not None:
                mask = mask.masked_fill(tile.absent[:, None, None, :], -math.inf)
            tile_q, tile_k, tile_v = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                grad_aug[streams, rows].transpose(1, 2),
                q_aug[streams, rows].transpose(1, 2),
                k_aug[streams, reach].transpose(1, 2),
                v_aug[streams, reach].transpose(1, 2),
                out_aug[streams, rows].transpose(1, 2),
                lse[streams, :, rows],
                0.0,
                False,
                attn_mask=mask,
                scale=ctx.scale,
            )
            grad_q[streams, rows] = tile_q.transpose(1, 2)
            grad_k[streams, reach] += tile_k.transpose(1, 2)[..., :d]
            grad_v[streams, reach] += tile_v.transpose(1, 2)[..., :d]
        return grad_q[..., :d], grad_q[..., d:], grad_k, grad_v, None, None, None, None, None, None


class AddAtStart(torch.autograd.Function):
    """y [B, C, 1, L] with near [B, C, n] added in place to its first n positions; the gradient passes to y
    unchanged and uncopied. (Autograd's own in-place add on a slice of y clones the whole gradient, and on
    a transposed view of it also zero-fills two copies: about 9 % of a training step with memory, measured.)"""

    @staticmethod
    def forward(ctx: Any, y: Tensor, near: Tensor) -> Tensor:
        ctx.n = near.shape[-1]
        y[:, :, 0, : ctx.n] += near
        ctx.mark_dirty(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor]:
        return grad, grad[:, :, 0, : ctx.n]


class KernelAttention(torch.autograd.Function):
    """Step 3 with gradients on genometracks' compiled kernel (band_attention.cpp, forward and
    backward). Inputs: queries [B, Lq, H, D] (q + u), g [B, Lq, H, d_model] (W_r^T (q + v)), the
    remembered keys [B, M', H, D] and the segment's own [B, Lq, H, D], values likewise, encoding
    [d_model, W] (scaled sinusoids, column e ↔ distance W-1-e), first_key int64 [B] (first existing
    key per stream, keys counted from the first remembered one), scale, tile (queries per kernel
    tile). Returns [B, Lq, H, D]; gradients for queries, g, keys and values."""

    @staticmethod
    def run(*inputs: Any, want_lse: bool = False) -> tuple[Tensor, Tensor]:
        """The kernel's forward without autograd, on the inputs in the class docstring's order: output
        [B, Lq, H, D] and log-sum-exp [B, H, Lq] (empty unless want_lse)."""
        queries, g, old_keys, keys, old_values, values, encoding, first_key, scale, tile = inputs
        out, lse = compiled().forward(queries, old_keys, keys, old_values, values, g, encoding, first_key, scale, tile, want_lse)
        return out, lse

    @staticmethod
    def forward(ctx: Any, *inputs: Any) -> Tensor:
        """Output [B, Lq, H, D]; saves the tensors, the output and each query's log-sum-exp [B, H, Lq]."""
        out, lse = KernelAttention.run(*inputs, want_lse=True)
        ctx.save_for_backward(*inputs[:8], out, lse)
        ctx.scale, ctx.tile = inputs[8:]
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """grad_out [B, Lq, H, D] → gradients of queries, g, both key parts and both value parts (None for
        the remembered parts when they need none: training carries its memory detached) and None for the constants."""
        queries, g, old_keys, keys, old_values, values, encoding, first_key, out, lse = ctx.saved_tensors
        memory_grads = ctx.needs_input_grad[2] or ctx.needs_input_grad[4]  # not when the memory is detached
        tensors = (queries, old_keys, keys, old_values, values, g, encoding, first_key, out, lse)  # the C++ order
        grads = compiled().backward(rows_contiguous(grad_out), *tensors, ctx.scale, ctx.tile, memory_grads)
        grad_q, grad_old_k, grad_k, grad_old_v, grad_v, grad_g = grads
        return grad_q, grad_g, grad_old_k, grad_k, grad_old_v, grad_v, None, None, None, None
