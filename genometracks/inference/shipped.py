"""Shipped models: trained TSS models that travel with the package, usable on any genome without training.

A shipped model is a folder `genometracks/models/<name>/` (or any folder given by path) holding

- `model.safetensors`: the TransformerXL weights (safetensors: loading runs no pickle);
- `card.json`: the model card (architecture, label sets and their licences, the command and commit that
  trained it, positions seen, wall time, validation and test metrics, the calibration offset, the validation
  F1-optimal peak threshold, and a small stated region whose metrics a test re-computes);
- `card.md`: the same card for people.

`genometracks ship` (genometracks.ship) writes the folder from a training run; `model=<name>`
(conf/model/<name>.yaml: `shipped: <name>`) makes predict / peaks / interpret use it.
`resolve_model` is the one place that decides which model a command uses and where its calibration and
peak threshold come from: `ckpt=PATH` (threshold from that run's metrics.json), else the shipped model of
`model.shipped`, else DIR/checkpoints/best.ckpt.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import open_dict

from genometracks.data.dataset import load_dataset
from genometracks.data.streams import SegmentStreams, build_labels, labelled_outputs
from genometracks.genome.intervals import Interval
from genometracks.io.paths import SHIPPED_MODELS
from genometracks.io.provenance import sha256_file
from genometracks.io.run_config import DEFAULT_MODEL, set_by_user, shipped_name
from genometracks.model import TransformerXL
from genometracks.training.checkpoint import load_model
from genometracks.training.task import calibration_offset, position_rows, split_metrics

FORMAT = "genometracks-shipped-model/1"
WEIGHTS, CARD_JSON, CARD_MD = "model.safetensors", "card.json", "card.md"
MODELS_DIR = SHIPPED_MODELS  # genometracks/models/<name>/
SHIP_HINT = "genometracks ship ckpt=RUN/checkpoints/best.ckpt name={name}"


class ShippedModelError(ValueError):
    """A shipped model that cannot be used; the message names the file and the fix (one line)."""


@dataclass
class ModelSource:
    """The model a command uses, with what travels with it."""

    model: torch.nn.Module
    seg_len: int
    logit_offset: float  # added to raw logits: calibrated probabilities
    threshold: float | None  # validation F1-optimal peak threshold (calibrated), None if unknown
    threshold_source: str
    description: str  # "shipped model ecoli_k12 (PATH)" / "checkpoint PATH"
    card: dict | None = None
    folder: Path | None = None
    extra: dict = field(default_factory=dict)
    shift: int | None = None  # the label shift it was trained with (output i answers 'TSS at i - shift?'), None if unknown
    shift_source: str = ""  # where `shift` was read

    def summary(self) -> dict:
        out = {
            "source": self.description,
            "seg_len": self.seg_len,
            "logit_offset": self.logit_offset,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
        }
        if self.card is not None:
            out["name"] = self.card.get("name")
            out["weights_sha256"] = (self.card.get("weights") or {}).get("sha256")
        return out


# -- where -------------------------------------------------------------------------------------------
def available() -> list[str]:
    """Names of the models shipped in the package."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / CARD_JSON).is_file())


def model_folder(spec: str | Path) -> Path:
    """A shipped model's folder: a name under genometracks/models/, or a folder path (text with '/' or
    a leading '.', or a Path: `./mymodel` stays a path when it comes back as Path('mymodel'))."""
    if isinstance(spec, Path):
        return spec.expanduser()
    text = str(spec)
    if "/" in text or text.startswith("."):
        return Path(text).expanduser()
    return MODELS_DIR / text


# -- reading -----------------------------------------------------------------------------------------
def load_card(spec: str | Path) -> dict:
    """card.json of a shipped model, checked for the fields loading needs."""
    folder = model_folder(spec)
    name = folder.name
    fix = f"re-ship it ({SHIP_HINT.format(name=name)})"
    if not folder.is_dir():
        known = ", ".join(available()) or "none"
        raise ShippedModelError(
            f"{folder}: shipped model not found (shipped models: {known}); choose one with model=<name>, or {SHIP_HINT.format(name=name)}"
        )
    path = folder / CARD_JSON
    if not path.is_file():
        raise ShippedModelError(f"{path}: model card missing; {fix}")
    try:
        card = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ShippedModelError(f"{path}: not a readable model card ({type(err).__name__}: {str(err)[:120]}); {fix}") from err
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ShippedModelError(f"{path}: format {found!r}, expected {FORMAT!r}; {fix}")
    for key in ("architecture", "calibration", "peaks", "weights"):
        if not isinstance(card.get(key), dict):
            raise ShippedModelError(f"{path}: card has no '{key}' section; {fix}")
    return card


def load_shipped(spec: str | Path) -> ModelSource:
    """Build the TransformerXL of a shipped model from model.safetensors and card.json (no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = model_folder(spec)
    card = load_card(folder)
    fix = f"re-ship it ({SHIP_HINT.format(name=folder.name)})"
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise ShippedModelError(f"{weights}: weights missing; {fix}")
    expected = card["weights"].get("sha256")
    if expected and sha256_file(weights) != expected:
        raise ShippedModelError(
            f"{weights}: SHA-256 differs from {folder / CARD_JSON} (weights and card from different ships, or a damaged file); {fix}"
        )
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ShippedModelError(f"{weights}: not a readable safetensors file ({str(err)[:120]}); {fix}") from err
    config = dict(card["architecture"])
    seg_len = int(config.pop("seg_len", 512))
    config.pop("parameters", None)
    try:
        model = TransformerXL(**config)
        model.load_state_dict(state)
    except (TypeError, RuntimeError, ValueError) as err:
        detail = " ".join(line.strip() for line in str(err).splitlines() if line.strip())  # the first line names no key
        raise ShippedModelError(f"{weights}: weights do not fit the card's architecture ({detail[:300]}); {fix}") from err
    model.eval()
    offset = float(card["calibration"].get("logit_offset", 0.0))
    threshold = card["peaks"].get("threshold")
    threshold = float(threshold) if _probability(threshold) else None
    return ModelSource(
        model,
        seg_len,
        offset,
        threshold,
        f"model card: {card['peaks'].get('source') or 'validation F1-optimal'}" if threshold else "none in the model card",
        f"shipped model {card.get('name', folder.name)} ({folder})",
        card=card,
        folder=folder,
        shift=int(card["task"]["shift"]) if isinstance(card.get("task"), dict) and card["task"].get("shift") is not None else None,
        shift_source=str(folder / CARD_JSON),
    )


def _probability(value) -> bool:
    try:
        return value is not None and 0.0 < float(value) < 1.0
    except (TypeError, ValueError):
        return False


def run_threshold(run_dir: Path) -> float | None:
    """The validation F1-optimal threshold in RUN/metrics.json, or None."""
    try:
        value = json.loads((run_dir / "metrics.json").read_text())["validation"]["both"]["threshold_f1"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if _probability(value) else None


def checkpoint_source(ckpt: Path) -> ModelSource:
    """A Lightning checkpoint with its calibration (hparams), its label shift (hparams, else its run's
    config.yaml) and its run's threshold (RUN/metrics.json beside RUN/checkpoints/), so it carries its
    threshold and shift into another run directory."""

    model, seg_len, hparams = load_model(ckpt)
    run = ckpt.resolve().parent.parent if ckpt.resolve().parent.name == "checkpoints" else ckpt.resolve().parent
    threshold = run_threshold(run)
    source = f"validation F1-optimal ({run / 'metrics.json'})" if threshold else "none (no metrics.json beside it)"
    shift, shift_source = checkpoint_shift(hparams, run)
    return ModelSource(
        model,
        seg_len,
        calibration_offset(hparams),
        threshold,
        source,
        f"checkpoint {ckpt}",
        extra={"hparams": hparams},
        shift=shift,
        shift_source=shift_source,
    )


def checkpoint_shift(hparams: dict, run: Path) -> tuple[int | None, str]:
    """(label shift, where it was read) of a checkpoint: its hyper-parameters (`shift`, written since
    session 18), else the data.shift of RUN/config.yaml (older checkpoints), else (None, '')."""
    if hparams.get("shift") is not None:
        return int(hparams["shift"]), "its hyper-parameters"
    try:
        from omegaconf import OmegaConf

        value = OmegaConf.select(OmegaConf.load(run / "config.yaml"), "data.shift")
        return (int(value), str(run / "config.yaml")) if value is not None else (None, "")
    except (OSError, ValueError, TypeError):
        return None, ""


def adopt_shift(cfg, source: ModelSource) -> None:
    """Make cfg.data.shift the model's own (its outputs are placed with it by predict, interpret and
    peaks); a different data.shift typed on the command line is refused in one line."""
    trained = source.shift
    given = cfg.get("data", {}).get("shift") if cfg.get("data") is not None else None
    if trained is None or given is None or int(given) == trained:
        return
    if set_by_user(cfg, "data.shift"):
        raise ShippedModelError(
            f"data.shift={given}, but the {source.description} was trained with shift {trained} (read from "
            f"{source.shift_source}; its output at i answers 'TSS at i - {trained}?'); drop data.shift= or set data.shift={trained}"
        )
    with open_dict(cfg):
        cfg.data.shift = trained


def resolve_model(cfg, out: Path) -> ModelSource:
    """ckpt=PATH, else the shipped model of model.shipped, else DIR/checkpoints/best.ckpt; cfg.data.shift
    becomes the model's own (`adopt_shift`)."""
    name = shipped_name(cfg)
    if cfg.get("ckpt"):
        if name:  # two models named: neither is silently dropped
            raise ShippedModelError(f"model={name} and ckpt={cfg.ckpt} both name the model to use; give one of them")
        source = checkpoint_source(Path(str(cfg.ckpt)))
    elif name:
        source = load_shipped(name)
    else:
        trained_here = out / "checkpoints" / "best.ckpt"
        if not trained_here.is_file():
            raise ShippedModelError(
                f"{trained_here}: no model trained in this run directory; predict with a shipped model "
                f"(model={DEFAULT_MODEL}, or one of {available()}), pass ckpt=PATH, or train first (genometracks train run_dir={out})"
            )
        source = checkpoint_source(trained_here)
    adopt_shift(cfg, source)
    return source


# -- the main job --------------------------------------------------------------------------------------
# -- evaluation ----------------------------------------------------------------------------------------
# what a card's regions mean for its metrics: "tss" (the outputs labelling the TSSs inside them; session 20
# on); cards without the key were evaluated with "outputs" (the regions' positions as outputs)
SCORED = "tss"


def evaluate_regions(
    model,
    logit_offset: float,
    genome,
    sites,
    shift: int,
    regions,
    seg_len: int,
    n_streams: int = 16,
    path: str = "fast",
    threshold: float | None = None,
    scored: str = SCORED,
) -> dict:
    """Per-position metrics (both strands and per strand, as training reports them) of a model on
    `regions` (forward intervals, both strands), memory carried and `model.context` of burn-in;
    `threshold` (the validation split's) sets the operating point of `at_threshold`. scored "tss": the
    outputs that label the TSSs inside the regions (`labelled_outputs`, how training scores a split since
    session 20); "outputs": the regions' own positions as outputs (cards shipped before)."""

    labels = build_labels(genome, sites, shift)
    outputs = labelled_outputs(genome, list(regions), shift) if scored == "tss" else list(regions)
    if not outputs:
        shown = ", ".join(format_region(r) for r in list(regions)[:3])
        raise ShippedModelError(
            f"regions {shown}: no TSS position there has an output (each lies within {shift} nt of a linear contig's "
            "3' end on its strand); choose a larger region"
        )
    streams = SegmentStreams(
        genome, labels, outputs, n_streams=n_streams, seg_len=seg_len, lookahead=model.lookahead, burn_in=model.context
    )
    memory = model.init_memory(n_streams)
    collected = []
    with torch.inference_mode():
        for batch in streams:
            logits, memory = model(batch["tokens"], memory, batch["reset"], path=path)
            logits = logits + logit_offset
            collected.append(position_rows(logits, batch))
    rows = torch.cat(collected).numpy() if collected else np.zeros((0, 5))
    return split_metrics(rows, threshold=threshold)


def parse_region(text: str):
    """'chrom:start-end' (0-based half-open, commas allowed) → Interval."""

    try:
        chrom, span = str(text).rsplit(":", 1)
        start, end = (int(x.replace(",", "")) for x in span.split("-"))
    except ValueError as err:
        raise ShippedModelError(f"region {text!r}: expected chrom:start-end") from err
    return Interval(chrom, start, end)


def format_region(region) -> str:
    return f"{region.chrom}:{region.start}-{region.end}"


def check_card(source: ModelSource, cfg) -> dict:
    """Re-evaluate a shipped model on its card's check region: {'card': ..., 'fresh': ...} (both-strand
    metrics). `cfg` supplies the data (genome, labels) the card names."""

    card = source.card or {}
    check = card.get("check") or {}
    if not check.get("region"):
        raise ShippedModelError(f"{source.folder}/{CARD_JSON}: card has no check region; re-ship the model")
    dataset = load_dataset(cfg, label_set=check.get("labels"))
    region = parse_region(check["region"])
    fresh = evaluate_regions(
        source.model,
        source.logit_offset,
        dataset.genome,
        dataset.sites,
        dataset.shift,
        [region],
        source.seg_len,
        int(check.get("n_streams", 16)),
        threshold=(card.get("peaks") or {}).get("threshold"),
        scored=str(check.get("scored", "outputs")),
    )
    return {"card": check.get("metrics", {}), "fresh": fresh["both"]}


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
