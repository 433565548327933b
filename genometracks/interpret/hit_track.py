"""The head-motif-hit track: FIMO hits of the informative heads' PWMs → BED9+5 bigBed and tabix BED.

Columns (0-based half-open, forward strand): chrom, start, end, name = '{head}_{matched motif}',
score = round(1000 · FIMO score / the PWM's best possible score) clipped to 0..1000 (strength of the
match), strand, thickStart = start, thickEnd = end, itemRgb (the head's colour, paler as the score falls), then
head, matchedMotif ('unmatched' when the head has no significant database match), pValue, qValue
(FIMO p and Benjamini-Hochberg q over the whole scan, `genometracks.interpret.scan`) and logOdds
(the FIMO score in bits). Hits with q > q_threshold are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.formats.bigbed import BedSchema, sort_bed_records, write_bed_outputs
from genometracks.genome.sequence import Genome
from genometracks.interpret.motifs import MotifError
from genometracks.interpret.scan import max_score, scan_genome

SCHEMA = BedSchema(
    "motif_hits",
    "FIMO matches of attention-head motifs (score = 1000 x FIMO score / best possible score)",
    (
        ("string", "head", "Attention head (L{layer}H{head}) whose motif matched"),
        ("string", "matchedMotif", "The head motif's significant database match (Tomtom), or unmatched"),
        ("double", "pValue", "FIMO p-value of the window (uniform background)"),
        ("double", "qValue", "Benjamini-Hochberg q-value over all heads x windows x strands of the scan"),
        ("double", "logOdds", "FIMO log-odds score in bits"),
    ),
    standard=9,
)
# one colour per head (Okabe-Ito, colour-blind safe), in the order of the heads given
HEAD_COLOURS = np.array(
    [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233), (120, 120, 120), (0, 0, 0)],
    dtype=np.float64,
)


def strength_rgb(colour: np.ndarray, score: np.ndarray) -> np.ndarray:
    """'R,G,B' strings [n]: each item's head colour [n, 3] at score 1000, blended linearly towards
    white as the score falls (score 0: 80 % white), so weaker matches are paler."""
    pale = 0.8 * (1.0 - np.clip(np.asarray(score, dtype=np.float64) / 1000.0, 0.0, 1.0))[:, None]
    rgb = pd.DataFrame(np.rint(colour + pale * (255.0 - colour)).astype(np.int64)).astype(str)
    return (rgb[0] + "," + rgb[1] + "," + rgb[2]).to_numpy(dtype=object)


def hit_records(hits: pd.DataFrame, labels: dict[str, str], best: dict[str, float]) -> pd.DataFrame:
    """`scan_genome` hits (motif = head id) → the track's columns (SCHEMA.columns); heads are coloured in
    the order of `labels`."""
    label = hits["motif"].map(labels).fillna("unmatched").astype(str)
    score = np.clip(np.rint(1000.0 * hits["score"].to_numpy() / hits["motif"].map(best).to_numpy()), 0, 1000)
    index = hits["motif"].map({h: i % len(HEAD_COLOURS) for i, h in enumerate(labels)}).to_numpy(dtype=np.int64)
    return pd.DataFrame(
        {
            "chrom": hits["chrom"],
            "start": hits["start"],
            "end": hits["end"],
            "name": hits["motif"] + "_" + label,
            "score": score.astype(np.int64),
            "strand": hits["strand"],
            "thickStart": hits["start"],
            "thickEnd": hits["end"],
            "itemRgb": strength_rgb(HEAD_COLOURS[index], score),
            "head": hits["motif"],
            "matchedMotif": label,
            "pValue": hits["p_value"],
            "qValue": hits["q_value"],
            "logOdds": hits["score"],
        }
    )


def motif_hit_track(genome: Genome, motifs: list, p_threshold: float, q_threshold: float, prefix: Path, progress: bool = False) -> dict:
    """FIMO hits of each (HeadMotif, match label) PWM with p < p_threshold and q <= q_threshold →
    prefix.bb, prefix.bed.gz(.tbi). Old files are removed when nothing is kept."""
    if not 0 < q_threshold <= 1:
        raise MotifError(
            f"interpret.scan_qvalue must be in (0, 1], got {q_threshold}; set a q-value cut-off "
            "such as 0.05, or 1 to keep every hit below interpret.scan_pvalue"
        )
    heads = {m.id: m.motif for m, _ in motifs}
    labels = {m.id: ("unmatched" if label in ("", ".") else str(label).replace(" ", "_")) for m, label in motifs}
    hits, n_tests = scan_genome(genome, heads, p_threshold, progress=progress)
    below_p = hits["motif"].value_counts().to_dict()
    hits = hits[hits["q_value"] <= q_threshold]
    counts = {h: int((hits["motif"] == h).sum()) for h in heads}
    summary = {
        "records": int(len(hits)),
        "per_head": counts,
        "per_head_below_p": {h: int(below_p.get(h, 0)) for h in heads},
        "tests": n_tests,
        "p_threshold": p_threshold,
        "q_threshold": q_threshold,
        "min_q_value": float(hits["q_value"].min()) if len(hits) else None,
    }
    paths = [prefix.with_name(prefix.name + sfx) for sfx in (".bb", ".bed.gz", ".bed.gz.tbi")]
    if hits.empty:
        for path in paths:
            path.unlink(missing_ok=True)
        note = "no informative head" if not motifs else "no hit below the p- and q-value thresholds"
        return {**summary, "note": note, "files": []}
    records = sort_bed_records(hit_records(hits, labels, {h: max_score(m) for h, m in heads.items()}))
    written = write_bed_outputs(records, prefix, SCHEMA, genome.chrom_sizes())
    return {**summary, "files": list(written.values())}
