#!/usr/bin/env python3
"""Every recorded paths bench as one Markdown row: the same model code measured on different hosts.

Reads the JSON objects `python scripts/bench.py` printed (saved as docs/bench_*.json), keeps the textbook-vs-fast
runs of the issue's batch (10 streams of 512) with random weights and genometracks' compiled kernel, and prints, in
file-name order: the file, the load average at the start, the 2048² product rate of the same run (GFLOP/s), and per
task the fast path's median positions/s with its ratio to the textbook path's median in the same run. The last column
is the textbook path's inference median, which moves between hosts as much as the fast path and so sets most of the
spread of the ratios.

Usage: python3 scripts/bench_history.py [FILE ...]   (default: docs/bench_*.json beside this script)
"""

import json
import sys
from pathlib import Path

TASKS = ("inference", "training", "training_no_memory")
HEADER = (
    "| run | load | 2048² product, GFLOP/s | inference, positions/s (× textbook) | training with memory "
    "| training without memory | textbook inference |"
)


def median(run: dict, key: str) -> float | None:
    """The median positions/s of one path of one task (None where the run lacks it)."""
    value = run.get(key, {}).get("positions_per_s")
    return value.get("median") if isinstance(value, dict) else value


def is_paths_run(run: dict) -> bool:
    """A textbook-vs-fast run of the paper model (10 streams x 512) with random weights on the compiled kernel."""
    machine = run.get("machine_start", {})
    return (
        run.get("batch") == 10
        and run.get("seg_len") == 512
        and median(run, "inference_fast") is not None
        and median(run, "inference_textbook") is not None
        and str(run.get("model", {}).get("weights", "")).startswith("random")
        and machine.get("attention_kernel") == "compiled"
    )


def cell(run: dict, task: str) -> str:
    """'31,008 (10.9×)' for one task, '–' where the run did not time it."""
    fast, ratio = median(run, f"{task}_fast"), run.get(f"{task}_ratio_fast_over_textbook")
    if fast is None or ratio is None:
        return "–"
    return f"{fast:,.0f} ({ratio:.1f}×)"


def row(name: str, run: dict) -> str:
    """One Markdown table row for a paths run."""
    machine = run.get("machine_start", {})
    cells = [
        f"`{name}`",
        f"{machine.get('load_average_1m', float('nan')):.2f}",
        f"{run.get('matmul_2048_gflops', float('nan')):.0f}",
        *(cell(run, task) for task in TASKS),
        f"{median(run, 'inference_textbook'):,.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def table(paths: list[Path]) -> str:
    """The Markdown table of every paths run among the files, in file-name order."""
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for path in sorted(paths, key=lambda p: p.name):
        run = json.loads(path.read_text())
        if is_paths_run(run):
            lines.append(row(path.name, run))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((Path(__file__).parents[1] / "docs").glob("bench_*.json"))
    print(table(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
