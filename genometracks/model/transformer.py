"""Segment-recurrent Transformer-XL over nucleotide tokens: one TSS logit per position.

tokens (A,C,G,T,N = 0..4) → embedding → n_layer blocks (relative attention with q/k/v
convolutions, residual + LayerNorm, optional feed-forward with residual + LayerNorm) → linear head.

Exactness across segment edges. Each block's convolutions read c = conv_width // 2 positions on
either side, so a block needs c positions of lookahead: the forward takes tokens [B, L + H]
(H = lookahead = n_layer * c) for positions [t, t+L+H) and returns logits for exactly [t, t+L).
Block l computes hidden states for [t, t+L+H-c(l+1)); the halo beyond t+L is recomputed by the
next segment. The upstream side comes from Memory (convolved k/v of the last W-1 positions and
the c projected inputs the convolution needs). Positions before a stream's reset point do not
exist: zeros in the convolutions, excluded as keys. Hence the logit at n depends only on tokens in
[n - context, n + lookahead] (context = n_layer * (W-1+c)) and on where the stream was reset,
not on how the genome was cut into segments or streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

import torch
from torch import Tensor, nn

from genometracks.model.attention import PATHS, LayerMemory, RelativeAttention

ACGT = 4  # tokens 0..3 are A, C, G, T; 4 is N


_POOLS: dict[int, ThreadPoolExecutor] = {}
FLUSH_DENORMALS = True  # the row-block threads run with FTZ/DAZ (`genometracks bench --keep-denormals` clears it)


def _thread_setup() -> None:
    torch.set_flush_denormal(FLUSH_DENORMALS)


@contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to n inside the block (threads started inside keep it)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class ModelInputError(ValueError):
    """Tokens, memory or reset flags that do not fit the model; the message says the fix."""


@dataclass(frozen=True)
class Memory:
    """Per-layer state before the next segment start t, and valid: bool [B, W-1], whether
    positions [t-W+1, t) exist (False before a stream's reset point)."""

    layers: tuple[LayerMemory, ...]
    valid: Tensor

    @property
    def batch_size(self) -> int:
        """B, the number of streams."""
        return self.valid.shape[0]

    @staticmethod
    def cat(parts: list[Memory]) -> Memory:
        """Streams of several memories stacked in order (the inverse of splitting by rows)."""
        layers = tuple(
            LayerMemory(*(torch.cat(t) for t in zip(*((m.k, m.v, m.p) for m in group)))) for group in zip(*(part.layers for part in parts))
        )
        return Memory(layers, torch.cat([part.valid for part in parts]))

    def _map(self, fn: Callable[[Tensor], Tensor]) -> Memory:
        return Memory(tuple(layer.map(fn) for layer in self.layers), fn(self.valid))

    def detach(self) -> Memory:
        """Cut the autograd graph (truncated backpropagation through time)."""
        return self._map(Tensor.detach)

    def select(self, rows: Tensor) -> Memory:
        """Keep streams `rows` (long indices or bool [B]) in that order."""
        return self._map(lambda t: t[rows])

    def to(self, device: torch.device | str) -> Memory:
        """Every tensor moved to `device` (shapes and dtypes unchanged)."""
        return self._map(lambda t: t.to(device))

    def reset(self, flags: Tensor) -> Memory:
        """Clear the streams where flags (bool [B]) is True: all positions marked absent, zeroed."""
        flags = flags.to(device=self.valid.device, dtype=torch.bool)
        if not bool(flags.any()):  # the usual segment: nothing to clear, nothing copied
            return self

        def clear(t: Tensor) -> Tensor:
            return t.masked_fill(flags.view(-1, *([1] * (t.dim() - 1))), 0)

        return self._map(clear)


NORMS = ("post", "pre")
# TransformerXL.forward: (logits, memory), or (logits, memory, attention) when attention is asked for
Output = tuple[Tensor, Memory] | tuple[Tensor, Memory, Tensor]
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


class Block(nn.Module):
    """norm="post" (the paper): relative attention → residual + LayerNorm (→ feed-forward → residual
    + LayerNorm). norm="pre": LayerNorm → attention → residual (→ LayerNorm → feed-forward →
    residual), the placement that keeps deep stacks trainable (Xiong et al. 2020); the model then
    normalises once more before its head."""

    def __init__(
        self,
        d_model: int,
        n_head: int,
        d_head: int,
        conv_width: int,
        window: int,
        d_inner: int,
        dropout: float,
        per_head_conv: bool,
        query_block: int,
        stream_block: int,
        norm: str = "post",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
        self.norm = norm
        self.attn = RelativeAttention(d_model, n_head, d_head, conv_width, window, dropout, per_head_conv, query_block, stream_block)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = None
        if d_inner > 0:
            self.ff = nn.Sequential(
                nn.Linear(d_model, d_inner), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_inner, d_model), nn.Dropout(dropout)
            )
            self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self, h: Tensor, memory: LayerMemory, valid: Tensor, advance: int, path: str, queries: Tensor | None
    ) -> tuple[Tensor, LayerMemory, Tensor | None]:
        """h [B, S, d_model] for [t, t+S) → [B, S-c, d_model] for [t, t+S-c), carried memory, attention."""
        if self.norm == "pre":
            out, carried, attention = self.attn(self.norm1(h), memory, valid, advance, path, queries)
            h = h[:, : out.shape[1]] + out
            if self.ff is not None:
                h = h + self.ff(self.norm2(h))
            return h, carried, attention
        out, carried, attention = self.attn(h, memory, valid, advance, path, queries)
        h = self.norm1(h[:, : out.shape[1]] + out)
        if self.ff is not None:
            h = self.norm2(h + self.ff(h))
        return h, carried, attention


class TransformerXL(nn.Module):
    """Segment-recurrent Transformer-XL with q/k/v convolutions (see the module docstring).

    d_inner = 0: no feed-forward (the paper). per_head_conv: each head its own q/k/v convolution
    instead of one shared by the heads. norm: "post" (the paper) or "pre" LayerNorm placement
    (see Block). query_block, stream_block: queries and streams per attention
    call on the fast path (speed and memory only; results do not depend on them). workers: on the
    fast path on CPU, split the streams into this many row blocks that run concurrently, forward
    and backward, each on a thread of its own with torch's intra-op threads shared out (on a few
    cores this beats intra-op threading alone, whose barriers cost much on small tensors and on a
    busy machine); None = torch.get_num_threads() at call time, 1 = no threads of its own. Not
    while training with dropout > 0, so that seeded runs draw the same dropout masks. n_outputs: one
    logit per position per output; output 0 is the primary one (what `forward` returns by default,
    what tracks show), further ones are auxiliary label sets trained alongside (`data.aux_labels`).
    """

    def __init__(
        self,
        n_layer: int = 6,
        n_head: int = 6,
        d_model: int = 32,
        d_head: int = 32,
        conv_width: int = 7,
        window: int = 512,
        d_inner: int = 0,
        dropout: float = 0.0,
        per_head_conv: bool = False,
        vocab_size: int = 5,
        query_block: int = 64,
        stream_block: int = 1,
        workers: int | None = None,
        norm: str = "post",
        n_outputs: int = 1,
    ) -> None:
        super().__init__()
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1; got {n_outputs}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be None or >= 1; got {workers}")
        self.workers = workers
        if n_layer < 1 or vocab_size < ACGT:
            raise ValueError(f"need n_layer >= 1 and vocab_size >= 4; got {n_layer}, {vocab_size}")
        self.n_layer, self.n_head, self.d_head, self.d_model = n_layer, n_head, d_head, d_model
        self.conv_width, self.window, self.vocab_size = conv_width, window, vocab_size
        self.embed = nn.Embedding(vocab_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(d_model, n_head, d_head, conv_width, window, d_inner, dropout, per_head_conv, query_block, stream_block, norm)
            for _ in range(n_layer)
        )
        self.norm = norm
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else None
        self.n_outputs = n_outputs
        self.head = nn.Linear(d_model, n_outputs)

    @property
    def lookahead(self) -> int:
        """H: tokens needed after a segment's last position (n_layer * (conv_width // 2))."""
        return self.n_layer * (self.conv_width // 2)

    @property
    def context(self) -> int:
        """Upstream receptive field in positions (n_layer * (window - 1 + conv_width // 2)): the burn-in."""
        return self.n_layer * (self.window - 1 + self.conv_width // 2)

    def init_memory(self, batch_size: int, device: torch.device | str | None = None) -> Memory:
        """Empty memory for batch_size streams: nothing upstream exists."""
        param = self.head.weight
        device = param.device if device is None else device
        n_mem, c, width = self.window - 1, self.conv_width // 2, 3 * self.n_head * self.d_head
        kv = torch.zeros(batch_size, self.n_head, n_mem, self.d_head, dtype=param.dtype, device=device)
        p = torch.zeros(batch_size, width, c, dtype=param.dtype, device=device)
        layers = tuple(LayerMemory(kv, kv, p) for _ in range(self.n_layer))
        return Memory(layers, torch.zeros(batch_size, n_mem, dtype=torch.bool, device=device))

    def forward(
        self,
        tokens: Tensor,
        memory: Memory | None = None,
        reset: Tensor | None = None,
        path: str = "fast",
        attention_queries: Tensor | None = None,
        all_outputs: bool = False,
    ) -> Output:
        """tokens: int [B, L + lookahead] for positions [t, t+L+H); memory from the previous
        segment (None = nothing upstream); reset: bool [B], clear those streams first.

        Returns (logits [B, L] of the primary output (output 0, the one tracks show), or [B, L,
        n_outputs] with all_outputs, memory for the segment starting at t+L), plus, when
        attention_queries (long [nq], indices in [0, L)) is given, attention probabilities
        [n_layer, B, n_head, nq, window] by offset 0..W-1 upstream (0 = the query itself; 0 where
        the key does not exist): the fast path computes them for those queries alone, the textbook
        path takes them from its full probabilities.
        """
        memory = self._check(tokens, memory, reset, path, attention_queries)
        if reset is not None:
            memory = memory.reset(reset)
        groups = min(torch.get_num_threads() if self.workers is None else self.workers, tokens.shape[0])
        out: Output
        concurrent = path == "fast" and tokens.device.type == "cpu" and not (self.training and self.drop.p > 0)
        if groups > 1 and concurrent and (attention_queries is None or not torch.is_grad_enabled()):
            out = self._forward_concurrently(tokens, memory, groups, attention_queries)
        else:
            out = self._forward(tokens, memory, path, attention_queries)
        if all_outputs:
            return out
        return (out[0][..., 0], *out[1:])

    def _forward_concurrently(self, tokens: Tensor, memory: Memory, groups: int, attention_queries: Tensor | None = None) -> Output:
        """`_forward` on `groups` row blocks of the streams at once, one thread each (forward and,
        through `_Concurrent`, backward; attention_queries without autograd only)."""
        bounds = [round(i * tokens.shape[0] / groups) for i in range(groups + 1)]
        rows = [slice(a, b) for a, b in zip(bounds, bounds[1:])]
        params = [p for p in self.parameters() if p.requires_grad]
        if torch.is_grad_enabled() and params and attention_queries is None:
            tensors = _flatten(memory)
            logits, valid, *carried = _Concurrent.apply(  # type: ignore[no-untyped-call]
                self, tokens, memory.valid, rows, len(tensors), *tensors, *params
            )
            return logits, _unflatten(carried, valid)
        inference = torch.is_inference_mode_enabled()  # autograd modes are per thread: pass them on

        def run(part: slice) -> Output:
            with torch.inference_mode(inference), torch.no_grad():
                return self._forward(tokens[part], memory._map(lambda t: t[part]), "fast", attention_queries)

        results = _in_threads(run, rows)
        logits, carried = torch.cat([r[0] for r in results]), Memory.cat([r[1] for r in results])
        if attention_queries is None:
            return logits, carried
        return logits, carried, torch.cat([cast(tuple[Tensor, Memory, Tensor], r)[2] for r in results], dim=1)

    @overload
    def _forward(self, tokens: Tensor, memory: Memory, path: str, attention_queries: None) -> tuple[Tensor, Memory]: ...

    @overload
    def _forward(self, tokens: Tensor, memory: Memory, path: str, attention_queries: Tensor) -> tuple[Tensor, Memory, Tensor]: ...

    def _forward(self, tokens: Tensor, memory: Memory, path: str, attention_queries: Tensor | None) -> Output:
        """`forward` after the checks and resets; logits of every output [B, L, n_outputs]."""
        length = tokens.shape[1] - self.lookahead
        h = self.drop(self.embed(tokens))
        carried, attention = [], []
        for block, layer_memory in zip(self.blocks, memory.layers):
            h, layer_carried, layer_attention = block(h, layer_memory, memory.valid, length, path, attention_queries)
            carried.append(layer_carried)
            attention.append(layer_attention)
        valid = torch.cat([memory.valid, memory.valid.new_ones(tokens.shape[0], length)], dim=1)
        new_memory = Memory(tuple(carried), valid[:, length : length + self.window - 1])
        logits = self.head(h if self.final_norm is None else self.final_norm(h))  # [B, L, n_outputs]
        if attention_queries is not None:
            return logits, new_memory, torch.stack(attention)
        return logits, new_memory

    def _check(self, tokens: Tensor, memory: Memory | None, reset: Tensor | None, path: str, queries: Tensor | None) -> Memory:
        """Validate the inputs; return the memory to use."""
        if tokens.dim() != 2 or tokens.dtype.is_floating_point or tokens.shape[1] <= self.lookahead:
            raise ModelInputError(
                f"tokens must be an integer tensor [B, L + {self.lookahead}] with L >= 1 (the segment plus "
                f"lookahead = {self.lookahead} following tokens); got {tuple(tokens.shape)} {tokens.dtype}"
            )
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise ModelInputError(
                f"tokens must lie in [0, {self.vocab_size}) (A,C,G,T,N = 0..4); got values in [{int(tokens.min())}, {int(tokens.max())}]"
            )
        if path not in PATHS:
            raise ModelInputError(f"path must be one of {PATHS}; got {path!r}")
        batch = tokens.shape[0]
        if memory is None:
            memory = self.init_memory(batch, tokens.device)
        if memory.batch_size != batch or len(memory.layers) != self.n_layer or memory.valid.shape[1] != self.window - 1:
            raise ModelInputError(
                f"memory holds {memory.batch_size} streams x {len(memory.layers)} layers x "
                f"{memory.valid.shape[1]} positions but tokens have {batch} streams and the model "
                f"{self.n_layer} layers, window {self.window}; use model.init_memory({batch}) or memory.select(rows)"
            )
        if reset is not None and (reset.shape != (batch,) or reset.dtype != torch.bool):
            raise ModelInputError(f"reset must be bool [{batch}]; got {tuple(reset.shape)} {reset.dtype}")
        if queries is not None:
            length = tokens.shape[1] - self.lookahead
            if (
                queries.dim() != 1
                or queries.dtype != torch.long
                or (queries.numel() and (int(queries.min()) < 0 or int(queries.max()) >= length))
            ):
                raise ModelInputError(f"attention_queries must be a LongTensor [nq] of indices in [0, {length})")
        return memory

    @torch.no_grad()
    def first_block_kernels(self) -> dict[str, Tensor]:
        """Exact composite of embedding (→ block 0's LayerNorm when norm="pre") → q/k/v projection →
        convolution for block 0. Both maps before the projection act on each position alone, so a
        token's input to the projection is a fixed vector and the composite is an exact 4-row kernel.

        Returns 'q', 'k', 'v': [n_head*d_head, 4, conv_width] (channel h*d_head + o = head h,
        dimension o; rows A, C, G, T) and 'q_bias', 'k_bias', 'v_bias': [n_head*d_head].
        Convention (cross-correlation, centred, c = conv_width // 2): for a sequence of A/C/G/T
        tokens x, q[ch, j] = q_bias[ch] + sum_m q[ch, x[j - c + m], m]; a position that does not
        exist contributes nothing (an all-zero one-hot column). Equivalently
        F.conv1d(onehot [B, 4, L], q, q_bias, padding=c). This is q before the biases u and v.
        """
        attn = cast(RelativeAttention, self.blocks[0].attn)
        n_h, d = self.n_head, self.d_head
        block_input = self.embed.weight[:ACGT]  # [4, d_model]: what block 0 reads per token
        if self.norm == "pre":
            block_input = cast(Block, self.blocks[0]).norm1(block_input)
        projected = block_input @ attn.qkv.weight.T  # [4, 3*H*D]
        projected = projected.view(ACGT, 3, n_h, d)
        weight, bias = attn.conv_kernels()  # [3, H, D, D, K], [3, H, D]
        kernels = torch.einsum("shoim,ashi->shoam", weight, projected).reshape(3, n_h * d, ACGT, self.conv_width)
        bias = bias.reshape(3, n_h * d)
        out = {}
        for index, name in enumerate("qkv"):
            out[name] = kernels[index].clone()
            out[f"{name}_bias"] = bias[index].clone()
        return out


def _in_threads(fn: Callable[[_Item], _Result], items: list[_Item]) -> list[_Result]:
    """[fn(item) for item in items], one thread each, every thread with 1 intra-op thread (or a
    share of torch's thread count). The pool's threads flush denormal floats to zero (FTZ/DAZ, set per
    thread): a trained model's attention and convolution gradients are full of values below 1.2e-38,
    and without it the backward pass ran 2.6-4.6x slower on x86 CPUs (docs/training.md)."""
    pool = _POOLS.get(len(items))
    if pool is None:
        pool = _POOLS[len(items)] = ThreadPoolExecutor(len(items), thread_name_prefix="transformer-xl", initializer=_thread_setup)
    with _intra_op_threads(max(1, torch.get_num_threads() // len(items))):
        return list(pool.map(fn, items))


def _flatten(memory: Memory) -> list[Tensor]:
    return [t for layer in memory.layers for t in (layer.k, layer.v, layer.p)]


def _unflatten(tensors: list[Tensor], valid: Tensor) -> Memory:
    return Memory(tuple(LayerMemory(*tensors[i : i + 3]) for i in range(0, len(tensors), 3)), valid)


class _Concurrent(torch.autograd.Function):
    """TransformerXL._forward on row blocks of the streams, one thread each, in the forward and in
    the backward: each block's graph is built in its thread and differentiated there
    (torch.autograd.grad), the parameter gradients summed. Inputs: model, tokens, valid, rows,
    the count n of memory tensors, n memory tensors (`_flatten` order), the parameters that require
    grad. Outputs: logits, valid, the n carried memory tensors."""

    @staticmethod
    def forward(
        ctx: Any, model: TransformerXL, tokens: Tensor, valid: Tensor, rows: list[slice], n_memory: int, *tensors: Tensor
    ) -> tuple[Tensor, ...]:
        memory, params = tensors[:n_memory], tensors[n_memory:]

        def run(part: slice) -> tuple[list[Tensor], Tensor, Memory]:
            with torch.enable_grad():
                leaves = [t[part].detach().requires_grad_(t.requires_grad) for t in memory]
                logits, carried = model._forward(tokens[part], _unflatten(leaves, valid[part]), "fast", None)
            return leaves, logits, carried

        results = _in_threads(run, rows)
        ctx.results, ctx.rows, ctx.params = results, rows, params
        ctx.memory_requires = [t.requires_grad for t in memory]
        ctx.set_materialize_grads(False)
        carried = [torch.cat(parts).detach() for parts in zip(*(_flatten(r[2]) for r in results))]
        new_valid = torch.cat([r[2].valid for r in results])
        ctx.mark_non_differentiable(new_valid)
        return (torch.cat([r[1] for r in results]).detach(), new_valid, *carried)

    @staticmethod
    def backward(
        ctx: Any, grad_logits: Tensor | None, grad_valid: Tensor | None, *grad_carried: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        def run(index: int) -> tuple[list[Tensor], tuple[Tensor | None, ...]]:
            leaves, logits, carried = ctx.results[index]
            part = ctx.rows[index]
            pairs = [
                (out, grad[part])
                for out, grad in [(logits, grad_logits), *zip(_flatten(carried), grad_carried)]
                if grad is not None and out.requires_grad
            ]
            needed = [leaf for leaf in leaves if leaf.requires_grad]
            grads = (
                torch.autograd.grad([o for o, _ in pairs], needed + list(ctx.params), [g for _, g in pairs], allow_unused=True)
                if pairs
                else (None,) * (len(needed) + len(ctx.params))
            )
            memory = [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(needed, grads)]
            return memory, grads[len(needed) :]

        results = _in_threads(run, list(range(len(ctx.rows))))
        del ctx.results  # the block graphs are spent
        memory = iter([torch.cat(parts) for parts in zip(*(r[0] for r in results))])
        memory_grads = [next(memory) if needed else None for needed in ctx.memory_requires]
        param_grads = []
        for grads in zip(*(r[1] for r in results)):
            present = [g for g in grads if g is not None]
            param_grads.append(sum(present[1:], present[0]) if present else None)
        return (None, None, None, None, None, *memory_grads, *param_grads)
