"""Peer comparison with Promotech's published whole-genome predictions, at matched resolution.

Promotech (Chevez-Guardado & Peña-Castillo 2021) scores every 40-nt window (stride 1 nt) of both
strands and publishes those scoring >= 0.6 (`chrom, start, end, score, strand, sequence`, `start`
0-based, `end` = start + 39 inclusive). Its positive training windows end at the TSS: on '+' window
[s, s+40) has +1 at s+39, on '-' at s (its ECOLI_2 training BED: TSS 147 '+' -> window 108-148,
TSS 8052 '-' -> window 8052-8092). So a listed window is read as a TSS call at its 3' end.

Matching rule (RULE below, also printed in the report): both strands of the test region are cut into
consecutive 40-nt bins of candidate TSS positions; a bin is positive if it holds a labelled TSS on
its strand; each tool's bin score is the maximum of its per-position score over the bin.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.genome.intervals import SiteSet
from genometracks.io.atomic import write_text_atomic
from genometracks.io.jsonsafe import json_safe
from genometracks.report.plots import plot_pr, pr_points
from genometracks.training import metrics as M

PROMOTECH_THRESHOLD = 0.6
RULE = (
    "Promotech scores every 40-nt window (stride 1 nt) on both strands and publishes those scoring "
    "≥ 0.6; its positive training windows end at the TSS (on '+' window [s, s+40) has its +1 at s+39, "
    "on '−' at s), so each listed window is read as a TSS call at its 3′ end. Both strands of the test "
    "region are cut into consecutive {w}-nt bins of candidate TSS positions (forward coordinates, "
    "aligned at the region start; the last bin may be shorter). A bin is positive if it holds a "
    "labelled TSS on that strand. A tool's bin score is the maximum of its per-position score over the "
    "bin: genometracks' P(TSS at x), Promotech's score of the window whose 3′ end is x. Windows "
    "Promotech did not publish (score < 0.6) count as score 0, so its PR curve stops at the recall of "
    "its 0.6 threshold and then falls in one step to the positive rate; its PR AUC includes that "
    "step, which caps it. 'PR AUC to Promotech's recall' integrates both curves only up to that recall."
)


ORACLE_RULE = "best F1 on these bins (oracle: chosen on the test split)"


class PromotechError(ValueError):
    """A Promotech prediction file or comparison input that cannot be used; names the file/record and fix."""


def read_promotech(path: str | Path) -> pd.DataFrame:
    """Promotech predictions as a DataFrame (chrom, start, end, score, strand, tss): start/end 0-based,
    end inclusive; `tss` = the 0-based forward coordinate of the window's 3' end (its +1)."""
    path = Path(path)
    if not path.is_file():
        raise PromotechError(
            f"{path}: Promotech predictions not found; pass the genome_predictions file "
            "(shared data: promotech/NC_000913.3_genome_predictions.csv)"
        )
    table = pd.read_csv(path, sep="\t", dtype=str, comment=None)
    missing = [c for c in ("chrom", "start", "end", "score", "strand") if c not in table.columns]
    if missing:
        raise PromotechError(
            f"{path}: no column(s) {missing} in the header {list(table.columns)}; expected a "
            "tab-separated file with columns chrom, start, end, score, strand, sequence"
        )
    out = pd.DataFrame({"chrom": table["chrom"].astype(str)})
    for column in ("start", "end", "score"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            raise PromotechError(
                f"{path}: line {bad[0] + 2}: {column}={table[column].iloc[bad[0]]!r} is not a number; fix or remove that line"
            )
        out[column] = values.to_numpy()
    for column in ("start", "end"):
        frac = np.flatnonzero(out[column].to_numpy() % 1 != 0)
        if frac.size:
            raise PromotechError(f"{path}: line {frac[0] + 2}: {column} is not an integer")
        out[column] = out[column].astype(np.int64)
    width = out["end"] - out["start"] + 1
    odd = np.flatnonzero((width != width.iloc[0]).to_numpy() | (out["start"] < 0).to_numpy())
    if len(out) and (odd.size or width.iloc[0] < 1):
        line = int(odd[0]) + 2 if odd.size else 2
        raise PromotechError(
            f"{path}: line {line}: window start/end do not give the file's common width "
            f"{int(width.iloc[0])} (end is inclusive: end = start + width - 1)"
        )
    out["strand"] = table["strand"].str.strip().to_numpy()
    bad = np.flatnonzero(~out["strand"].isin(["+", "-"]).to_numpy())
    if bad.size:
        raise PromotechError(f"{path}: line {bad[0] + 2}: strand {out['strand'].iloc[bad[0]]!r}; use '+' or '-'")
    out["tss"] = np.where(out["strand"] == "+", out["end"], out["start"]).astype(np.int64)
    return out


def promotech_track(table: pd.DataFrame, chrom: str, start: int, end: int) -> dict[str, np.ndarray]:
    """Per-position Promotech score float64 [end - start] per strand (forward coordinates from `start`):
    the score of the window whose +1 is at that position, 0 where no window was published."""
    tracks = {}
    for strand in "+-":
        rows = table[(table["chrom"] == chrom) & (table["strand"] == strand)]
        pos = rows["tss"].to_numpy()
        inside = (pos >= start) & (pos < end)
        track = np.zeros(end - start)
        np.maximum.at(track, pos[inside] - start, rows["score"].to_numpy()[inside])
        tracks[strand] = track
    return tracks


def site_track(sites: SiteSet, chrom: str, start: int, end: int) -> dict[str, np.ndarray]:
    """bool [end - start] per strand: a labelled TSS (+1) at that forward position on that strand."""
    tracks = {}
    for strand in "+-":
        pos = sites.pos[(sites.chrom.astype(str) == chrom) & (sites.strand == strand)]
        pos = pos[(pos >= start) & (pos < end)]
        track = np.zeros(end - start, dtype=bool)
        track[pos - start] = True
        tracks[strand] = track
    return tracks


def bin_max(values: np.ndarray, width: int) -> np.ndarray:
    """Maximum over consecutive `width`-long bins of a 1-D array [n] -> [ceil(n / width)]."""
    values = np.asarray(values)
    n_bins = -(-values.size // width)
    fill = False if values.dtype == bool else -np.inf
    padded = np.full(n_bins * width, fill, dtype=values.dtype if values.dtype == bool else np.float64)
    padded[: values.size] = values
    return padded.reshape(n_bins, width).max(axis=1)


def _region_slice(prob: np.ndarray, strand: str, start: int, end: int) -> np.ndarray:
    """The region's values [end - start] from a whole-contig or region-length array (NaN -> 0)."""
    prob = np.asarray(prob, dtype=np.float64)
    if prob.ndim == 1 and (prob.size == end - start or prob.size >= end):
        return np.nan_to_num(prob if prob.size == end - start else prob[start:end], nan=0.0)
    raise PromotechError(
        f"genometracks probabilities for strand {strand!r} have shape {prob.shape}; pass the "
        f"whole contig (>= {end} values) or the region ({end - start} values), forward coordinates"
    )


def calls_at(labels: np.ndarray, scores: np.ndarray, threshold: float, tool: str, rule: str) -> dict:
    """Precision/recall/F1 of calling `scores >= threshold` positive."""
    called = scores >= threshold
    tp, n_calls, n_pos = int(np.sum(called & labels)), int(np.sum(called)), int(np.sum(labels))
    precision = tp / n_calls if n_calls else float("nan")
    recall = tp / n_pos if n_pos else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if n_calls and tp else 0.0
    return {
        "tool": tool,
        "rule": rule,
        "threshold": float(threshold),
        "n_calls": n_calls,
        "tp": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def pr_auc_to_recall(labels: np.ndarray, scores: np.ndarray, recall_cap: float) -> float:
    """Average precision integrated only over recall in [0, recall_cap] (steps cut at the cap)."""
    precision, recall, _ = M.pr_curve(labels, scores)
    if recall.size == 0:
        return float("nan")
    lo, hi = np.minimum(np.r_[0.0, recall[:-1]], recall_cap), np.minimum(recall, recall_cap)
    return float(np.sum((hi - lo) * precision))


def compare_with_promotech(
    prob_by_strand: Mapping[str, np.ndarray] | None,
    sites: SiteSet,
    promotech_path: str | Path,
    region: tuple[str, int, int],
    window: int = 40,
    threshold: float = PROMOTECH_THRESHOLD,
    own_threshold: float | None = None,
) -> dict:
    """Window-level (bins of `window` nt, see RULE) and per-position comparison on `region`
    (chrom, start, end; 0-based half-open). prob_by_strand: {'+': P, '-': P}, forward coordinates,
    whole contig or region; None compares Promotech alone. `own_threshold`: genometracks' probability
    threshold chosen on its validation split (its peak threshold), one more operating point; the
    'best F1' points are chosen on these test bins (an oracle, for both tools alike). Returns a
    JSON-ready dict (see write_comparison)."""
    chrom, start, end = region[0], int(region[1]), int(region[2])
    if not 0 <= start < end or window < 1:
        raise PromotechError(f"region {chrom}:{start}-{end}, window {window}: need 0 <= start < end and window >= 1")
    if prob_by_strand is not None and set(prob_by_strand) != {"+", "-"}:
        raise PromotechError(
            f"genometracks probabilities given for strands {sorted(prob_by_strand)}; pass "
            "{'+': array, '-': array} (tss.plus.bw and tss.minus.bw)"
        )
    table = read_promotech(promotech_path)
    if not (table["chrom"] == chrom).any():
        names = sorted(table["chrom"].unique())[:5]
        raise PromotechError(f"{promotech_path}: no window on {chrom!r} (it has {names}); compare on the genome Promotech predicted")
    pt, truth = promotech_track(table, chrom, start, end), site_track(sites, chrom, start, end)
    tools = {"promotech": pt}
    if prob_by_strand is not None:
        tools = {"genometracks": {s: _region_slice(prob_by_strand[s], s, start, end) for s in "+-"}, **tools}
    labels_w = np.concatenate([bin_max(truth[s], window) for s in "+-"])
    labels_p = np.concatenate([truth[s] for s in "+-"])
    scores_w = {t: np.concatenate([bin_max(v[s], window) for s in "+-"]) for t, v in tools.items()}
    listed = scores_w["promotech"] >= threshold
    pt_recall = float(np.sum(listed & labels_w) / max(labels_w.sum(), 1))
    result = {
        "region": {"chrom": chrom, "start": start, "end": end},
        "window": window,
        "labels": sites.source,
        "promotech_file": str(promotech_path),
        "threshold": threshold,
        "rule": RULE.format(w=window),
        "windows": {"n": int(labels_w.size), "positive": int(labels_w.sum()), "promotech_listed": int(listed.sum())},
        "tools": {},
        "calls": [],
        "curves": {},
        "positions": {"n": int(labels_p.size), "positive": int(labels_p.sum())},
    }
    k = int(listed.sum())
    for tool, scores in scores_w.items():
        result["tools"][tool] = {
            "pr_auc": M.average_precision(labels_w, scores),
            "roc_auc": M.roc_auc(labels_w, scores),
            "pr_auc_to_promotech_recall": pr_auc_to_recall(labels_w, scores, pt_recall),
            "promotech_recall": pt_recall,
        }
        best = M.lr_plus_at_best_f1(labels_w, scores)
        result["calls"].append(calls_at(labels_w, scores, best["threshold"], tool, ORACLE_RULE))
        if tool == "genometracks" and own_threshold is not None:
            result["calls"].append(calls_at(labels_w, scores, float(own_threshold), tool, "peak threshold (chosen on validation)"))
        if tool == "promotech":
            result["calls"].append(calls_at(labels_w, scores, threshold, tool, f"published threshold {threshold}"))
        elif k:
            kth = float(np.sort(scores)[::-1][k - 1])
            rule = f"score of the {k:,}th bin (Promotech's call count; ties included)"
            result["calls"].append(calls_at(labels_w, scores, kth, tool, rule))
        recall, precision = pr_points(labels_w, scores)
        result["curves"][tool] = {"recall": recall.tolist(), "precision": precision.tolist()}
        per_pos = np.concatenate([tools[tool][s] for s in "+-"])
        result["positions"][tool] = {"roc_auc": M.roc_auc(labels_p, per_pos), "pr_auc": M.average_precision(labels_p, per_pos)}
    return result


def comparison_rows(result: Mapping) -> tuple[list[str], list[list[object]]]:
    """(header, rows) of the comparison table: window-level AUCs, operating points, per-position AUCs."""
    header = [
        "level",
        "tool",
        "rule",
        "threshold",
        "calls",
        "precision",
        "recall",
        "F1",
        "PR AUC",
        "ROC AUC",
        "PR AUC to Promotech's recall",
    ]
    w = f"{result['window']}-nt bins"
    rows = [
        [w, t, "all thresholds", None, None, None, None, None, m["pr_auc"], m["roc_auc"], m["pr_auc_to_promotech_recall"]]
        for t, m in result["tools"].items()
    ]
    rows += [
        [w, c["tool"], c["rule"], c["threshold"], c["n_calls"], c["precision"], c["recall"], c["f1"], None, None, None]
        for c in result["calls"]
    ]
    rows += [
        [
            "per position",
            t,
            "all thresholds",
            None,
            None,
            None,
            None,
            None,
            result["positions"][t]["pr_auc"],
            result["positions"][t]["roc_auc"],
            None,
        ]
        for t in result["tools"]
    ]
    return header, rows


def write_comparison(result: Mapping, out_dir: str | Path) -> dict[str, Path]:
    """Write out_dir/promotech_comparison.tsv, .json (with thinned curves) and promotech_pr.png."""
    out_dir = Path(out_dir)
    header, rows = comparison_rows(result)
    text = (
        "\t".join(header)
        + "\n"
        + "".join("\t".join("" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in row) + "\n" for row in rows)
    )
    paths = {
        "tsv": write_text_atomic(out_dir / "promotech_comparison.tsv", text),
        "json": write_text_atomic(out_dir / "promotech_comparison.json", json.dumps(json_safe(dict(result)), indent=1, allow_nan=False)),
    }
    curves = {
        f"{tool} (PR AUC {result['tools'][tool]['pr_auc']:.3f})": (np.asarray(c["recall"]), np.asarray(c["precision"]))
        for tool, c in result["curves"].items()
    }
    points = {
        f"{c['tool']}: {c['rule']}": (c["recall"], c["precision"]) for c in result["calls"] if c["n_calls"] and "best" not in c["rule"]
    }
    region = result["region"]
    paths["png"] = plot_pr(
        curves,
        out_dir / "promotech_pr.png",
        f"{result['window']}-nt bins, {region['chrom']}:{region['start']:,}-{region['end']:,}",
        base_rate=result["windows"]["positive"] / max(result["windows"]["n"], 1),
        points=points,
        legend_outside=True,  # the operating points sit low on the left, where the legend would cover them
    )
    return paths
