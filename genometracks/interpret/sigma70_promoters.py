"""σ70 promoters of the TSS calls: each call's best −35 … −10 window where a σ70 promoter lies relative
to its +1, scored with FIMO's statistics → DIR/interpret/sigma70_promoters.tsv and the track
DIR/tracks/sigma70_boxes.bb (+ .bed.gz/.tbi).

The matrices are DPInteract's σ70 promoter windows rpoD15 … rpoD19 (Robison et al. 1998; in the data
set's motif folder, `data.motifs`): each spans the −35 hexamer, S = 15 … 19 spacer nt and the −10
hexamer (width 12 + S). For a call at +1 (0-based position t, strand s) every matrix is read 5'→3' on s
with the −10 hexamer's last base d + 1 nt upstream of the +1, for a discriminator (the nt between the
−10 hexamer and the +1) of d = 4 … 10 nt: 5 matrices × 7 placements = 35 windows per call. Each window
gets FIMO's log-odds and exact p-value (`scan.window_statistics`) against the calls' promoter composition
(`scan.promoter_background`), and the call's σ70 promoter is its window of smallest p (ties: spacer
nearest 17, then discriminator nearest 7). p_value = 1 − (1 − p_window)^W, Šidák over the W N-free
windows tested; q_value: Benjamini-Hochberg over the calls. The same scan at as many random positions
(`hit_track.random_positions`) and at the data set's TSS labels says what a q-value cut-off keeps by
chance and at known TSSs.

Coordinates: positions relative to the call (0 = +1, negative = upstream) on the call's strand; the
boxes' genome intervals are 0-based half-open, forward strand (BED), the call's strand in the strand
column. A box across the origin of a circular contig is scored but left out of the track.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.formats.bigbed import BedSchema, remove_bed_outputs, sort_bed_records, write_bed_outputs
from genometracks.genome.sequence import Genome
from genometracks.interpret.fdr import bh_qvalues
from genometracks.interpret.hit_track import random_positions
from genometracks.interpret.motifs import Motif
from genometracks.interpret.scan import promoter_background, stranded_tokens, window_statistics
from genometracks.io.atomic import write_text_atomic

WINDOW_NAME = re.compile(r"^rpoD(1[5-9])$")  # DPInteract σ70 windows; the number is the spacer (nt)
DISCRIMINATORS = tuple(range(4, 11))  # nt between the −10 hexamer's last base and the +1
BOX = 6  # hexamer width (nt)
PREFERRED = (17, 7)  # ties: spacer, then discriminator nearest these
COLUMNS = (
    "chrom",
    "position",
    "strand",
    "name",
    "matrix",
    "spacer",
    "discriminator",
    "minus35",
    "minus10",
    "minus35_offset",
    "minus10_offset",
    "log_odds",
    "p_window",
    "windows",
    "p_value",
    "q_value",
)
SCHEMA = BedSchema(
    "sigma70_boxes",
    "Sigma70 -35 and -10 boxes of TSS calls (DPInteract rpoD15-19 windows, FIMO statistics)",
    (
        ("string", "tss", "The TSS call whose promoter this box belongs to"),
        ("string", "sequence", "The box's hexamer, 5' to 3' on the call's strand"),
        ("int", "tssOffset", "First base of the box relative to the TSS call (negative = upstream)"),
        ("uint", "spacer", "Spacer between the -35 and the -10 hexamer (nt)"),
        ("uint", "discriminator", "Between the -10 hexamer and the TSS (nt)"),
        ("double", "pValue", "FIMO p-value of the promoter window, Sidak-corrected for the windows looked at"),
        ("double", "qValue", "Benjamini-Hochberg q-value over the TSS calls"),
    ),
    standard=9,
    search=(),  # found through their call: the TSS peaks track is searched by the call's name
)
BOX_COLOURS = {"-35": (213, 94, 0), "-10": (0, 114, 178)}


def sigma70_windows(motifs: Sequence[Motif]) -> dict[int, Motif]:
    """Spacer (nt) → DPInteract window matrix rpoD{spacer}, of those among `motifs` (widths checked:
    12 + spacer columns)."""
    out = {}
    for motif in motifs:
        found = WINDOW_NAME.match(motif.name)
        if found and motif.probabilities.shape[0] == 2 * BOX + int(found.group(1)):
            out[int(found.group(1))] = motif
    return dict(sorted(out.items()))


def placements(windows: dict[int, Motif]) -> list[tuple[int, int]]:
    """(spacer, discriminator) of every window a call is scored at, in the order ties are broken."""
    every = [(s, d) for s in windows for d in DISCRIMINATORS]
    return sorted(every, key=lambda sd: (abs(sd[0] - PREFERRED[0]), abs(sd[1] - PREFERRED[1]), sd))


def best_promoters(genome: Genome, calls: pd.DataFrame, windows: dict[int, Motif], background: np.ndarray) -> pd.DataFrame:
    """Each call's best σ70 window (module docstring): COLUMNS without q_value, one row per call with an
    N-free window, in the calls' order. `calls`: chrom, position (0-based), strand, name."""
    order = placements(windows)
    if not len(calls) or not order:
        return pd.DataFrame(columns=[c for c in COLUMNS if c != "q_value"])
    widest = 2 * BOX + max(windows) + max(DISCRIMINATORS)  # the furthest base upstream any window reads
    first = -widest
    tokens = stranded_tokens(genome, calls, np.arange(first, -min(DISCRIMINATORS), dtype=np.int64))
    stats = {s: window_statistics(tokens, m, background) for s, m in windows.items()}
    score = np.empty((len(calls), len(order)))
    p = np.empty_like(score)
    for k, (spacer, d) in enumerate(order):
        width = 2 * BOX + spacer
        w = -(d + 1) - width + 1 - first  # window index whose last base is at relative -(d + 1)
        score[:, k], p[:, k] = stats[spacer][0][:, w], stats[spacer][1][:, w]
    clean = np.isfinite(p)
    tested = clean.sum(axis=1)
    best = np.argmin(np.where(clean, p, np.inf), axis=1)  # first smallest: the preferred placement
    rows = np.arange(len(calls))
    p_window = np.minimum(p[rows, best], 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # calls with no window: left out below
        sidak = -np.expm1(tested * np.log1p(-p_window))
    spacer = np.array([order[k][0] for k in best], dtype=np.int64)
    discriminator = np.array([order[k][1] for k in best], dtype=np.int64)
    minus10 = -(discriminator + BOX)  # first base of each hexamer, relative to the +1
    minus35 = minus10 - spacer - BOX

    def letters(offset: np.ndarray) -> np.ndarray:
        """The hexamer starting at relative `offset` [n] of each call, as str [n]."""
        codes = tokens[rows[:, None], offset[:, None] - first + np.arange(BOX)[None, :]]
        return np.frombuffer(b"ACGTN", np.uint8)[codes].view(f"S{BOX}").ravel().astype(str)

    frame = pd.DataFrame(
        {
            "chrom": calls["chrom"].to_numpy(),
            "position": calls["position"].to_numpy(np.int64),
            "strand": calls["strand"].to_numpy(),
            "name": calls["name"].to_numpy(),
            "matrix": [windows[s].name for s in spacer],
            "spacer": spacer,
            "discriminator": discriminator,
            "minus35": letters(minus35),
            "minus10": letters(minus10),
            "minus35_offset": minus35,
            "minus10_offset": minus10,
            "log_odds": score[rows, best],
            "p_window": p_window,
            "windows": tested,
            "p_value": sidak,
        }
    )
    return frame[tested > 0].reset_index(drop=True)


def scan_promoters(genome: Genome, calls: pd.DataFrame, windows: dict[int, Motif], background: np.ndarray | None = None) -> pd.DataFrame:
    """`best_promoters` with q-values (COLUMNS); background None = the calls' promoter composition."""
    bg = promoter_background(genome, calls) if background is None else background
    frame = best_promoters(genome, calls, windows, bg)
    frame["q_value"] = bh_qvalues(frame["p_value"].to_numpy(np.float64)) if len(frame) else pd.Series(dtype=float)
    return frame[list(COLUMNS)]


def box_records(promoters: pd.DataFrame, chrom_sizes: dict[str, int]) -> pd.DataFrame:
    """Two records (-35, -10) per promoter (SCHEMA.columns, BED9+7, unsorted); boxes across the origin of
    a circular contig (forward end past the contig's end) are left out."""
    t = promoters["position"].to_numpy(np.int64)
    minus = promoters["strand"].to_numpy() == "-"
    size = promoters["chrom"].map(chrom_sizes).to_numpy(np.int64)
    score = np.clip(np.rint(-100.0 * np.log10(np.maximum(promoters["p_value"].to_numpy(np.float64), 1e-10))), 0, 1000)
    parts = []
    for label, column, sequence in (("-35", "minus35_offset", "minus35"), ("-10", "minus10_offset", "minus10")):
        rel = promoters[column].to_numpy(np.int64)
        start = np.where(minus, t - (rel + BOX - 1), t + rel) % size
        parts.append(
            pd.DataFrame(
                {
                    "chrom": promoters["chrom"].to_numpy(),
                    "start": start,
                    "end": start + BOX,
                    "name": label,
                    "score": score.astype(np.int64),
                    "strand": promoters["strand"].to_numpy(),
                    "thickStart": start,
                    "thickEnd": start + BOX,
                    "itemRgb": ",".join(map(str, BOX_COLOURS[label])),
                    "tss": promoters["name"].to_numpy(),
                    "sequence": promoters[sequence].to_numpy(),
                    "tssOffset": rel,
                    "spacer": promoters["spacer"].to_numpy(np.int64),
                    "discriminator": promoters["discriminator"].to_numpy(np.int64),
                    "pValue": promoters["p_value"].to_numpy(np.float64),
                    "qValue": promoters["q_value"].to_numpy(np.float64),
                }
            )[start + BOX <= size]
        )
    return pd.concat(parts, ignore_index=True)


def promoter_summary(promoters: pd.DataFrame, n_calls: int, q_threshold: float) -> dict:
    """Counts of one scan: calls, tested, kept at q <= q_threshold, the kept promoters' spacer and
    discriminator distributions (nt → count) and every tested call's best discriminator (at random
    positions about even over 4 … 10 nt)."""
    kept = promoters[promoters["q_value"] <= q_threshold]

    def counts(values: pd.Series) -> dict[int, int]:
        return {int(k): int(v) for k, v in values.value_counts().sort_index().items()}

    return {
        "calls": int(n_calls),
        "tested": int(len(promoters)),
        "kept": int(len(kept)),
        "kept_fraction": round(len(kept) / n_calls, 4) if n_calls else None,
        "spacer": counts(kept["spacer"]),
        "discriminator": counts(kept["discriminator"]),
        "best_discriminator_all": counts(promoters["discriminator"]),
    }


def sigma70_promoter_track(
    genome: Genome,
    calls: pd.DataFrame,
    motifs: Sequence[Motif],
    q_threshold: float,
    table: Path,
    prefix: Path,
    reference: pd.DataFrame | None = None,
    seed: int = 0,
) -> dict:
    """Scan the calls (module docstring) → `table` (TSV of every call's best window, COLUMNS with 1-based
    position) and the boxes of the promoters kept at q <= q_threshold → prefix.bb, prefix.bed.gz(.tbi);
    the summary compares random positions and, where given, the `reference` TSSs (chrom, position, strand,
    name). Without σ70 window matrices among `motifs`, or with no promoter kept, earlier files are removed."""
    windows = sigma70_windows(motifs)
    if not windows or not len(calls):
        table.unlink(missing_ok=True)
        remove_bed_outputs(prefix)
        return {"note": "no rpoD15-19 window matrices among the reference motifs" if not windows else "no TSS call", "files": []}
    background = promoter_background(genome, calls)
    promoters = scan_promoters(genome, calls, windows, background)
    randoms = random_positions(genome, calls, seed)
    summary: dict = {
        "matrices": [m.name for m in windows.values()],
        "discriminators": [min(DISCRIMINATORS), max(DISCRIMINATORS)],
        "q_threshold": q_threshold,
        "background": {letter: round(float(b), 4) for letter, b in zip("ACGT", background)},
        "calls": promoter_summary(promoters, len(calls), q_threshold),
        "at_random_positions": promoter_summary(scan_promoters(genome, randoms, windows), len(randoms), q_threshold),
    }
    if reference is not None and len(reference):
        summary["reference"] = promoter_summary(scan_promoters(genome, reference, windows), len(reference), q_threshold)
    out = promoters.assign(position=promoters["position"] + 1)
    write_text_atomic(table, out.to_csv(sep="\t", index=False, float_format="%.6g"))
    files: list[Path] = [table]
    kept = promoters[promoters["q_value"] <= q_threshold]
    records = box_records(kept, genome.chrom_sizes()) if len(kept) else kept
    if len(records):
        files += list(write_bed_outputs(sort_bed_records(records), prefix, SCHEMA, genome.chrom_sizes()).values())
    else:
        remove_bed_outputs(prefix)
    return {**summary, "files": files}
