"""`genometracks bench`: textbook vs fast attention path of the paper's Transformer-XL, timed side by
side in one process on the same random genome; prints one JSON object.

Inference: `--segments` consecutive segments of `--batch` streams x `--seg-len` positions, memory
carried, after one warm-up segment that fills the memory (steady state: every window is full).
Training: the same segments as steps (forward, BCE loss on random labels, backward, Adam step,
memory detached between steps). Each path is timed `--repeats` times from the same starting memory
(the textbook path `--textbook-repeats` times); positions/s are reported as median, min and max.
`--genome` instead times whole-genome prediction of E. coli (both strands, random weights) with
`predict.predict_genome` and `predict.write_tracks`, bigWig writing included.
Model FLOPs per position count the useful work (multiply + add = 2): q/k/v linear and convolution,
content, positional and value products over the W keys of each window, output projection; a
training step is counted as 3 forward passes. `matmul_2048_gflops` is a 2048 x 2048 float32
matrix product measured in the same run with the same threads.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from genometracks.io.malloc import keep_freed_memory
from genometracks.model import Memory, TransformerXL

PAPER = dict(n_layer=6, n_head=6, d_model=32, d_head=32, conv_width=7, window=512)  # the paper's model
ECOLI_LENGTH = 4_641_652  # NC_000913.3, nt
ECOLI_HELD_OUT = 928_330 + 464_165  # streams.ECOLI_K12_SPLITS: test + validation, nt
REFERENCE = {"inference": 1587.0, "training": 710.0}  # the published implementation, positions/s
TASKS = ("inference", "training", "training_no_memory")


class BenchError(ValueError):
    """Bad bench arguments or missing data; the message says the fix."""


def flops_per_position(model: TransformerXL, seg_len: int | None = None) -> float:
    """Useful FLOPs of one position's forward pass (see the module docstring). seg_len: without
    memory, a segment's position i attends min(i + 1, W) keys; the mean over the segment is used."""
    hd, dm, k, w = model.n_head * model.d_head, model.d_model, model.conv_width, model.window
    keys = w if seg_len is None else sum(min(i + 1, w) for i in range(seg_len)) / seg_len
    layer = 2 * dm * 3 * hd + 2 * 3 * hd * model.d_head * k + 3 * 2 * keys * hd + 2 * hd * dm
    return model.n_layer * layer + 2 * dm


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Median GFLOP/s of an n x n float32 matmul with the current thread settings."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _summary(samples: list[float]) -> dict:
    return {"median": round(statistics.median(samples), 1), "min": round(min(samples), 1),
            "max": round(max(samples), 1), "n": len(samples)}


def _segments(tokens: torch.Tensor, seg_len: int, lookahead: int, first: int, count: int):
    for index in range(first, first + count):
        yield tokens[:, index * seg_len:(index + 1) * seg_len + lookahead]


def time_inference(model: TransformerXL, tokens: torch.Tensor, path: str, seg_len: int, segments: int,
                   repeats: int) -> tuple[list[float], torch.Tensor]:
    """positions/s per repeat and the logits [B, L] of the first timed segment (the same segment and
    starting memory for every path)."""
    model.eval()
    with torch.inference_mode():
        _, start_memory = model(next(_segments(tokens, seg_len, model.lookahead, 0, 1)), path=path)
        rates, first = [], None
        for _ in range(repeats):
            memory = start_memory
            begin = time.perf_counter()
            for segment in _segments(tokens, seg_len, model.lookahead, 1, segments):
                logits, memory = model(segment, memory, path=path)
                first = logits if first is None else first
            rates.append(tokens.shape[0] * seg_len * segments / (time.perf_counter() - begin))
    return rates, first


def time_training(model: TransformerXL, tokens: torch.Tensor, labels: torch.Tensor, path: str, seg_len: int,
                  segments: int, repeats: int, carry_memory: bool = True) -> tuple[list[float], float]:
    """positions/s per repeat of training steps with memory carried (detached) between steps, or
    none (carry_memory=False: every step starts with nothing upstream, task.train_memory=false), and
    the first step's loss. The weights are restored after each repeat so every path and repeat
    trains from the same state."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    with torch.no_grad():
        _, start_memory = model(next(_segments(tokens, seg_len, model.lookahead, 0, 1)), path=path)
    rates, first_loss = [], math.nan
    for repeat in range(repeats):
        model.load_state_dict(state)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
        memory: Memory = start_memory
        begin = time.perf_counter()
        for index, segment in enumerate(_segments(tokens, seg_len, model.lookahead, 1, segments)):
            logits, memory = model(segment, memory if carry_memory else None, path=path)
            target = labels[:, (index + 1) * seg_len:(index + 2) * seg_len]
            loss = F.binary_cross_entropy_with_logits(logits, target)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            memory = memory.detach()
            if repeat == 0 and index == 0:
                first_loss = loss.item()
        rates.append(tokens.shape[0] * seg_len * segments / (time.perf_counter() - begin))
    model.load_state_dict(state)
    model.eval()
    return rates, first_loss


def _machine(threads: int) -> dict:
    return {"cores_available": len(os.sched_getaffinity(0)), "torch_threads": threads,
            "load_average_1m": round(os.getloadavg()[0], 2), "torch": torch.__version__}


def bench_paths(args: argparse.Namespace) -> dict:
    """Textbook vs fast, inference then training, on one random genome."""
    torch.manual_seed(args.seed)
    model = TransformerXL(**PAPER, query_block=args.query_block, workers=args.workers)
    flops = flops_per_position(model)
    n_seg = 1 + max(args.segments, args.textbook_segments)
    tokens = torch.randint(0, 4, (args.batch, n_seg * args.seg_len + model.lookahead))
    labels = (torch.rand(args.batch, n_seg * args.seg_len) < 0.01).float()
    result: dict = {"model": {**PAPER, "flops_per_position": flops}, "batch": args.batch, "seg_len": args.seg_len,
                    "machine_start": _machine(args.threads), "malloc_tuned": args.malloc_tuned,
                    "matmul_2048_gflops": round(matmul_gflops(), 1)}
    plan = {"fast": (args.segments, args.repeats), "textbook": (args.textbook_segments, args.textbook_repeats)}
    logits = {}
    for task in args.tasks:
        for path in ("fast", "textbook"):
            segments, repeats = plan[path]
            if task == "inference":
                rates, logits[path] = time_inference(model, tokens, path, args.seg_len, segments, repeats)
                extra = {}
            else:
                rates, loss = time_training(model, tokens, labels, path, args.seg_len, segments, repeats,
                                            carry_memory=task == "training")
                extra = {"first_loss": round(loss, 6)}
            work = flops if task != "training_no_memory" else flops_per_position(model, args.seg_len)
            result[f"{task}_{path}"] = {"positions_per_s": _summary(rates), "segments": segments,
                                        "gflops": round(statistics.median(rates) * work * (1 if task == "inference"
                                                                                             else 3) / 1e9, 1),
                                        "peak_rss_mib_so_far": round(peak_rss_mib()), **extra}
        fast, textbook = (result[f"{task}_{p}"]["positions_per_s"]["median"] for p in ("fast", "textbook"))
        result[f"{task}_ratio_fast_over_textbook"] = round(fast / textbook, 2)
        result[f"{task}_fast_over_reference"] = round(fast / REFERENCE[task.removesuffix("_no_memory")], 2)
    if "inference" in args.tasks:
        result["max_abs_logit_diff_fast_vs_textbook"] = float((logits["fast"] - logits["textbook"]).abs().max())
        fast = result["inference_fast"]["positions_per_s"]["median"]
        result["extrapolated_genome_both_strands_min"] = round(2 * ECOLI_LENGTH / fast / 60, 2)
    for task in args.tasks:
        if task != "inference":  # one epoch: both strands of E. coli less the held-out regions
            fast = result[f"{task}_fast"]["positions_per_s"]["median"]
            result[f"extrapolated_epoch_min_{task}"] = round(2 * (ECOLI_LENGTH - ECOLI_HELD_OUT) / fast / 60, 2)
    result["peak_rss_mib"] = round(peak_rss_mib())
    result["machine_end"] = _machine(args.threads)
    return result


def bench_genome(args: argparse.Namespace) -> dict:
    """Whole-genome prediction of E. coli, both strands, random paper-model weights, bigWigs written."""
    from genometracks.genome.sequence import Genome
    from genometracks.io.paths import shared_data
    from genometracks.inference.predict import predict_genome, write_tracks

    fasta = Path(args.fasta) if args.fasta else shared_data() / "ecoli_k12" / "genome" / "NC_000913.3.fa"
    if not fasta.exists():
        raise BenchError(f"{fasta}: genome FASTA not found; pass --fasta PATH or set GENOMETRACKS_DATA")
    torch.manual_seed(args.seed)
    model = TransformerXL(**PAPER, query_block=args.query_block, workers=args.workers).eval()
    start_machine = _machine(args.threads)
    begin = time.perf_counter()
    genome = Genome.open(fasta, circular=["NC_000913.3"] if "NC_000913.3" in fasta.name else [])
    probs, _ = predict_genome(model, genome, shift=20, seg_len=args.seg_len, n_streams=args.batch,
                              progress=False)
    predicted = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        paths = write_tracks(probs, genome.chrom_sizes(), Path(tmp), "tss")
        sizes = {strand: path.stat().st_size for strand, path in paths.items()}
        written = time.perf_counter()
    positions = 2 * genome.total_length
    return {"mode": "genome", "fasta": str(fasta), "positions": positions, "n_streams": args.batch,
            "seg_len": args.seg_len, "workers": args.workers, "malloc_tuned": args.malloc_tuned,
            "predict_s": round(predicted - begin, 1), "write_bigwig_s": round(written - predicted, 1),
            "total_s": round(written - begin, 1), "total_min": round((written - begin) / 60, 2),
            "positions_per_s": round(positions / (written - begin), 1),
            "bigwig_bytes": sizes, "peak_rss_mib": round(peak_rss_mib()),
            "machine_start": start_machine, "machine_end": _machine(args.threads)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="genometracks bench", description="Textbook vs fast attention path of the paper's Transformer-XL, "
        "inference and training, timed side by side; prints one JSON object.")
    parser.add_argument("--tasks", default=",".join(TASKS),
                        help="inference, training (memory carried between steps), training_no_memory "
                             "(task.train_memory=false), comma-separated")
    parser.add_argument("--batch", type=int, default=10, help="streams per batch (the issue: 10)")
    parser.add_argument("--seg-len", type=int, default=512)
    parser.add_argument("--segments", type=int, default=4, help="timed segments per repeat, fast path")
    parser.add_argument("--repeats", type=int, default=5, help="repeats, fast path")
    parser.add_argument("--textbook-segments", type=int, default=1)
    parser.add_argument("--textbook-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch intra-op threads")
    parser.add_argument("--workers", type=int, default=None,
                        help="TransformerXL(workers=): stream blocks run on threads of their own "
                             "(default: the thread count)")
    parser.add_argument("--query-block", type=int, default=64)
    parser.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's allocator as it is")
    parser.add_argument("--genome", action="store_true", help="time whole-genome E. coli prediction instead")
    parser.add_argument("--fasta", default=None, help="genome for --genome (default: the shared E. coli FASTA)")
    parser.add_argument("--out", default=None, help="folder for --genome's temporary bigWigs (default: /tmp)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.tasks = [t for t in args.tasks.split(",") if t]
    bad = [t for t in args.tasks if t not in TASKS]
    if bad or not args.tasks:
        raise BenchError(f"--tasks {','.join(args.tasks)!r}: use one or more of {', '.join(TASKS)}")
    for name in ("batch", "seg_len", "segments", "repeats", "textbook_segments", "textbook_repeats", "threads",
                 "query_block"):
        if getattr(args, name) < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    args.workers = args.threads if args.workers is None else args.workers
    if args.workers < 1:
        raise BenchError(f"--workers must be >= 1; got {args.workers}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of `genometracks bench` and scripts/bench.py; prints one JSON object."""
    try:
        args = parse_args(list(sys.argv[1:] if argv is None else argv))
    except BenchError as err:
        print(f"genometracks bench: {err}", file=sys.stderr)
        return 2
    args.malloc_tuned = keep_freed_memory() if not args.no_malloc_tuning else False
    torch.set_num_threads(args.threads)
    try:
        result = bench_genome(args) if args.genome else bench_paths(args)
    except BenchError as err:
        print(f"genometracks bench: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
