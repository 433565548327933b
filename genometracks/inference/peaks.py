"""TSS calls from probability tracks: per strand local maxima above a threshold, at least
`min_distance` nt apart (the higher peak wins), → BED6 with score = round(1000 * p)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
from omegaconf import DictConfig
from scipy.signal import find_peaks

from genometracks.formats.bigbed import BedSchema, remove_bed_outputs, sort_bed_records, write_bed_outputs
from genometracks.formats.bigwig import read_bigwig
from genometracks.inference.call_context import CONTEXT_FIELDS, annotation_genes, with_context_fields, write_call_context
from genometracks.inference.genes_track import write_genes_track
from genometracks.io.atomic import write_text_atomic
from genometracks.io.rundir import STRAND_WORDS, RunDir

PEAKS_TABLE, PEAKS_DESCRIPTION = "tss_peaks", "TSS calls: local maxima of genometracks TSS probability"


class PeaksError(ValueError):
    """Peak calling cannot run as asked; the message names the setting or file and the fix."""


def check_peak_settings(peaks: DictConfig) -> None:
    """predict.peaks.threshold ('auto' or a probability in (0, 1)) and min_distance (an integer >= 1),
    checked before any work."""
    threshold = str(peaks.threshold)
    if threshold != "auto":
        try:
            value = float(threshold)
        except ValueError:
            value = float("nan")
        if not 0.0 < value < 1.0:
            raise PeaksError(f"predict.peaks.threshold={threshold}: give a probability between 0 and 1 (exclusive), or auto")
    try:
        distance = int(str(peaks.min_distance))
    except ValueError:
        distance = 0
    if distance < 1:
        raise PeaksError(f"predict.peaks.min_distance={peaks.min_distance}: give a whole number of nt, at least 1")


def call_peaks(values: np.ndarray, threshold: float, min_distance: int, circular: bool = False, strand: str = "+") -> np.ndarray:
    """0-based forward positions, ascending, of the peaks of one contig strand's track [length]
    (forward coordinates for both strands; vectorised, scipy).

    A plateau counts once (its middle; of an even plateau, the base 5'-ward of the middle on `strand`);
    `min_distance` >= 1 nt between kept peaks, the higher winning and, between equal heights, the one
    5'-most on `strand`: the '-' track is called in strand-local order, so a track and its reverse
    complement's give mirror-image calls. On a circular contig the last base neighbours the first: a
    peak's shoulder across the origin is no peak, and `min_distance` holds across it (the track is
    scanned as three copies end to end and the middle copy's peaks kept, so every decision sees a full
    contig on either side); where 2 * min_distance > length every two peaks of the circle are closer
    than that, and the highest alone is kept."""
    n, distance = values.size, max(int(min_distance), 1)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    local = values[::-1] if strand == "-" else values  # strand-local order: index 0 is the strand's 5' end
    track = local.astype(np.float64)
    if circular:
        track = np.concatenate([track, track, track])
    padded = np.concatenate([[-np.inf], track, [-np.inf]])
    peaks, _ = find_peaks(padded, height=threshold)
    if distance > 1 and (not circular or 2 * distance <= n):
        peaks = _apart(peaks, padded[peaks], distance, padded.size, n if circular else 0)
    peaks = peaks - 1
    if circular:
        peaks = peaks[(peaks >= n) & (peaks < 2 * n)] - n
        if 2 * distance > n and peaks.size > 1:
            peaks = peaks[[int(np.argmax(local[peaks]))]]  # the first of equal maxima: 5'-most on the strand
    peaks = peaks.astype(np.int64)
    return (n - 1 - peaks)[::-1].copy() if strand == "-" else peaks


def _apart(peaks: np.ndarray, heights: np.ndarray, distance: int, size: int, period: int = 0) -> np.ndarray:
    """The peaks (ascending indices into an array of `size`) kept at least `distance` apart, the higher
    first and, between equal heights, the lower index (scipy's own selection breaks such ties by an
    unstable sort): scipy's selection run on unique ranks, vectorised. `period` > 0 (a circle laid out
    as copies of `period` after one padding cell): equal heights go to the lower position on the circle,
    so every copy of the circle decides alike."""
    if peaks.size < 2:
        return peaks
    on_circle = (peaks - 1) % period if period else peaks
    order = np.lexsort((peaks, on_circle, -heights))  # highest first, then the lowest (circle) position
    rank = np.empty(peaks.size)
    rank[order] = np.arange(peaks.size, 0, -1, dtype=np.float64)  # unique priorities, same order
    spikes = np.full(size, -np.inf)
    spikes[peaks] = rank  # peaks are never adjacent (each is a strict local maximum or a plateau's middle)
    kept, _ = find_peaks(spikes, distance=distance)
    return kept


def peak_records(
    track_by_strand: dict[str, dict[str, np.ndarray]],
    threshold: float,
    min_distance: int,
    contig_order: list[str],
    circular: frozenset[str] = frozenset(),
) -> list[tuple]:
    """BED6 tuples (chrom, start, end, name, score, strand) over all contigs and strands, sorted by
    `contig_order`, start, strand (a bigBed wants byte order: `sort_bed_records`); the contigs named in
    `circular` are called as circles."""
    rank = {name: i for i, name in enumerate(contig_order)}  # a dict: drafts have thousands of contigs
    records = []
    for contig in contig_order:
        for strand in "+-":
            values = track_by_strand[strand][contig]
            for pos in call_peaks(values, threshold, min_distance, contig in circular, strand):
                p = float(values[pos])
                records.append((contig, int(pos), int(pos) + 1, f"TSS_{int(pos) + 1}{strand}", int(round(1000 * p)), strand))
    records.sort(key=lambda r: (rank[r[0]], r[1], r[5]))
    return records


def validation_threshold(run_dir: Path) -> tuple[float | None, str]:
    """(the validation split's F1-optimal probability of the model that wrote the tracks, where it came
    from), or (None, why there is none). DIR/tracks/predict.json names that model (a shipped model's
    card, or the metrics.json beside its checkpoint); without one (older tracks), DIR/metrics.json."""
    try:
        model = json.loads((RunDir(run_dir).tracks / "predict.json").read_text())["model"]
    except (OSError, ValueError, KeyError, TypeError):
        model = None
    if isinstance(model, dict):
        value = model.get("threshold")
        if value is not None and 0.0 < float(value) < 1.0:
            return float(value), f"{model.get('threshold_source')} of {model.get('source')}"
        # a checkpoint from elsewhere without metrics.json: DIR/metrics.json would be another model's
        return None, f"{model.get('source')}, which wrote the tracks, has no validation threshold"
    try:
        value = json.loads(RunDir(run_dir).metrics_json.read_text())["validation"]["both"]["threshold_f1"]
    except (OSError, ValueError, KeyError, TypeError):
        value = None
    if value is None or not 0.0 < float(value) < 1.0:
        return None, "no validation threshold in metrics.json"
    return float(value), "validation F1-optimal (metrics.json)"


def peak_threshold(setting: object, run_dir: Path) -> tuple[float, str]:
    """(probability threshold, where it came from): `setting` unless it is `auto`, then the validation
    threshold of the model that wrote the tracks (`validation_threshold`, calibrated probabilities as in
    the tracks), else 0.5."""
    if str(setting) != "auto":
        return float(setting), "configured"
    value, source = validation_threshold(run_dir)
    return (value, source) if value is not None else (0.5, f"0.5 ({source})")


def circular_contigs(run_dir: Path, cfg: DictConfig, contigs: set[str]) -> frozenset[str]:
    """The circular contigs among the tracks' `contigs`: as DIR/tracks/predict.json recorded them when
    the tracks were written, else (tracks from an older version) `data.circular` of the configuration."""
    try:
        recorded = json.loads((RunDir(run_dir).tracks / "predict.json").read_text())["circular"]
        return frozenset(str(name) for name in recorded) & contigs
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset(str(name) for name in (cfg.data.get("circular") or [])) & contigs


def peaks_command(cfg: DictConfig) -> dict:
    """`genometracks peaks run_dir=DIR`: DIR/tracks/tss_peaks.bed (+ .bb, .bed.gz/.tbi), and with a genome
    annotation the calls' gene context (tss_context.tsv/.json, plots/tss_context.png; inference.call_context)
    and the genes track (tracks/genes.bb; inference.genes_track)."""
    check_peak_settings(cfg.predict.peaks)
    run = RunDir.checked(cfg)
    out = run.root
    missing = [str(run.tss_bigwig(s)) for s in STRAND_WORDS if not run.tss_bigwig(s).is_file()]
    if missing:
        raise PeaksError(f"{missing[0]}: not found; write the tracks first with `genometracks predict run_dir={out}`")
    with pyBigWig.open(str(run.tss_bigwig("+"))) as bw:
        chrom_sizes = dict(bw.chroms())
    values = {s: {c: read_bigwig(run.tss_bigwig(s), c) for c in chrom_sizes} for s in STRAND_WORDS}
    threshold, source = peak_threshold(cfg.predict.peaks.threshold, out)
    circular = circular_contigs(out, cfg, set(chrom_sizes))
    records = peak_records(values, threshold, int(cfg.predict.peaks.min_distance), list(chrom_sizes), circular)
    # byte order of contig names (contig_10 before contig_9), as bigBed and tabix need
    frame = sort_bed_records(pd.DataFrame(records, columns=["chrom", "start", "end", "name", "score", "strand"]))
    write_text_atomic(run.peaks_bed, frame.to_csv(sep="\t", header=False, index=False))
    paths = {"bed": run.peaks_bed}
    genes = annotation_genes(cfg, chrom_sizes, circular)
    context, table = write_call_context(cfg, frame, values, genes, chrom_sizes, circular)
    genes_track = write_genes_track(run.tracks, genes, chrom_sizes)
    if genes_track is not None:
        paths["genes"] = genes_track
    if records:  # a bigBed cannot be empty: with no peak above the threshold only the (empty) BED is written
        # with a gene context, the bigBed and bed.gz carry it after BED6 (the plain BED stays BED6)
        schema = BedSchema(PEAKS_TABLE, PEAKS_DESCRIPTION, CONTEXT_FIELDS if table is not None else ())
        bigbed_rows = with_context_fields(frame, table) if table is not None else frame
        paths.update(write_bed_outputs(bigbed_rows, run.peaks_stem, schema, chrom_sizes))
    else:  # an earlier call's bigBed and tabix files would go on into the hub and the IGV session
        remove_bed_outputs(run.peaks_stem)
    summary = {
        "peaks": len(records),
        "threshold": threshold,
        "threshold_source": source,
        "min_distance": int(cfg.predict.peaks.min_distance),
        "circular": sorted(circular),
        "files": {k: str(Path(v).relative_to(out)) for k, v in paths.items()},
        "gene_context": context,
    }
    print(json.dumps(summary))
    return summary
