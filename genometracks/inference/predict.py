"""Whole-genome prediction: every contig, both strands, memory carried, → per-base TSS probability.

A `Track` holds float32 arrays in forward-strand coordinates (0-based), one per contig and strand.
The value at base x on strand s is P(TSS at x on s): the model's output at strand-local index
i answers "TSS at i - shift?", so the output is moved back by `shift` before it is stored (wrapping
on circular contigs; the last `shift` nt of a linear contig have no output and hold 0).
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
from genometracks.data.streams import SegmentStreams
from genometracks.formats.bigwig import write_bigwig
from genometracks.genome.intervals import Interval
from genometracks.genome.sequence import Genome
from genometracks.inference.peaks import peaks_command
from genometracks.inference.shipped import resolve_model
from genometracks.io.atomic import write_text_atomic
from genometracks.io.malloc import keep_freed_memory
from genometracks.io.rundir import STRAND_WORDS, RunDir
from genometracks.model import TransformerXL


@dataclass
class Track:
    """Per-base values [length] float32 per contig and strand, forward coordinates."""
    values: dict[str, dict[str, np.ndarray]]

    def strand(self, strand: str) -> dict[str, np.ndarray]:
        """{contig: float32 [length]} of strand '+' or '-', forward 0-based coordinates."""
        return {contig: per[strand] for contig, per in self.values.items()}


def predict_genome(model: TransformerXL, genome: Genome, shift: int, seg_len: int, n_streams: int = 16,
                   path: str = "fast", progress: bool = True, logit_offset: float = 0.0) -> tuple[Track, Track]:
    """(probabilities, logits) for every base of every contig on both strands (see module doc);
    `logit_offset` is added to every logit first (see `calibration_offset()`)."""
    regions = [Interval(name, 0, contig.length) for name, contig in genome.contigs.items()]
    labels = {(name, s): np.zeros(c.length, dtype=np.uint8) for name, c in genome.contigs.items() for s in "+-"}
    streams = SegmentStreams(genome, labels, regions, n_streams=n_streams, seg_len=seg_len,
                             lookahead=model.lookahead, burn_in=model.context)
    outputs = {key: np.zeros(arr.size, dtype=np.float32) for key, arr in labels.items()}
    memory = model.init_memory(n_streams)
    with torch.inference_mode():
        for batch in tqdm(streams, total=len(streams), desc="predict", unit="batch",
                          disable=not progress, mininterval=2.0):
            tokens = torch.as_tensor(batch["tokens"])
            reset = torch.as_tensor(batch["reset"])
            logits, memory = model(tokens, memory, reset, path=path)
            streams.scatter(logits.float().numpy() + logit_offset, batch, outputs)
    return _tss_tracks(genome, outputs, shift)


def _tss_tracks(genome: Genome, outputs: dict[tuple[str, str], np.ndarray], shift: int) -> tuple[Track, Track]:
    """Move outputs back by `shift` (strand-local) and flip '-' into forward coordinates."""
    probs: dict[str, dict[str, np.ndarray]] = {}
    logits: dict[str, dict[str, np.ndarray]] = {}
    for name, contig in genome.contigs.items():
        probs[name], logits[name] = {}, {}
        for strand in "+-":
            out = outputs[(name, strand)]
            if contig.circular:
                at_tss = np.roll(out, -shift)
            else:
                at_tss = np.zeros_like(out)
                at_tss[: max(out.size - shift, 0)] = out[shift:]
            if strand == "-":
                at_tss = at_tss[::-1]
            logit = np.ascontiguousarray(at_tss, dtype=np.float32)
            prob = (1.0 / (1.0 + np.exp(-logit.astype(np.float64)))).astype(np.float32)
            if not contig.circular:  # positions without an output stay 0, not sigmoid(0)
                blank = slice(0, shift) if strand == "-" else slice(max(out.size - shift, 0), out.size)
                prob[blank] = 0.0
            probs[name][strand], logits[name][strand] = prob, logit
    return Track(probs), Track(logits)


def write_tracks(track: Track, chrom_sizes: dict[str, int], tracks_dir: Path, stem: str = "tss") -> dict[str, Path]:
    """`tracks_dir/{stem}.plus.bw` and `{stem}.minus.bw` (float32, every base, zoom levels)."""
    tracks_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for strand, word in STRAND_WORDS.items():
        path = tracks_dir / f"{stem}.{word}.bw"
        write_bigwig(path, chrom_sizes, track.strand(strand))
        paths[strand] = path
    return paths


def predict_command(cfg: DictConfig) -> dict:
    """`genometracks predict [model=<shipped> | ckpt=PATH] run_dir=DIR`: bigWigs of TSS probability per
    strand, then the peak calls at the model's threshold (DIR/tracks/predict.json records the model)."""
    keep_freed_memory()  # per-segment tensors reuse heap pages (measured in scripts/bench.py)
    run = RunDir.checked(cfg)
    out = run.root
    source = resolve_model(cfg, out)  # ckpt=, else model.shipped, else DIR/checkpoints/best.ckpt
    model, seg_len = source.model, source.seg_len
    genome, fasta, _ = open_genome(cfg)
    torch.manual_seed(int(cfg.seed))
    probs, logits = predict_genome(model, genome, int(cfg.data.shift), seg_len, int(cfg.predict.n_streams),
                                   path=str(cfg.task.attention_path), logit_offset=source.logit_offset)
    paths = write_tracks(probs, genome.chrom_sizes(), run.tracks, "tss")
    if cfg.predict.logits:
        paths.update({f"logit{k}": v for k, v in write_tracks(logits, genome.chrom_sizes(), run.tracks,
                                                                "tss.logit").items()})
    summary = {"checkpoint": source.description, "fasta": str(fasta), "shift": int(cfg.data.shift),
               "tracks": {k: str(v.relative_to(out)) for k, v in paths.items()},
               "positions": 2 * genome.total_length, "model": source.summary()}
    if source.card is not None:  # the run directory keeps the card of the model that made its tracks
        write_text_atomic(out / "model_card.json", json.dumps(source.card, indent=2))
    write_text_atomic(run.predict_json, json.dumps(summary, indent=2))
    print(json.dumps(summary))
    summary["peaks"] = peaks_command(cfg)  # the threshold travels with the model (predict.json)
    return summary
