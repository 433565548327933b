"""`genometracks bench`: textbook vs fast attention path of the paper's Transformer-XL, timed side by
side in one process on the same random genome; prints one JSON object.

Inference: `--segments` consecutive segments of `--batch` streams x `--seg-len` positions, memory
carried, after one warm-up segment that fills the memory (steady state: every window is full).
Training: the same segments as steps (forward, BCE loss on random labels, backward, Adam step,
memory detached between steps). Each path is timed `--repeats` times from the same starting memory
(the textbook path `--textbook-repeats` times); positions/s are reported as median, min and max.
`--fast-only` leaves the textbook path out (no ratios): for comparing two revisions of the fast path in
alternating runs, since this host's speed drifts by 10-20 % within an hour.
`--genome` instead times whole-genome prediction of E. coli (both strands, random weights) with
`predict.predict_genome` and `predict.write_tracks`, bigWig writing included.
`--only scaling` (issue #17) predicts one sequence (E. coli's first `--total` nt, random where the
shared data is absent) as `--contigs` assemblies of 1, ..., 10,000 contigs of lognormal lengths, with
the shipped model: each case and repeat in a fresh process, timed (FASTA read, predict, bigWigs) with
its peak RSS, so time and memory can be compared per base and per contig.
`--only throughput` runs `--genomes` draft assemblies of E. coli (`--draft-contigs` lognormal contigs
each) through `genometracks predict model=<shipped>` (tracks and peak calls) then `genometracks export`
(hub with .2bit and chromAlias, IGV session, JBrowse view), one process per command, and reports
genomes per hour and each command's peak RSS.
Model FLOPs per position count the useful work (multiply + add = 2): q/k/v linear and convolution,
content, positional and value products over the W keys of each window, output projection; a
training step is counted as 3 forward passes. `matmul_2048_gflops` is a 2048 x 2048 float32
matrix product measured in the same run with the same threads (on `--device`).
`--device cuda` runs paths and genome on a GPU (float32 with TF32 off, so the fast path's logits can
still be compared with the textbook path's to 1e-5; timings synchronise the device; peak GPU memory is
reported). There the fast path attends with PyTorch's kernels on tiles of `--query-block` queries of
`--stream-block` streams: larger tiles than the CPU's suit a GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from genometracks.genome.sequence import Genome, decode
from genometracks.inference.predict import WHOLE_ROWS, predict_genome, write_tracks
from genometracks.inference.shipped import load_shipped
from genometracks.io.malloc import keep_freed_memory
from genometracks.io.paths import conf_dir, shared_data
from genometracks.io.resources import peak_rss_mib
from genometracks.model import Memory, TransformerXL, kernel
from genometracks.model import transformer as transformer_module
from genometracks.training.checkpoint import CheckpointError, load_model

PAPER = dict(n_layer=6, n_head=6, d_model=32, d_head=32, conv_width=7, window=512)  # the paper's model
ECOLI_LENGTH = 4_641_652  # NC_000913.3, nt
ECOLI_HELD_OUT = 928_330 + 464_165  # streams.ECOLI_K12_SPLITS: test + validation, nt
REFERENCE = {"inference": 1587.0, "training": 710.0}  # the published implementation, positions/s
TASKS = ("inference", "training", "training_no_memory")
MODES = ("paths", "genome", "scaling", "throughput")


class BenchError(ValueError):
    """Bad bench arguments or missing data; the message says the fix."""


def flops_per_position(model: TransformerXL, seg_len: int | None = None) -> float:
    """Useful FLOPs of one position's forward pass (see the module docstring). seg_len: without
    memory, a segment's position i attends min(i + 1, W) keys; the mean over the segment is used."""
    hd, dm, k, w = model.n_head * model.d_head, model.d_model, model.conv_width, model.window
    keys = w if seg_len is None else sum(min(i + 1, w) for i in range(seg_len)) / seg_len
    layer = 2 * dm * 3 * hd + 2 * 3 * hd * model.d_head * k + 3 * 2 * keys * hd + 2 * hd * dm
    return model.n_layer * layer + 2 * dm


def bench_device(name: str) -> torch.device:
    """The torch.device that `--device NAME` names ("cpu", "cuda", "cuda:1"); BenchError where this
    torch cannot run on it."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise BenchError(f"--device {name!r}: not a device name ({err}); use cpu or cuda[:N]") from err
    if device.type not in ("cpu", "cuda"):
        raise BenchError(f"--device {name!r}: the bench runs on cpu or cuda[:N]")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: this torch ({torch.__version__}) sees no CUDA device; run on a GPU machine, or use cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise BenchError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (a GPU runs asynchronously; a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(n: int = 2048, repeats: int = 5, device: torch.device | None = None) -> float:
    """Median GFLOP/s of an n x n float32 matmul with the current thread settings, on `device` (CPU default)."""
    device = torch.device("cpu") if device is None else device
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def _summary(samples: list[float]) -> dict:
    return {"median": round(statistics.median(samples), 1), "min": round(min(samples), 1), "max": round(max(samples), 1), "n": len(samples)}


def _segments(tokens: torch.Tensor, seg_len: int, lookahead: int, first: int, count: int):
    for index in range(first, first + count):
        yield tokens[:, index * seg_len : (index + 1) * seg_len + lookahead]


def time_inference(
    model: TransformerXL, tokens: torch.Tensor, path: str, seg_len: int, segments: int, repeats: int
) -> tuple[list[float], torch.Tensor]:
    """positions/s per repeat and the logits [B, L] of the first timed segment (the same segment and
    starting memory for every path). Runs on the device of `tokens`, the model already there."""
    model.eval()
    with torch.inference_mode():
        _, start_memory = model(next(_segments(tokens, seg_len, model.lookahead, 0, 1)), path=path)
        rates, first = [], None
        for _ in range(repeats):
            memory = start_memory
            synchronize(tokens.device)
            begin = time.perf_counter()
            for segment in _segments(tokens, seg_len, model.lookahead, 1, segments):
                logits, memory = model(segment, memory, path=path)
                first = logits if first is None else first
            synchronize(tokens.device)
            rates.append(tokens.shape[0] * seg_len * segments / (time.perf_counter() - begin))
    return rates, first


def time_training(
    model: TransformerXL,
    tokens: torch.Tensor,
    labels: torch.Tensor,
    path: str,
    seg_len: int,
    segments: int,
    repeats: int,
    carry_memory: bool = True,
) -> tuple[list[float], float]:
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
        synchronize(tokens.device)
        begin = time.perf_counter()
        for index, segment in enumerate(_segments(tokens, seg_len, model.lookahead, 1, segments)):
            logits, memory = model(segment, memory if carry_memory else None, path=path)
            target = labels[:, (index + 1) * seg_len : (index + 2) * seg_len]
            loss = F.binary_cross_entropy_with_logits(logits, target)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            memory = memory.detach()
            if repeat == 0 and index == 0:
                first_loss = loss.item()
        synchronize(tokens.device)
        rates.append(tokens.shape[0] * seg_len * segments / (time.perf_counter() - begin))
    model.load_state_dict(state)
    model.eval()
    return rates, first_loss


def _machine(threads: int, device: torch.device | None = None) -> dict:
    machine = {
        "cores_available": len(os.sched_getaffinity(0)),
        "torch_threads": threads,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
    }
    if device is not None and device.type == "cuda":
        return {**machine, "device": f"{device} ({torch.cuda.get_device_name(device)})", "attention_kernel": "torch (cuda)"}
    return {**machine, "attention_kernel": attention_kernel()}


def peak_gpu_mib(device: torch.device) -> dict:
    """{"peak_gpu_mib": ...}, the most GPU memory torch's allocator held so far, on a GPU; {} on the CPU."""
    if device.type != "cuda":
        return {}
    return {"peak_gpu_mib": round(torch.cuda.max_memory_allocated(device) / 2**20)}


def attention_kernel() -> str:
    """Which attention kernel the fast path runs: "compiled" (genometracks' own, model/kernel.py) or
    "torch" (PyTorch's flash-attention tiles: GENOMETRACKS_KERNEL=torch, or no compiler)."""
    return "compiled" if kernel.compiled() is not None else "torch"


def bench_paths(args: argparse.Namespace) -> dict:
    """Textbook vs fast, inference then training, on one random genome."""
    torch.manual_seed(args.seed)
    config, weights = dict(PAPER), None
    if args.weights:  # a trained model: its gradients hold the denormal floats random weights lack
        trained, _, hparams = load_model(args.weights)
        config = {k: v for k, v in hparams["model_config"].items() if k != "seg_len"}
        weights = trained.state_dict()
    model = TransformerXL(**config, query_block=args.query_block, stream_block=args.stream_block, workers=args.workers)
    if weights is not None:
        model.load_state_dict(weights)
    device = args.device
    model.to(device)
    flops = flops_per_position(model)
    n_seg = 1 + max(args.segments, args.textbook_segments)
    tokens = torch.randint(0, 4, (args.batch, n_seg * args.seg_len + model.lookahead)).to(device)
    labels = (torch.rand(args.batch, n_seg * args.seg_len) < 0.01).float().to(device)
    result: dict = {
        "model": {**config, "flops_per_position": flops, "weights": args.weights or "random (seed)"},
        "device": str(device),
        "flush_denormals": not args.keep_denormals,
        "batch": args.batch,
        "seg_len": args.seg_len,
        "query_block": args.query_block,
        "stream_block": args.stream_block,
        "machine_start": _machine(args.threads, device),
        "malloc_tuned": args.malloc_tuned,
        "matmul_2048_gflops": round(matmul_gflops(device=device), 1),
    }
    plan = {"fast": (args.segments, args.repeats), "textbook": (args.textbook_segments, args.textbook_repeats)}
    logits = {}
    paths = ("fast",) if args.fast_only else ("fast", "textbook")
    for task in args.tasks:
        for path in paths:
            segments, repeats = plan[path]
            if task == "inference":
                rates, logits[path] = time_inference(model, tokens, path, args.seg_len, segments, repeats)
                extra = {}
            else:
                rates, loss = time_training(model, tokens, labels, path, args.seg_len, segments, repeats, carry_memory=task == "training")
                extra = {"first_loss": round(loss, 6)}
            work = flops if task != "training_no_memory" else flops_per_position(model, args.seg_len)
            result[f"{task}_{path}"] = {
                "positions_per_s": _summary(rates),
                "segments": segments,
                "gflops": round(statistics.median(rates) * work * (1 if task == "inference" else 3) / 1e9, 1),
                "peak_rss_mib_so_far": peak_rss_mib(children=False),
                **peak_gpu_mib(device),
                **extra,
            }
        fast = result[f"{task}_fast"]["positions_per_s"]["median"]
        if not args.fast_only:
            result[f"{task}_ratio_fast_over_textbook"] = round(fast / result[f"{task}_textbook"]["positions_per_s"]["median"], 2)
        result[f"{task}_fast_over_reference"] = round(fast / REFERENCE[task.removesuffix("_no_memory")], 2)
    if "inference" in args.tasks:
        if not args.fast_only:
            result["max_abs_logit_diff_fast_vs_textbook"] = float((logits["fast"] - logits["textbook"]).abs().max())
        fast = result["inference_fast"]["positions_per_s"]["median"]
        result["extrapolated_genome_both_strands_min"] = round(2 * ECOLI_LENGTH / fast / 60, 2)
    for task in args.tasks:
        if task != "inference":  # one epoch: both strands of E. coli less the held-out regions
            fast = result[f"{task}_fast"]["positions_per_s"]["median"]
            result[f"extrapolated_epoch_min_{task}"] = round(2 * (ECOLI_LENGTH - ECOLI_HELD_OUT) / fast / 60, 2)
    result["peak_rss_mib"] = peak_rss_mib(children=False)
    result.update(peak_gpu_mib(device))
    result["machine_end"] = _machine(args.threads, device)
    return result


def portable_path(path: Path) -> str:
    """How a result JSON names an input: relative to the shared data folder as
    "$GENOMETRACKS_DATA/<rest>" when it lies there (no machine's absolute path in committed JSON), else
    as given."""
    try:
        return "$GENOMETRACKS_DATA/" + path.resolve().relative_to(shared_data().resolve()).as_posix()
    except ValueError:
        return str(path)


def bench_genome(args: argparse.Namespace) -> dict:
    """Whole-genome prediction of E. coli, both strands, random paper-model weights, bigWigs written."""
    fasta = Path(args.fasta) if args.fasta else shared_data() / "ecoli_k12" / "genome" / "NC_000913.3.fa"
    if not fasta.exists():
        raise BenchError(f"{fasta}: genome FASTA not found; pass --fasta PATH or set GENOMETRACKS_DATA")
    torch.manual_seed(args.seed)
    device = args.device
    model = TransformerXL(**PAPER, query_block=args.query_block, stream_block=args.stream_block, workers=args.workers).eval().to(device)
    start_machine = _machine(args.threads, device)
    begin = time.perf_counter()
    genome = Genome.open(fasta, circular=["NC_000913.3"] if "NC_000913.3" in fasta.name else [])
    probs, _ = predict_genome(model, genome, shift=20, seg_len=args.seg_len, n_streams=args.batch, progress=False)
    predicted = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        paths = write_tracks(probs, genome.chrom_sizes(), Path(tmp), "tss")
        sizes = {strand: path.stat().st_size for strand, path in paths.items()}
        written = time.perf_counter()
    positions = 2 * genome.total_length
    return {
        "mode": "genome",
        "fasta": portable_path(fasta),
        "positions": positions,
        "n_streams": args.batch,
        "seg_len": args.seg_len,
        "workers": args.workers,
        "device": str(device),
        "malloc_tuned": args.malloc_tuned,
        "predict_s": round(predicted - begin, 1),
        "write_bigwig_s": round(written - predicted, 1),
        "total_s": round(written - begin, 1),
        "total_min": round((written - begin) / 60, 2),
        "positions_per_s": round(positions / (written - begin), 1),
        "bigwig_bytes": sizes,
        "peak_rss_mib": peak_rss_mib(children=False),
        **peak_gpu_mib(device),
        "machine_start": start_machine,
        "machine_end": _machine(args.threads, device),
    }


ECOLI_FASTA = ("ecoli_k12", "genome", "NC_000913.3.fa")  # under shared_data()


def base_sequence(total: int, seed: int) -> tuple[np.ndarray, str]:
    """Tokens [total] and where they came from: E. coli K-12 from its first base (repeated if `total`
    is longer) where the shared data is present, else uniform random A/C/G/T."""
    fasta = shared_data().joinpath(*ECOLI_FASTA)
    if fasta.is_file():
        tokens = Genome.open(fasta).tokens("NC_000913.3")
        return np.resize(tokens, total), f"{'/'.join(ECOLI_FASTA)} in the shared data folder (first {total:,} nt)"
    return np.random.default_rng(seed).integers(0, 4, total).astype(np.uint8), f"random A/C/G/T, seed {seed}"


def draft_lengths(total: int, n: int, seed: int, sigma: float = 1.0) -> np.ndarray:
    """`n` contig lengths >= 1 summing to `total`: lognormal (log-sd `sigma`) around total / n, the
    shape of a short-read draft's contig sizes (many short contigs, a few long)."""
    if not 1 <= n <= total:
        raise BenchError(f"cannot cut {total:,} nt into {n:,} contigs; use 1 <= contigs <= total")
    raw = np.random.default_rng(seed).lognormal(0.0, sigma, n)
    lengths = np.maximum(1, np.floor(raw / raw.sum() * total).astype(np.int64))
    while lengths.sum() != total:  # hand the rounding remainder to (or take it from) the longest contigs
        diff = int(total - lengths.sum())
        order = np.argsort(-lengths)[: abs(diff)]
        lengths[order] += 1 if diff > 0 else -1
        lengths = np.maximum(lengths, 1)
    return lengths


def write_draft(path: Path, tokens: np.ndarray, lengths: np.ndarray, prefix: str = "contig") -> Path:
    """A FASTA of `tokens` cut into consecutive contigs of `lengths` (60 nt lines), named prefix_1, ..."""
    cuts = np.concatenate([[0], np.cumsum(lengths)])
    letters = decode(tokens)
    with open(path, "w") as handle:
        for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
            seq = letters[a:b]
            handle.write(f">{prefix}_{i + 1}\n" + "".join(seq[j : j + 60] + "\n" for j in range(0, len(seq), 60)))
    return path


def _child(argv: list[str], log: Path | None = None, env: dict[str, str] | None = None) -> dict:
    """Run `python argv...` in a fresh process: wall seconds, exit status, its own peak RSS (wait4),
    and its stdout."""
    env = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]),
    }
    begin = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            [sys.executable, *argv], stdout=out, stderr=subprocess.PIPE if log is None else open(log, "a"), text=True, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - begin
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read()
    if proc.returncode != 0:
        raise BenchError(f"`python {' '.join(argv)}` failed with exit status {proc.returncode}" + (f"; see {log}" if log else ""))
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "stdout": stdout}


def scaling_case(fasta: Path, model: str, threads: int, whole_max: int | None) -> dict:
    """One scaling case in this process: read the FASTA, predict both strands, write the bigWigs."""
    torch.set_num_threads(threads)
    n_streams = int(OmegaConf.load(conf_dir() / "predict" / "default.yaml").n_streams)
    source = load_shipped(model)
    begin = time.perf_counter()
    genome = Genome.open(fasta)
    opened = time.perf_counter()
    probs, _ = predict_genome(
        source.model,
        genome,
        int(source.card["task"]["shift"]) if source.card else 20,
        source.seg_len,
        n_streams,
        progress=False,
        logit_offset=source.logit_offset,
        whole_max=whole_max,
    )
    predicted = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=fasta.parent) as tmp:
        write_tracks(probs, genome.chrom_sizes(), Path(tmp), "tss")
        written = time.perf_counter()
    return {
        "read_fasta_s": opened - begin,
        "predict_s": predicted - opened,
        "write_bigwig_s": written - predicted,
        "total_s": written - begin,
        "n_streams": n_streams,
        "seg_len": source.seg_len,
    }


def _stats(values: list[float], digits: int = 1) -> dict:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


def bench_scaling(args: argparse.Namespace) -> dict:
    """The same bases as 1 ... 10,000 contigs: time and peak RSS per case (module docstring)."""
    window = int(load_shipped(args.model).card["architecture"]["window"])
    tokens, origin = base_sequence(args.total, args.seed)
    result: dict = {
        "mode": "scaling",
        "model": args.model,
        "total_nt": args.total,
        "positions": 2 * args.total,
        "sequence": origin,
        "threads": args.threads,
        "repeats": args.case_repeats,
        "machine_start": _machine(args.threads),
        "cases": [],
    }
    layouts = [None] + ([0] if args.streams_layout else [])
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        for n in args.contigs:
            lengths = draft_lengths(args.total, n, args.seed)
            fasta = write_draft(Path(tmp) / f"draft_{n}.fa", tokens, lengths)
            for whole_max in layouts:
                runs = []
                for _ in range(args.case_repeats):
                    argv = ["-m", "genometracks.bench", "--case", str(fasta), "--model", args.model, "--threads", str(args.threads)] + (
                        [] if whole_max is None else ["--whole-max", "0"]
                    )
                    child = _child(argv)
                    runs.append({**json.loads(child["stdout"]), "process_wall_s": child["wall_s"], "peak_rss_mib": child["peak_rss_mib"]})
                total = statistics.median(r["total_s"] for r in runs)
                case = {
                    "contigs": n,
                    "layout": "streams only (whole_max=0)"
                    if whole_max == 0
                    else f"default (linear contigs <= {WHOLE_ROWS} segments read whole)",
                    "length_min": int(lengths.min()),
                    "length_median": float(np.median(lengths)),
                    "length_max": int(lengths.max()),
                    "contigs_shorter_than_window": int((lengths < window).sum()),
                    "contigs_shorter_than_conv": int((lengths < 7).sum()),
                    **{
                        key: _stats([r[key] for r in runs])
                        for key in ("read_fasta_s", "predict_s", "write_bigwig_s", "total_s", "process_wall_s", "peak_rss_mib")
                    },
                    "positions_per_s": round(2 * args.total / total),
                    "n_streams": runs[0]["n_streams"],
                    "seg_len": runs[0]["seg_len"],
                }
                result["cases"].append(case)
                print(json.dumps({k: case[k] for k in ("contigs", "layout", "total_s", "peak_rss_mib")}), file=sys.stderr, flush=True)
    first = result["cases"][0]
    for case in result["cases"][1:]:
        case["time_vs_first"] = round(case["total_s"]["median"] / first["total_s"]["median"], 3)
        case["peak_rss_vs_first"] = round(case["peak_rss_mib"]["median"] / first["peak_rss_mib"]["median"], 3)
    result["machine_end"] = _machine(args.threads)
    return result


def bench_throughput(args: argparse.Namespace) -> dict:
    """Draft genomes through `predict` (tracks + peaks) and `export`, one process per command."""
    ecoli = shared_data().joinpath(*ECOLI_FASTA)
    tokens, origin = base_sequence(args.draft_total or (Genome.open(ecoli).total_length if ecoli.is_file() else 5_000_000), args.seed)
    result: dict = {
        "mode": "throughput",
        "model": args.model,
        "genome_nt": int(tokens.size),
        "contigs_per_genome": args.draft_contigs,
        "sequence": origin,
        "stages": "predict (both strands, bigWigs, peak calls at the card's threshold) + export "
        "(assembly hub with .2bit and chromAlias, IGV session, JBrowse 2 view)",
        "threads": args.threads,
        "machine_start": _machine(args.threads),
        "genomes": [],
    }
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        for g in range(args.genomes):  # each genome: the sequence rotated and cut differently
            rotated = np.roll(tokens, -int(g * tokens.size // max(args.genomes, 1)))
            lengths = draft_lengths(int(tokens.size), args.draft_contigs, args.seed + g)
            fasta = write_draft(Path(tmp) / f"genome{g + 1}.fa", rotated, lengths, prefix=f"g{g + 1}_contig")
            run = Path(tmp) / f"run{g + 1}"
            common = ["-m", "genometracks.cli"]
            overrides = [f"model={args.model}", "data=custom", f"data.fasta={fasta}", f"run_dir={run}"]
            row: dict = {"genome": g + 1, "length_min": int(lengths.min()), "length_max": int(lengths.max())}
            for command in ("predict", "export"):
                child = _child([*common, command, *overrides], log=Path(tmp) / "log.txt", env={"OMP_NUM_THREADS": str(args.threads)})
                row[f"{command}_s"] = round(child["wall_s"], 1)
                row[f"{command}_peak_rss_mib"] = round(child["peak_rss_mib"])
            row["total_s"] = round(row["predict_s"] + row["export_s"], 1)
            result["genomes"].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    totals = [r["total_s"] for r in result["genomes"]]
    result["seconds_per_genome"] = _stats(totals)
    result["genomes_per_hour"] = round(3600 / statistics.median(totals), 1)
    result["peak_rss_mib"] = max(max(r["predict_peak_rss_mib"], r["export_peak_rss_mib"]) for r in result["genomes"])
    result["machine_end"] = _machine(args.threads)
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="genometracks bench",
        description="Textbook vs fast attention path of the paper's Transformer-XL, "
        "inference and training, timed side by side; prints one JSON object.",
    )
    parser.add_argument(
        "--tasks",
        default=",".join(TASKS),
        help="inference, training (memory carried between steps), training_no_memory (task.train_memory=false), comma-separated",
    )
    parser.add_argument("--batch", type=int, default=10, help="streams per batch (the issue: 10)")
    parser.add_argument("--seg-len", type=int, default=512)
    parser.add_argument("--segments", type=int, default=4, help="timed segments per repeat, fast path")
    parser.add_argument("--repeats", type=int, default=5, help="repeats, fast path")
    parser.add_argument("--textbook-segments", type=int, default=1)
    parser.add_argument("--textbook-repeats", type=int, default=3)
    parser.add_argument("--fast-only", action="store_true", help="time the fast path only (no textbook path, no ratios)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch intra-op threads")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="TransformerXL(workers=): stream blocks run on threads of their own (default: the thread count)",
    )
    parser.add_argument("--query-block", type=int, default=64, help="fast path: queries per attention tile")
    parser.add_argument("--stream-block", type=int, default=1, help="fast path on PyTorch's kernels (a GPU): streams per attention tile")
    parser.add_argument("--device", default="cpu", help="paths and genome: cpu (default) or cuda[:N], a GPU")
    parser.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's allocator as it is")
    parser.add_argument("--genome", action="store_true", help="time whole-genome E. coli prediction instead")
    parser.add_argument("--fasta", default=None, help="genome for --genome (default: the shared E. coli FASTA)")
    parser.add_argument("--out", default=None, help="folder for --genome's temporary bigWigs (default: /tmp)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--weights", default=None, help="paths: time this training checkpoint's model and weights (DIR/checkpoints/best.ckpt) instead"
    )
    parser.add_argument(
        "--keep-denormals", action="store_true", help="compute with denormal floats (no FTZ/DAZ), to measure what flushing them buys"
    )
    parser.add_argument(
        "--only",
        choices=MODES,
        default=None,
        help="paths (default): textbook vs fast; genome: = --genome; scaling: one sequence as 1 ... "
        "10,000 contigs; throughput: draft genomes per hour through predict + export",
    )
    parser.add_argument("--model", default="ecoli_k12", help="shipped model for scaling and throughput")
    parser.add_argument("--total", type=int, default=2_000_000, help="scaling: nt per assembly")
    parser.add_argument("--contigs", default="1,10000", help="scaling: contig counts, comma-separated")
    parser.add_argument("--case-repeats", type=int, default=3, help="scaling: fresh processes per case")
    parser.add_argument(
        "--streams-layout", action="store_true", help="scaling: also time each case with every contig in the segment streams (whole_max=0)"
    )
    parser.add_argument("--genomes", type=int, default=3, help="throughput: draft genomes to run")
    parser.add_argument("--draft-contigs", type=int, default=200, help="throughput: contigs per draft genome")
    parser.add_argument(
        "--draft-total", type=int, default=None, help="throughput: nt per draft genome (default: the E. coli genome's length)"
    )
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # a scaling child process
    parser.add_argument("--whole-max", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.only = args.only or ("genome" if args.genome else "paths")
    try:
        args.contigs = [int(x) for x in str(args.contigs).split(",") if x]
    except ValueError as err:
        raise BenchError(f"--contigs {args.contigs!r}: give integers separated by commas") from err
    too_many = [n for n in args.contigs if not 1 <= n <= args.total]
    if too_many or not args.contigs:
        raise BenchError(
            f"--contigs: cannot cut {args.total:,} nt into {too_many[0] if too_many else 0:,} contigs; use 1 <= contigs <= --total"
        )
    args.tasks = [t for t in args.tasks.split(",") if t]
    bad = [t for t in args.tasks if t not in TASKS]
    if bad or not args.tasks:
        raise BenchError(f"--tasks {','.join(args.tasks)!r}: use one or more of {', '.join(TASKS)}")
    for name in (
        "batch",
        "seg_len",
        "segments",
        "repeats",
        "textbook_segments",
        "textbook_repeats",
        "threads",
        "query_block",
        "stream_block",
        "total",
        "case_repeats",
        "genomes",
        "draft_contigs",
    ):
        if getattr(args, name) < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    args.workers = args.threads if args.workers is None else args.workers
    if args.workers < 1:
        raise BenchError(f"--workers must be >= 1; got {args.workers}")
    args.device = bench_device(args.device)
    if args.device.type == "cuda" and args.only not in ("paths", "genome"):
        raise BenchError(f"--device {args.device}: only the paths and genome benches run on a GPU; leave --device out for {args.only}")
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
    if args.device.type == "cuda":  # IEEE float32 as on the CPU: TF32 products would move logits by ~1e-3
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.set_flush_denormal(not args.keep_denormals)
    transformer_module.FLUSH_DENORMALS = not args.keep_denormals
    try:
        if args.case:  # one scaling case, in a process of its own
            print(json.dumps(scaling_case(Path(args.case), args.model, args.threads, args.whole_max)))
            return 0
        result = {"paths": bench_paths, "genome": bench_genome, "scaling": bench_scaling, "throughput": bench_throughput}[args.only](args)
    except (BenchError, CheckpointError) as err:
        print(f"genometracks bench: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
