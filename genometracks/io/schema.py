"""Structured configs: the schema (keys and types) of the config groups whose shape is fixed, registered
in Hydra's ConfigStore as `<group>/schema` and named first in each group file's defaults list.

Every field is MISSING here: the values, defaults included, live only in conf/<group>/*.yaml, so a
default is written once. Composition then rejects an unknown key or a value of the wrong type with
Hydra's own message naming the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# OmegaConf reads these annotations at run time and knows typing.Optional, not `X | None`


@dataclass
class ExportConfig:
    """conf/export: the UCSC hub and IGV session of `genometracks export`."""
    genome_mode: str = MISSING          # assembly | genark
    genark_accession: str = MISSING
    hub_name: str = MISSING
    short_label: str = MISSING
    long_label: str = MISSING
    email: str = MISSING
    organism: str = MISSING


@dataclass
class PeaksConfig:
    """predict.peaks: TSS peak calls on the probability tracks."""
    threshold: Any = MISSING            # a probability, or "auto" (validation F1-optimal)
    min_distance: int = MISSING         # nt between peaks on one strand


@dataclass
class PredictConfig:
    """conf/predict: whole-genome prediction and peak calling."""
    n_streams: int = MISSING
    logits: bool = MISSING
    peaks: PeaksConfig = field(default_factory=PeaksConfig)


@dataclass
class InterpretConfig:
    """conf/interpret: what `genometracks interpret` computes (see the YAML for each key)."""
    parts: Optional[list[str]] = MISSING  # noqa: UP045
    n_streams: int = MISSING
    sample_fraction: float = MISSING
    n_extreme: int = MISSING
    motif_top: int = MISSING
    motif_rank: str = MISSING
    match_shuffles: int = MISSING
    match_pvalue: float = MISSING
    match_min_overlap: int = MISSING
    min_information: float = MISSING
    scan_pvalue: float = MISSING
    kernel_logos: int = MISSING
    optimise_length: int = MISSING
    optimise_steps: int = MISSING
    optimise_lr: float = MISSING
    optimise_l2: float = MISSING
    attribution_top: int = MISSING
    attribution_regions: Optional[list[str]] = MISSING  # noqa: UP045
    attribution_logo: list[int] = MISSING
    attribution_batch: int = MISSING
    deeplift_top: int = MISSING
    deeplift_shuffles: int = MISSING
    deeplift_batch: int = MISSING
    modisco: bool = MISSING
    modisco_window: list[int] = MISSING
    modisco_sliding_window: int = MISSING
    modisco_flank: int = MISSING
    modisco_min_metacluster: int = MISSING
    modisco_max_seqlets: int = MISSING
    modisco_leiden_runs: int = MISSING
    modisco_min_cluster: int = MISSING
    modisco_trim_window: int = MISSING
    modisco_initial_flank: int = MISSING
    modisco_trim: float = MISSING
    metaplot_flank: int = MISSING
    metaplot_split: str = MISSING
    tts: Optional[str] = MISSING  # noqa: UP045
    gff: Optional[str] = MISSING  # noqa: UP045
    progress: bool = MISSING


@dataclass
class SigmaStageConfig:
    """sigma.stage: the budget of the sigma stage of `genometracks run`."""
    modes: list[str] = MISSING
    folds: int = MISSING
    match_shuffles: int = MISSING
    max_epochs: int = MISSING


@dataclass
class SigmaConfig:
    """conf/sigma: the sigma-class CNN's evaluation, logos and kernels, and the pipeline stage budget."""
    modes: list[str] = MISSING
    folds: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    class_weight: str = MISSING
    threads: int = MISSING
    logos: bool = MISSING
    logo_model: str = MISSING
    cams: list[str] = MISSING
    logo_heights: str = MISSING
    kernels: bool = MISSING
    kernel_base: Any = MISSING          # "bn" or a number > 1
    match_shuffles: int = MISSING
    motif_dir: Optional[str] = MISSING  # noqa: UP045
    stage: SigmaStageConfig = field(default_factory=SigmaStageConfig)


SCHEMAS: dict[str, type] = {"export": ExportConfig, "predict": PredictConfig, "interpret": InterpretConfig,
                            "sigma": SigmaConfig}


def register_schemas() -> None:
    """Store each schema as `<group>/schema` (idempotent; call before composing)."""
    store = ConfigStore.instance()
    for group, node in SCHEMAS.items():
        store.store(group=group, name="schema", node=node)
