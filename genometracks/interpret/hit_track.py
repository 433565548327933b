"""The head-motif-hit track: each informative head's motif in the promoter of each TSS call, where the
head reads it (`genometracks.interpret.scan`) → BED9+8 bigBed and tabix BED.

Columns (0-based half-open, forward strand): chrom, start, end, name = '{head}_{matched motif}',
score = round(1000 · FIMO score / the PWM's best possible score) clipped to 0..1000 (strength of the
match), strand (the call's), thickStart = start, thickEnd = end, itemRgb (the head's colour, paler as
the score falls), then head, matchedMotif ('unmatched' when the head has no significant database
match), tss (the call's name), tssOffset (the word's centre relative to the call, negative =
upstream), pValue (the best window's FIMO p, Šidák-corrected for the windows looked at), qValue
(Benjamini-Hochberg over all calls × heads), windowPValue (FIMO p of the window itself) and logOdds
(the FIMO score in bits). Hits with q > q_threshold are left out, and so is a word across the origin
of a circular contig (a BED interval cannot wrap; it still counts as a test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.formats.bigbed import BedSchema, remove_bed_outputs, sort_bed_records, write_bed_outputs
from genometracks.genome.sequence import Genome
from genometracks.interpret.motifs import MotifError
from genometracks.interpret.scan import AnchoredMotif, max_score, promoter_background, scan_calls

SCHEMA = BedSchema(
    "motif_hits",
    "Attention-head motifs in the promoters of TSS calls (score = 1000 x FIMO score / best possible score)",
    (
        ("string", "head", "Attention head (L{layer}H{head}) whose motif matched"),
        ("string", "matchedMotif", "The head motif's significant database match (Tomtom), or unmatched"),
        ("string", "tss", "The TSS call whose promoter holds the word"),
        ("int", "tssOffset", "Centre of the word relative to the TSS call (negative = upstream)"),
        ("double", "pValue", "FIMO p-value of the best window, Sidak-corrected for the windows looked at"),
        ("double", "qValue", "Benjamini-Hochberg q-value over all TSS calls x heads"),
        ("double", "windowPValue", "FIMO p-value of the window itself (background: the calls' promoter composition)"),
        ("double", "logOdds", "FIMO log-odds score in bits"),
    ),
    standard=9,
    search=("name", "matchedMotif", "tss"),
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
    """`scan_calls` hits (motif = head id) → the track's columns (SCHEMA.columns); heads are coloured in
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
            "tss": hits["tss"],
            "tssOffset": hits["tss_offset"].astype(np.int64),
            "pValue": hits["p_value"],
            "qValue": hits["q_value"],
            "windowPValue": hits["p_window"],
            "logOdds": hits["score"],
        }
    )


def random_positions(genome: Genome, calls: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The calls moved to uniformly random positions of their own contigs (strands and names kept): the
    null the track's specificity is measured against."""
    rng = np.random.default_rng(seed)
    sizes = calls["chrom"].map(genome.chrom_sizes()).to_numpy(np.int64)
    return calls.assign(position=np.floor(rng.random(len(calls)) * sizes).astype(np.int64))


def motif_hit_track(genome: Genome, calls: pd.DataFrame, motifs: list, slack: int, q_threshold: float, prefix: Path, seed: int = 0) -> dict:
    """Each (HeadMotif, match label)'s best word within `slack` nt of its offset in the promoter of each
    TSS call (`calls`: chrom, position, strand, name), kept at q <= q_threshold → prefix.bb,
    prefix.bed.gz(.tbi). Old files are removed when nothing is kept. The summary also gives what the
    same scan keeps at as many random positions (`random_positions`, seeded): about 0 when q means what
    it says."""
    if not 0 < q_threshold <= 1:
        raise MotifError(
            f"interpret.scan_qvalue must be in (0, 1], got {q_threshold}; set a q-value cut-off "
            "such as 0.05, or 1 to keep every call's best word"
        )
    heads = {m.id: AnchoredMotif(m.motif, int(m.offset_from_tss)) for m, _ in motifs}
    labels = {m.id: ("unmatched" if label in ("", ".") else str(label).replace(" ", "_")) for m, label in motifs}
    background = promoter_background(genome, calls)  # the scanned promoters' composition, as FIMO's --bgfile
    tests = scan_calls(genome, calls, heads, slack, background)
    sizes = genome.chrom_sizes()
    significant = tests[tests["q_value"] <= q_threshold]
    inside = significant["end"].to_numpy() <= significant["chrom"].map(sizes).to_numpy()
    hits = significant[inside]
    randoms = random_positions(genome, calls, seed)
    null = scan_calls(genome, randoms, heads, slack, promoter_background(genome, randoms))  # each scan: its own regions' composition
    summary = {
        "records": int(len(hits)),
        "calls": int(len(calls)),
        "tests": int(len(tests)),
        "slack": int(slack),
        "background": {letter: round(float(b), 4) for letter, b in zip("ACGT", background)},
        "q_threshold": q_threshold,
        "per_head": {h: int((hits["motif"] == h).sum()) for h in heads},
        "per_head_fraction_of_calls": {h: round(float((hits["motif"] == h).sum()) / max(len(calls), 1), 4) for h in heads},
        "across_origin": int((~inside).sum()),
        "at_random_positions": int((null["q_value"] <= q_threshold).sum()),
        "min_q_value": float(tests["q_value"].min()) if len(tests) else None,
    }
    if hits.empty:
        remove_bed_outputs(prefix)
        note = "no informative head" if not motifs else "no TSS call" if not len(calls) else "no word at or below the q-value cut-off"
        return {**summary, "note": note, "files": []}
    records = sort_bed_records(hit_records(hits, labels, {h: max_score(a.motif, background) for h, a in heads.items()}))
    written = write_bed_outputs(records, prefix, SCHEMA, sizes)
    return {**summary, "files": list(written.values())}
