"""The `deeplift` part of `genometracks interpret`: DeepLIFT/SHAP of the top predicted TSSs, the
contribution bigWig per strand, TF-MoDISco patterns matched with Tomtom, their logos and MEME file.

Outputs under DIR (every file atomic): tracks/deeplift.plus.bw, tracks/deeplift.minus.bw
(forward coordinates, 0-based; see deeplift.strand_tracks), logos/deeplift.png (mean contribution
over targets, aligned at +1), interpret/deeplift_profile.tsv, and with interpret.modisco:
interpret/modisco_patterns.tsv (one row per pattern, best match), interpret/modisco_matches.tsv
(every pattern x reference with p, E, q), motifs/modisco.meme, logos/modisco.png (one row per
pattern: sequence in bits and mean contribution); a summary goes into interpret.json.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.data.dataset import Dataset
from genometracks.formats.bigwig import write_bigwig
from genometracks.genome.intervals import SiteSet
from genometracks.interpret.attribution import AttributionError, aggregate_matrix
from genometracks.interpret.deeplift import deeplift_shap, strand_tracks
from genometracks.interpret.logos import draw_logo, draw_logo_grid
from genometracks.interpret.modisco import cut, find_patterns, match_patterns, pattern_table
from genometracks.interpret.motifs import Motif, write_meme
from genometracks.interpret.optimize import tick_labels
from genometracks.io.atomic import write_text_atomic
from genometracks.io.resources import peak_rss_mib
from genometracks.io.rundir import RunDir


def _tsv(frame: pd.DataFrame, path: Path) -> Path:
    write_text_atomic(path, frame.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="NA"))
    return path


def modisco_options(s: dict) -> dict:
    """interpret.modisco_* → keyword arguments of modiscolite's TFMoDISco."""
    return {
        "sliding_window_size": int(s["modisco_sliding_window"]),
        "flank_size": int(s["modisco_flank"]),
        "min_metacluster_size": int(s["modisco_min_metacluster"]),
        "n_leiden_runs": int(s["modisco_leiden_runs"]),
        "final_min_cluster_size": int(s["modisco_min_cluster"]),
        "max_seqlets_per_metacluster": int(s["modisco_max_seqlets"]),
        "trim_to_window_size": int(s["modisco_trim_window"]),
        "initial_flank_to_add": int(s["modisco_initial_flank"]),
    }


def run_modisco(result, s: dict, refs: list[Motif], out: Path) -> dict:
    """MoDISco → Tomtom → TSVs, MEME, logo grid; returns {summary, files}."""
    run = RunDir(out)
    lo, hi = (int(v) for v in s["modisco_window"])
    try:
        onehot, hyp, rel = cut(result.onehot(), result.hypothetical, result.attributions.relative_positions(), lo, hi)
    except AttributionError as err:  # a model whose window barely reaches the promoter: say so, go on
        return {"summary": {"patterns": [], "window": [lo, hi], "references": len(refs), "note": str(err)}, "files": []}
    patterns = find_patterns(onehot, hyp, modisco_options(s), float(s["modisco_trim"]))
    matches = match_patterns(patterns, refs, rel)
    table = pattern_table(patterns, matches, rel)
    files = [_tsv(table, run.interpret / "modisco_patterns.tsv"), _tsv(matches, run.interpret / "modisco_matches.tsv")]
    if patterns:
        files.append(write_meme([p.motif() for p in patterns], run.motifs / "modisco.meme"))
        panels = []
        for p, row in zip(patterns, table.itertuples()):
            a, b = p.trimmed
            label = f"{p.name}: {row.seqlets} seqlets, from {row.position_from_tss:+.0f}"
            match = "" if row.best_match == "." else f", {row.best_match} q={row.q_value:.2g}"
            panels.append((label + match, p.ppm[a:b] + 1e-6, "bits"))
            panels.append((f"{p.name}: mean contribution", p.contrib[a:b], "raw"))
        files.append(draw_logo_grid(panels, run.logos / "modisco.png", ncols=2))
    else:
        (run.motifs / "modisco.meme").unlink(missing_ok=True)
        (run.logos / "modisco.png").unlink(missing_ok=True)
    summary = {"patterns": table.to_dict(orient="records"), "window": [lo, hi], "references": len(refs)}
    return {"summary": summary, "files": files}


def run_deeplift(model, dataset: Dataset, targets: SiteSet, s: dict, out: Path, refs: list[Motif], seed: int) -> dict:
    """DeepLIFT/SHAP of `targets` → per-strand bigWigs, logo, profile; then MoDISco when enabled."""
    run = RunDir(out)
    start = time.perf_counter()
    result = deeplift_shap(
        model, dataset.genome, targets, dataset.shift, int(s["deeplift_shuffles"]), int(s["deeplift_batch"]), seed, s["progress"]
    )
    seconds, peak_after_shap = time.perf_counter() - start, peak_rss_mib()
    att = result.attributions
    sizes = dataset.genome.chrom_sizes()
    tracks = strand_tracks(dataset.genome, att)
    files = [
        write_bigwig(run.track("deeplift.plus.bw"), sizes, tracks["+"]),
        write_bigwig(run.track("deeplift.minus.bw"), sizes, tracks["-"]),
    ]
    lo, hi = (int(v) for v in s["attribution_logo"])
    matrix, rel = aggregate_matrix(att, lo, hi)
    files.append(
        draw_logo(
            matrix, run.logos / "deeplift.png", f"DeepLIFT/SHAP, mean over {len(att.sites)} top predicted TSSs", "raw", tick_labels(rel)
        )
    )
    all_rel = att.relative_positions()
    keep = (all_rel >= lo) & (all_rel <= hi)
    files.append(
        _tsv(
            pd.DataFrame({"position": all_rel[keep], "mean_contribution": att.contribution.mean(axis=0)[keep]}),
            run.interpret / "deeplift_profile.tsv",
        )
    )
    scale = np.abs(result.output - result.reference_mean)
    summary = {
        "targets": len(att.sites),
        "skipped_at_linear_ends": att.skipped,
        "skipped_with_n": result.skipped_n,
        "references_per_target": int(s["deeplift_shuffles"]),
        "completeness_max_abs_error": float(result.delta.max()),
        "completeness_max_relative_error": float((result.delta / np.maximum(scale, 1e-12)).max()),
        "mean_output_minus_reference": float((result.output - result.reference_mean).mean()),
        "seconds": round(seconds, 1),
        "peak_rss_mib": peak_after_shap,  # peak so far, MiB, when DeepLIFT/SHAP had finished
    }
    if s["modisco"]:
        start = time.perf_counter()
        found = run_modisco(result, s, refs, out)
        found["summary"]["seconds"] = round(time.perf_counter() - start, 1)
        found["summary"]["peak_rss_mib"] = peak_rss_mib()
        summary["modisco"] = found["summary"]
        files += found["files"]
    return {"summary": summary, "files": files}
