#!/usr/bin/env python3
"""Would a compiled `flex_attention` beat the fast path's flash-attention tiles? One layer's banded
relative attention (paper model: 10 streams, 6 heads, 512 queries, 511 remembered keys, d_head 32,
window 512), no autograd, float32 on CPU, both computing the same scores:

- flex: torch.compile(flex_attention) with the band as its block mask and the positional bias
  gathered by `score_mod` from a [B, H, L, W] table (what the fast path's band-bias product writes);
- tiles: the fast path's kernel (`_scaled_dot_product_flash_attention_for_cpu`) on 64-query tiles
  against the keys each tile reaches, the same bias as an additive mask.

Prints one JSON object: milliseconds per call (median of --repeats) and the max |difference| of
each from PyTorch's reference SDPA. Needs a C++ compiler (inductor). Used for README's Performance
section (session 10): not a run-time path of genometracks.

Usage: python scripts/flex_attention_probe.py [--repeats 7]
"""

import argparse
import json
import math
import statistics
import time

import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    streams, heads, n_q, d_head, window, tile = 10, 6, 512, 32, 512, 64
    n_mem = window - 1
    n_k = n_mem + n_q
    q, k, v = (torch.randn(streams, heads, n, d_head) for n in (n_q, n_k, n_k))
    table = torch.randn(streams, heads, n_q, window)  # bias of query n at distance r: table[..., n, r]
    scale = 1 / math.sqrt(d_head)

    def score_mod(score, b, h, qi, ki):
        return score + table[b, h, qi, (qi + n_mem - ki).clamp(0, window - 1)]

    def band(b, h, qi, ki):
        distance = qi + n_mem - ki
        return (distance >= 0) & (distance < window)

    block_mask = create_block_mask(band, None, None, n_q, n_k, device="cpu")
    flex = torch.compile(flex_attention)
    distance = torch.arange(n_q)[:, None] + n_mem - torch.arange(n_k)[None, :]
    inside = (distance >= 0) & (distance < window)
    gathered = torch.gather(table, 3, distance.clamp(0, window - 1).expand(streams, heads, n_q, n_k))
    bias = torch.where(inside, gathered, torch.tensor(-math.inf))
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)

    def run_flex():
        return flex(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)

    def run_tiles():
        out = torch.empty_like(q)
        for start in range(0, n_q, tile):
            rows, reach = slice(start, start + tile), slice(start, start + tile + n_mem)
            kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
            out[:, :, rows] = kernel(q[:, :, rows], k[:, :, reach], v[:, :, reach], attn_mask=bias[:, :, rows, reach], scale=scale)[0]
        return out

    with torch.no_grad():
        t = time.perf_counter()
        run_flex()
        compile_s = time.perf_counter() - t
        result = {
            "threads": torch.get_num_threads(),
            "compile_s": round(compile_s, 1),
            "flex_ms": round(timed(run_flex, args.repeats), 2),
            "tiles_ms": round(timed(run_tiles, args.repeats), 2),
            "flex_max_abs_diff": float((run_flex() - reference).abs().max()),
            "tiles_max_abs_diff": float((run_tiles() - reference).abs().max()),
        }
    result["tiles_over_flex"] = round(result["tiles_ms"] / result["flex_ms"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
