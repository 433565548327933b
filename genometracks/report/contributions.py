"""The report's DeepLIFT/SHAP and TF-MoDISco blocks, from what the interpret stage's `deeplift` part
wrote (interpret.json, interpret/modisco_patterns.tsv, logos/deeplift.png, logos/modisco.png)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from genometracks.io.rundir import RunDir
from genometracks.report.plots import fmt, read_tsv, table_rows

LOGOS = ("deeplift", "modisco")  # logos/<stem>.png shown here, not among the other logos
PATTERN_COLUMNS = (
    "pattern",
    "seqlets",
    "consensus",
    "position_from_tss",
    "information",
    "best_match",
    "p_value",
    "e_value",
    "q_value",
    "match_position_from_tss",
)


def contribution_blocks(run_dir: Path, rel: Callable[[Path], str]) -> list:
    """Report blocks (see report.build.Section), empty when the run has no DeepLIFT/SHAP output."""
    run = RunDir(run_dir)
    try:
        summary = json.loads(run.interpret_json.read_text()).get("deeplift")
    except (OSError, ValueError):
        summary = None
    if not summary:
        return []
    blocks: list = [
        (
            "p",
            f"DeepLIFT/SHAP (tangermeme) over the {summary['targets']} top predicted TSSs, "
            f"{summary['references_per_target']} dinucleotide-shuffled references each; completeness "
            f"(contributions sum to output minus mean reference output): largest error "
            f"{fmt(summary['completeness_max_abs_error'])} "
            f"(relative {fmt(summary['completeness_max_relative_error'])}). Tracks: "
            "tracks/deeplift.plus.bw, tracks/deeplift.minus.bw.",
        )
    ]
    modisco = summary.get("modisco")
    path = run.interpret / "modisco_patterns.tsv"
    if modisco is not None and path.is_file():
        table = read_tsv(path)
        header, rows, more = table_rows(table, PATTERN_COLUMNS)
        blocks.append(
            (
                "table",
                f"TF-MoDISco patterns (window {modisco['window']} from the TSS) and their best Tomtom "
                f"match among {modisco['references']} reference motifs; q: Benjamini-Hochberg over "
                f"all patterns x references ({rel(path)}){more}",
                header,
                rows,
                None,
            )
        )
    images = [
        (rel(p), caption)
        for p, caption in (
            (run.logos / "deeplift.png", "mean DeepLIFT/SHAP contribution, aligned at +1"),
            (run.logos / "modisco.png", "TF-MoDISco patterns: sequence (bits) and mean contribution"),
        )
        if p.is_file()
    ]
    blocks.append(("gallery", images))
    return blocks
