"""scripts/bench_history.py: one Markdown row per recorded paths bench, read from the bench's own JSON."""

import importlib.util
import json
from pathlib import Path


def _bench_history():
    path = Path(__file__).parents[1] / "scripts" / "bench_history.py"
    spec = importlib.util.spec_from_file_location("bench_history", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(inference=31007.8, textbook=2836.3, batch=10, weights="random (seed)", kernel="compiled", training=True):
    run = {
        "batch": batch,
        "seg_len": 512,
        "model": {"weights": weights},
        "machine_start": {"load_average_1m": 0.77, "attention_kernel": kernel},
        "matmul_2048_gflops": 309.1,
        "inference_fast": {"positions_per_s": {"median": inference, "min": 1.0, "max": 2.0, "n": 3}},
        "inference_textbook": {"positions_per_s": {"median": textbook}},
        "inference_ratio_fast_over_textbook": round(inference / textbook, 2),
    }
    if training:
        run["training_fast"] = {"positions_per_s": {"median": 10790.5}}
        run["training_ratio_fast_over_textbook"] = 10.36
        run["training_no_memory_fast"] = {"positions_per_s": {"median": 12888.8}}
        run["training_no_memory_ratio_fast_over_textbook"] = 12.43
    return run


def test_table_has_one_row_per_paths_run_with_medians_and_ratios(tmp_path):
    history = _bench_history()
    files = {
        "bench_b.json": _run(),
        "bench_a.json": _run(inference=42052.6, textbook=2339.8, training=False),
        "bench_batch1.json": _run(batch=1),  # another batch: not the figure
        "bench_trained.json": _run(weights="runs/x/best.ckpt"),  # trained weights: timed apart
        "bench_torch.json": _run(kernel="torch"),  # PyTorch's tiles: another column of the README
    }
    for name, run in files.items():
        (tmp_path / name).write_text(json.dumps(run))
    lines = history.table(sorted(tmp_path.glob("*.json"))).splitlines()
    assert lines[0] == history.HEADER
    assert lines[1] == "|---|---|---|---|---|---|---|"
    assert lines[2:] == [
        "| `bench_a.json` | 0.77 | 309 | 42,053 (18.0×) | – | – | 2,340 |",
        "| `bench_b.json` | 0.77 | 309 | 31,008 (10.9×) | 10,790 (10.4×) | 12,889 (12.4×) | 2,836 |",
    ]


def test_recorded_benches_include_this_projects_runs(capsys):
    history = _bench_history()
    assert history.main([]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert len(rows) >= 19
    assert "| `bench_2026-12-03_s22.json` | 0.88 | 407 | 42,053 (18.0×) |" in "\n".join(rows)
