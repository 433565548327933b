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

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genometracks.model.attention import PATHS, LayerMemory, RelativeAttention

ACGT = 4  # tokens 0..3 are A, C, G, T; 4 is N


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
        return self.valid.shape[0]

    def _map(self, fn) -> "Memory":
        return Memory(tuple(layer.map(fn) for layer in self.layers), fn(self.valid))

    def detach(self) -> "Memory":
        """Cut the autograd graph (truncated backpropagation through time)."""
        return self._map(Tensor.detach)

    def select(self, rows: Tensor) -> "Memory":
        """Keep streams `rows` (long indices or bool [B]) in that order."""
        return self._map(lambda t: t[rows])

    def to(self, device: torch.device | str) -> "Memory":
        return self._map(lambda t: t.to(device))

    def reset(self, flags: Tensor) -> "Memory":
        """Clear the streams where flags (bool [B]) is True: all positions marked absent, zeroed."""
        flags = flags.to(device=self.valid.device, dtype=torch.bool)

        def clear(t: Tensor) -> Tensor:
            return t.masked_fill(flags.view(-1, *([1] * (t.dim() - 1))), 0)

        return self._map(clear)


class Block(nn.Module):
    """Relative attention → residual + LayerNorm (→ feed-forward → residual + LayerNorm)."""

    def __init__(self, d_model: int, n_head: int, d_head: int, conv_width: int, window: int,
                 d_inner: int, dropout: float, per_head_conv: bool, query_block: int, stream_block: int) -> None:
        super().__init__()
        self.attn = RelativeAttention(d_model, n_head, d_head, conv_width, window, dropout, per_head_conv,
                                      query_block, stream_block)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = None
        if d_inner > 0:
            self.ff = nn.Sequential(nn.Linear(d_model, d_inner), nn.ReLU(), nn.Dropout(dropout),
                                    nn.Linear(d_inner, d_model), nn.Dropout(dropout))
            self.norm2 = nn.LayerNorm(d_model)

    def forward(self, h: Tensor, memory: LayerMemory, valid: Tensor, advance: int, path: str,
                queries: Tensor | None) -> tuple[Tensor, LayerMemory, Tensor | None]:
        """h [B, S, d_model] for [t, t+S) → [B, S-c, d_model] for [t, t+S-c), carried memory, attention."""
        out, carried, attention = self.attn(h, memory, valid, advance, path, queries)
        h = self.norm1(h[:, :out.shape[1]] + out)
        if self.ff is not None:
            h = self.norm2(h + self.ff(h))
        return h, carried, attention


class TransformerXL(nn.Module):
    """Segment-recurrent Transformer-XL with q/k/v convolutions (see the module docstring).

    d_inner = 0: no feed-forward (the paper). per_head_conv: each head its own q/k/v convolution
    instead of one shared by the heads. query_block, stream_block: queries and streams per attention
    call on the fast path (speed and memory only; results do not depend on them).
    """

    def __init__(self, n_layer: int = 6, n_head: int = 6, d_model: int = 32, d_head: int = 32,
                 conv_width: int = 7, window: int = 512, d_inner: int = 0, dropout: float = 0.0,
                 per_head_conv: bool = False, vocab_size: int = 5, query_block: int = 64,
                 stream_block: int = 1) -> None:
        super().__init__()
        if n_layer < 1 or vocab_size < ACGT:
            raise ValueError(f"need n_layer >= 1 and vocab_size >= 4; got {n_layer}, {vocab_size}")
        self.n_layer, self.n_head, self.d_head, self.d_model = n_layer, n_head, d_head, d_model
        self.conv_width, self.window, self.vocab_size = conv_width, window, vocab_size
        self.embed = nn.Embedding(vocab_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(d_model, n_head, d_head, conv_width, window, d_inner, dropout, per_head_conv, query_block,
                  stream_block)
            for _ in range(n_layer))
        self.head = nn.Linear(d_model, 1)

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

    def forward(self, tokens: Tensor, memory: Memory | None = None, reset: Tensor | None = None,
                path: str = "fast", attention_queries: Tensor | None = None):
        """tokens: int [B, L + lookahead] for positions [t, t+L+H); memory from the previous
        segment (None = nothing upstream); reset: bool [B], clear those streams first.

        Returns (logits [B, L], memory for the segment starting at t+L), plus, when
        attention_queries (long [nq], indices in [0, L)) is given with path="textbook",
        attention probabilities [n_layer, B, n_head, nq, window] by offset 0..W-1 upstream
        (0 = the query itself; 0 where the key does not exist).
        """
        memory = self._check(tokens, memory, reset, path, attention_queries)
        if reset is not None:
            memory = memory.reset(reset)
        length = tokens.shape[1] - self.lookahead
        h = self.drop(self.embed(tokens))
        carried, attention = [], []
        for block, layer_memory in zip(self.blocks, memory.layers):
            h, layer_carried, layer_attention = block(h, layer_memory, memory.valid, length, path,
                                                      attention_queries)
            carried.append(layer_carried)
            attention.append(layer_attention)
        valid = torch.cat([memory.valid, memory.valid.new_ones(tokens.shape[0], length)], dim=1)
        new_memory = Memory(tuple(carried), valid[:, length:length + self.window - 1])
        logits = self.head(h).squeeze(-1)
        if attention_queries is not None:
            return logits, new_memory, torch.stack(attention)
        return logits, new_memory

    def _check(self, tokens: Tensor, memory: Memory | None, reset: Tensor | None, path: str,
               queries: Tensor | None) -> Memory:
        """Validate the inputs; return the memory to use."""
        if tokens.dim() != 2 or tokens.dtype.is_floating_point or tokens.shape[1] <= self.lookahead:
            raise ModelInputError(
                f"tokens must be an integer tensor [B, L + {self.lookahead}] with L >= 1 (the segment plus "
                f"lookahead = {self.lookahead} following tokens); got {tuple(tokens.shape)} {tokens.dtype}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise ModelInputError(f"tokens must lie in [0, {self.vocab_size}) (A,C,G,T,N = 0..4); "
                                  f"got values in [{int(tokens.min())}, {int(tokens.max())}]")
        if path not in PATHS:
            raise ModelInputError(f"path must be one of {PATHS}; got {path!r}")
        batch = tokens.shape[0]
        if memory is None:
            memory = self.init_memory(batch, tokens.device)
        if memory.batch_size != batch or len(memory.layers) != self.n_layer \
                or memory.valid.shape[1] != self.window - 1:
            raise ModelInputError(
                f"memory holds {memory.batch_size} streams x {len(memory.layers)} layers x "
                f"{memory.valid.shape[1]} positions but tokens have {batch} streams and the model "
                f"{self.n_layer} layers, window {self.window}; use model.init_memory({batch}) or memory.select(rows)")
        if reset is not None and (reset.shape != (batch,) or reset.dtype != torch.bool):
            raise ModelInputError(f"reset must be bool [{batch}]; got {tuple(reset.shape)} {reset.dtype}")
        if queries is not None:
            length = tokens.shape[1] - self.lookahead
            if path != "textbook":
                raise ModelInputError('attention_queries needs path="textbook"')
            if queries.dim() != 1 or queries.dtype != torch.long or (queries.numel() and (
                    int(queries.min()) < 0 or int(queries.max()) >= length)):
                raise ModelInputError(f"attention_queries must be a LongTensor [nq] of indices in [0, {length})")
        return memory

    @torch.no_grad()
    def first_block_kernels(self) -> dict[str, Tensor]:
        """Exact composite of embedding → q/k/v projection → convolution for block 0.

        Returns 'q', 'k', 'v': [n_head*d_head, 4, conv_width] (channel h*d_head + o = head h,
        dimension o; rows A, C, G, T) and 'q_bias', 'k_bias', 'v_bias': [n_head*d_head].
        Convention (cross-correlation, centred, c = conv_width // 2): for a sequence of A/C/G/T
        tokens x, q[ch, j] = q_bias[ch] + sum_m q[ch, x[j - c + m], m]; a position that does not
        exist contributes nothing (an all-zero one-hot column). Equivalently
        F.conv1d(onehot [B, 4, L], q, q_bias, padding=c). This is q before the biases u and v.
        """
        attn = self.blocks[0].attn
        n_h, d = self.n_head, self.d_head
        projected = self.embed.weight[:ACGT] @ attn.qkv.weight.T  # [4, 3*H*D]
        projected = projected.view(ACGT, 3, n_h, d)
        weight, bias = attn.conv_kernels()  # [3, H, D, D, K], [3, H, D]
        kernels = torch.einsum("shoim,ashi->shoam", weight, projected).reshape(3, n_h * d, ACGT, self.conv_width)
        bias = bias.reshape(3, n_h * d)
        out = {}
        for index, name in enumerate("qkv"):
            out[name] = kernels[index].clone()
            out[f"{name}_bias"] = bias[index].clone()
        return out
