"""Structured configs: the schema (keys and types) of every config group, registered in Hydra's
ConfigStore as `<group>/schema` and named first in each group file's defaults list. A group whose files
have different shapes (model: the Transformer-XL, the sigma CNN, a shipped model; data: a genome with
TSS labels, the sigma promoter windows) has one schema per shape, `<group>/schema_<shape>`, so that no
file carries keys of another shape (model and trainer configs are passed whole as keyword arguments).
experiment/ and debug/ hold no schema: they are `@package _global_` patches of the groups above,
checked by those groups' schemas.

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


@dataclass
class GeneratorConfig:
    """data.generator: the planted-promoter genome of data=synthetic (genometracks.labels.synthetic)."""
    length: int = MISSING               # nt per contig
    n_contigs: int = MISSING
    density: float = MISSING            # promoters per nt per strand
    minus35: str = MISSING
    minus10: str = MISSING
    spacer: list[int] = MISSING         # [shortest, longest] nt between the boxes
    tss_offset: int = MISSING
    gc: float = MISSING
    seed: int = MISSING
    mutation_rate: float = MISSING


@dataclass
class CurationConfig:
    """data.curation: the curated TSS set's rules."""
    priority: list[str] = MISSING
    window: int = MISSING               # nt
    min_support: int = MISSING
    add_all_of: Optional[str] = MISSING  # noqa: UP045


@dataclass
class DataConfig:
    """conf/data (custom, ecoli_k12, synthetic): a genome, its TSS labels and what the data set offers."""
    name: str = MISSING
    fasta: Optional[str] = MISSING  # noqa: UP045   null: generated (data.generator)
    tss: Optional[str] = MISSING  # noqa: UP045
    circular: Optional[list[str]] = MISSING  # noqa: UP045
    labels: str = MISSING
    label_sets: list[str] = MISSING
    shift: int = MISSING
    # {test|validation|train: [[contig, start, end], ...]}, checked by data.streams.make_splits
    splits: Optional[dict[str, Any]] = MISSING  # noqa: UP045
    curation: Optional[CurationConfig] = MISSING  # noqa: UP045
    generator: Optional[GeneratorConfig] = MISSING  # noqa: UP045
    n_streams: int = MISSING
    eval_streams: int = MISSING
    catalogue: bool = MISSING
    organism: str = MISSING
    annotation: Optional[str] = MISSING  # noqa: UP045
    terminators: Optional[str] = MISSING  # noqa: UP045
    motifs: Optional[str] = MISSING  # noqa: UP045   a folder, or "planted"
    sigma_classes: bool = MISSING


@dataclass
class NegativesConfig:
    """data.negatives of data=sigma_promoters: non-promoter windows."""
    ratio: float = MISSING
    min_distance: int = MISSING         # nt
    seed: Optional[int] = MISSING  # noqa: UP045


@dataclass
class SigmaPromotersConfig:
    """conf/data/sigma_promoters.yaml: the sigma-class promoter windows (genometracks.sigma.data)."""
    name: str = MISSING
    organism: str = MISSING
    source: str = MISSING               # regulondb | ipromoter2l | synthetic
    fasta: str = MISSING
    circular: list[str] = MISSING
    chrom: str = MISSING
    promoterset: str = MISSING
    ipromoter_dir: str = MISSING
    confidence: list[str] = MISSING
    classes: list[str] = MISSING
    upstream: int = MISSING             # nt
    downstream: int = MISSING           # nt
    n_per_class: int = MISSING
    negatives: NegativesConfig = field(default_factory=NegativesConfig)


@dataclass
class TransformerXLConfig:
    """conf/model (small, paper): genometracks.model.TransformerXL's arguments and the segment length."""
    _target_: str = MISSING
    n_layer: int = MISSING
    n_head: int = MISSING
    d_model: int = MISSING
    d_head: int = MISSING
    conv_width: int = MISSING
    window: int = MISSING
    d_inner: int = MISSING
    dropout: float = MISSING
    per_head_conv: bool = MISSING
    norm: str = MISSING
    seg_len: int = MISSING


@dataclass
class SigmaCNNConfig:
    """conf/model/sigma_cnn.yaml: genometracks.sigma.model.SigmaCNN's arguments."""
    _target_: str = MISSING
    channels: list[int] = MISSING
    kernel_sizes: list[int] = MISSING
    dropout: float = MISSING


@dataclass
class ShippedModelConfig:
    """conf/model/<shipped>.yaml: a model shipped under genometracks/models/ (its card holds the rest)."""
    shipped: str = MISSING


@dataclass
class TrainerConfig:
    """conf/trainer: pytorch_lightning.Trainer's arguments. `Any` where Lightning takes more than one
    type (an int counts batches, a float a fraction; devices may be "auto"; strategy a name or a config)."""
    _target_: str = MISSING
    accelerator: str = MISSING
    devices: Any = MISSING
    num_nodes: int = MISSING
    max_epochs: Optional[int] = MISSING  # noqa: UP045
    max_steps: int = MISSING
    limit_train_batches: Any = MISSING
    val_check_interval: Any = MISSING
    gradient_clip_val: Optional[float] = MISSING  # noqa: UP045
    log_every_n_steps: int = MISSING
    num_sanity_val_steps: int = MISSING
    deterministic: Any = MISSING        # true, false or "warn"
    enable_progress_bar: bool = MISSING
    precision: Any = MISSING
    strategy: Any = MISSING
    fast_dev_run: Any = MISSING         # false, true or a number of batches
    overfit_batches: Any = MISSING


@dataclass
class TaskConfig:
    """conf/task: the training task (optimiser, schedule, loss, memory, checkpoints)."""
    lr: float = MISSING
    weight_decay: float = MISSING
    warmup_steps: int = MISSING
    schedule: str = MISSING
    loss: str = MISSING
    pos_weight: float = MISSING
    focal_gamma: float = MISSING
    attention_path: str = MISSING
    train_memory: bool = MISSING
    early_stopping_patience: int = MISSING
    test_split: bool = MISSING
    logger: str = MISSING
    init_from: Optional[str] = MISSING  # noqa: UP045   a checkpoint or a shipped model.safetensors
    checkpoint_every_n_steps: int = MISSING


# the schema each group's files name first in their defaults list (`- schema`) ...
SCHEMAS: dict[str, type] = {"export": ExportConfig, "predict": PredictConfig, "interpret": InterpretConfig,
                            "sigma": SigmaConfig, "data": DataConfig, "model": TransformerXLConfig,
                            "trainer": TrainerConfig, "task": TaskConfig}
# ... and the schemas of the group files of another shape, named `schema_<shape>` (group, name) → schema
SHAPES: dict[tuple[str, str], type] = {("data", "schema_sigma"): SigmaPromotersConfig,
                                       ("model", "schema_sigma_cnn"): SigmaCNNConfig,
                                       ("model", "schema_shipped"): ShippedModelConfig}


def register_schemas() -> None:
    """Store each schema as `<group>/schema` or `<group>/schema_<shape>` (idempotent; call before composing)."""
    store = ConfigStore.instance()
    for group, node in SCHEMAS.items():
        store.store(group=group, name="schema", node=node)
    for (group, name), node in SHAPES.items():
        store.store(group=group, name=name, node=node)
