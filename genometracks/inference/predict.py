"""Whole-genome prediction: every contig, both strands, memory carried, → per-base TSS probability.

A `Track` holds float32 arrays in forward-strand coordinates (0-based), one per contig and strand.
The value at base x on strand s is P(TSS at x on s): the model's output at strand-local index
i answers "TSS at i - shift?", so the output is moved back by `shift` before it is stored (wrapping
on circular contigs; the last `shift` nt of a linear contig have no output and hold 0).

Draft assemblies: every contig is predicted and written, whatever its length (a contig shorter than
the window, or than the 7-wide convolution, is read whole with nothing upstream; one of at most `shift`
nt holds 0 on both strands). N (and IUPAC letters, read as N) is a token of its own, so an all-N contig
or N run gets the model's defined output for N context, not a gap: the bigWig covers every base.
Lower-case (soft-masked) letters are the same tokens as upper case, so tracks do not depend on masking;
the .2bit keeps the case (browser/hub.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from genometracks.data.dataset import open_genome
from genometracks.data.streams import SegmentStreams, shift_along
from genometracks.formats.bigwig import write_bigwig
from genometracks.genome.intervals import Interval
from genometracks.genome.sequence import N_TOKEN, Genome
from genometracks.inference.peaks import check_peak_settings, peaks_command
from genometracks.inference.shipped import resolve_model
from genometracks.io.atomic import write_text_atomic
from genometracks.io.malloc import keep_freed_memory
from genometracks.io.run_config import save_configuration, save_overrides
from genometracks.io.rundir import STRAND_WORDS, RunDir
from genometracks.model import TransformerXL


@dataclass
class Track:
    """Per-base values [length] float32 per contig and strand, forward coordinates."""

    values: dict[str, dict[str, np.ndarray]]

    def strand(self, strand: str) -> dict[str, np.ndarray]:
        """{contig: float32 [length]} of strand '+' or '-', forward 0-based coordinates."""
        return {contig: per[strand] for contig, per in self.values.items()}


def predict_genome(
    model: TransformerXL,
    genome: Genome,
    shift: int,
    seg_len: int,
    n_streams: int = 16,
    path: str = "fast",
    progress: bool = True,
    logit_offset: float = 0.0,
    whole_max: int | None = None,
) -> tuple[Track, Track]:
    """(probabilities, logits) for every base of every contig on both strands (see module doc);
    `logit_offset` is added to every logit first (see `calibration_offset()`).

    Layout (draft assemblies: thousands of contigs, most shorter than a segment). Linear contigs of at
    most `whole_max` nt (default `WHOLE_ROWS * seg_len`) are read whole, one row per contig and strand
    from its 5' end with nothing upstream, in batches of rows of similar length (`whole_rows`); the
    rest (circular contigs and long ones) are laid end to end in `n_streams` streams (SegmentStreams).
    A row read whole is what a stream computes at a linear contig's 5' end, so both layouts give the
    same values (tested to 1e-6); the whole rows only skip the padding of a segment per short contig
    and strand, so time and memory grow with bases, not with the number of contigs."""
    whole_max = WHOLE_ROWS * seg_len if whole_max is None else int(whole_max)
    whole = [name for name, c in genome.contigs.items() if not c.circular and c.length <= whole_max]
    taken = set(whole)
    regions = [Interval(name, 0, c.length) for name, c in genome.contigs.items() if name not in taken]
    streams = (
        None
        if not regions
        else SegmentStreams(genome, None, regions, n_streams=n_streams, seg_len=seg_len, lookahead=model.lookahead, burn_in=model.context)
    )
    rows = whole_rows(genome, whole, budget=n_streams * (seg_len + model.window), row_extra=model.window)
    outputs: dict[tuple[str, str], np.ndarray] = {}
    bar = tqdm(
        total=len(rows) + (len(streams) if streams is not None else 0), desc="predict", unit="batch", disable=not progress, mininterval=2.0
    )
    device = model.head.weight.device  # a GPU where the model lies on one; outputs come back to the CPU
    with torch.inference_mode(), bar:
        for keys in rows:
            tokens = [genome.tokens(*key) for key in keys]
            logits, _ = model(torch.from_numpy(_pad(tokens, model.lookahead)).to(device), path=path)
            values = logits.float().cpu().numpy() + logit_offset
            for row, key in enumerate(keys):
                outputs[key] = np.ascontiguousarray(values[row, : tokens[row].size], dtype=np.float32)
            bar.update()
        if streams is not None:
            memory = model.init_memory(n_streams)
            for batch in streams:
                tokens_in, reset = (torch.as_tensor(batch[key], device=device) for key in ("tokens", "reset"))
                logits, memory = model(tokens_in, memory, reset, path=path)
                streams.scatter(logits.float().cpu().numpy() + logit_offset, batch, outputs)
                bar.update()
    return _tss_tracks(genome, outputs, shift)


WHOLE_ROWS = 4  # linear contigs up to 4 segments long are read whole, batches as many positions as the streams


def whole_rows(genome: Genome, names: list[str], budget: int, row_extra: int = 0) -> list[list[tuple[str, str]]]:
    """Batches of (contig, strand) rows for contigs read whole, rows sorted longest first so a
    batch's rows have similar lengths, at most max(1, budget // (its longest row + row_extra)) rows
    per batch (`row_extra`: what a row costs beyond its positions, the model's memory of W-1 keys)."""
    keys = [(name, strand) for name in names for strand in "+-"]
    lengths = np.array([genome.contigs[name].length for name, _ in keys], dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches, i = [], 0
    while i < order.size:
        take = order[i : i + max(1, budget // (int(lengths[order[i]]) + row_extra))]
        batches.append([keys[k] for k in take])
        i += take.size
    return batches


def _pad(tokens: list[np.ndarray], lookahead: int) -> np.ndarray:
    """Rows [B, longest + lookahead] int64: each row's tokens, then N (what lies past a linear end)."""
    out = np.full((len(tokens), max(t.size for t in tokens) + lookahead), N_TOKEN, dtype=np.int64)
    for row, tok in enumerate(tokens):
        out[row, : tok.size] = tok
    return out


def _tss_tracks(genome: Genome, outputs: dict[tuple[str, str], np.ndarray], shift: int) -> tuple[Track, Track]:
    """Move outputs back by `shift` (strand-local) and flip '-' into forward coordinates."""
    probs: dict[str, dict[str, np.ndarray]] = {}
    logits: dict[str, dict[str, np.ndarray]] = {}
    for name, contig in genome.contigs.items():
        probs[name], logits[name] = {}, {}
        for strand in "+-":
            out = outputs[(name, strand)]
            at_tss = shift_along(out, -shift, contig.circular)
            if strand == "-":
                at_tss = at_tss[::-1]
            logit = np.ascontiguousarray(at_tss, dtype=np.float32)
            prob = (1.0 / (1.0 + np.exp(-logit.astype(np.float64)))).astype(np.float32)
            if not contig.circular:  # positions without an output: probability 0, not sigmoid(0); no logit
                blank = slice(0, shift) if strand == "-" else slice(max(out.size - shift, 0), out.size)
                prob[blank], logit[blank] = 0.0, np.nan
            probs[name][strand], logits[name][strand] = prob, logit
    return Track(probs), Track(logits)


def write_tracks(track: Track, chrom_sizes: dict[str, int], tracks_dir: Path, stem: str = "tss", gaps: bool = False) -> dict[str, Path]:
    """`tracks_dir/{stem}.plus.bw` and `{stem}.minus.bw` (float32, every base, zoom levels; with
    gaps=True NaN bases are left out: no data)."""
    tracks_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for strand, word in STRAND_WORDS.items():
        path = tracks_dir / f"{stem}.{word}.bw"
        write_bigwig(path, chrom_sizes, track.strand(strand), gaps=gaps)
        paths[strand] = path
    return paths


def predict_command(cfg: DictConfig) -> dict:
    """`genometracks predict [model=<shipped> | ckpt=PATH] run_dir=DIR`: bigWigs of TSS probability per
    strand, then the peak calls at the model's threshold (DIR/tracks/predict.json records the model)."""
    keep_freed_memory()  # per-segment tensors reuse heap pages (measured in scripts/bench.py)
    check_peak_settings(cfg.predict.peaks)  # before the prediction, not after it
    run = RunDir.checked(cfg)
    out = run.root
    source = resolve_model(cfg, out)  # ckpt=, else model.shipped, else DIR/checkpoints/best.ckpt
    model, seg_len = source.model, source.seg_len
    genome, fasta, _ = open_genome(cfg)
    torch.manual_seed(int(cfg.seed))
    probs, logits = predict_genome(
        model,
        genome,
        int(cfg.data.shift),
        seg_len,
        int(cfg.predict.n_streams),
        path=str(cfg.task.attention_path),
        logit_offset=source.logit_offset,
    )
    paths = write_tracks(probs, genome.chrom_sizes(), run.tracks, "tss")
    if cfg.predict.logits:
        paths.update({f"logit{k}": v for k, v in write_tracks(logits, genome.chrom_sizes(), run.tracks, "tss.logit", gaps=True).items()})
    summary = {
        "checkpoint": source.description,
        "fasta": str(fasta),
        "shift": int(cfg.data.shift),
        "tracks": {k: str(v.relative_to(out)) for k, v in paths.items()},
        "positions": 2 * genome.total_length,
        "circular": sorted(name for name, contig in genome.contigs.items() if contig.circular),
        "model": source.summary(),
    }
    if source.card is not None:  # the run directory keeps the card of the model that made its tracks
        write_text_atomic(out / "model_card.json", json.dumps(source.card, indent=2))
    else:  # a checkpoint has no card: an earlier model's would describe tracks it did not make
        (out / "model_card.json").unlink(missing_ok=True)
    write_text_atomic(run.predict_json, json.dumps(summary, indent=2))
    if not run.config.exists():  # the run directory remembers what made its tracks (as `run` and `train` do)
        save_configuration(cfg, run.root)
        save_overrides(out)
    print(json.dumps(summary))
    summary["peaks"] = peaks_command(cfg)  # the threshold travels with the model (predict.json)
    return summary
