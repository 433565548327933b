"""Structured configs: the schema (keys and types) of every config group, registered in Hydra's
ConfigStore as `<group>/schema` and named first in each group file's defaults list. A group whose files
have different shapes (model: the Transformer-XL, the sigma CNN, a shipped model; data: a genome with
TSS labels, the sigma promoter windows) has one schema per shape, `<group>/schema_<shape>`, so that no
file carries keys of another shape (a model config is passed whole as keyword arguments to its class).
experiment/ and debug/ hold no schema: they are `@package _global_` patches of the groups above,
checked by those groups' schemas.

Every field is MISSING here (`@schema`): the values, defaults included, live only in conf/<group>/*.yaml, so a
default is written once. Composition then rejects an unknown key or a value of the wrong type with
Hydra's own message naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

_T = TypeVar("_T")


def schema(cls: type[_T]) -> type[_T]:
    """`@dataclass` with every field MISSING (`???`) unless it names its own default (a nested schema's
    default_factory), so that no value is written here: the values, defaults included, live in
    conf/<group>/*.yaml only."""
    for name in cls.__annotations__:
        if name not in vars(cls):
            setattr(cls, name, MISSING)
    return dataclass(cls)


# OmegaConf reads these annotations at run time and knows typing.Optional, not `X | None`


@schema
class ExportConfig:
    """conf/export: the UCSC hub and IGV session of `genometracks export`."""

    genome_mode: str  # assembly | genark
    genark_accession: str
    hub_name: str
    short_label: str
    long_label: str
    email: str
    organism: str


@schema
class GeneContextConfig:
    """predict.peaks.gene_context: the calls' classes against data.annotation (inference.gene_context)."""

    max_utr: int  # nt: longest 5'UTR of a primary or secondary TSS
    antisense_flank: int  # nt beyond a gene's ends on the other strand that still count as antisense


@schema
class PeaksConfig:
    """predict.peaks: TSS peak calls on the probability tracks."""

    threshold: Any  # a probability, or "auto" (validation F1-optimal)
    min_distance: int  # nt between peaks on one strand
    gene_context: GeneContextConfig = field(default_factory=GeneContextConfig)


@schema
class PredictConfig:
    """conf/predict: whole-genome prediction and peak calling."""

    n_streams: int
    logits: bool
    peaks: PeaksConfig = field(default_factory=PeaksConfig)


@schema
class InterpretConfig:
    """conf/interpret: what `genometracks interpret` computes (see the YAML for each key)."""

    parts: Optional[list[str]]  # noqa: UP045
    n_streams: int
    sample_fraction: float
    n_extreme: int
    motif_top: int
    motif_bootstrap: int
    motif_rank: str
    match_qvalue: float
    min_information: float
    hit_slack: int
    scan_qvalue: float
    kernel_logos: int
    optimise_length: int
    optimise_steps: int
    optimise_lr: float
    optimise_l2: float
    attribution_top: int
    attribution_regions: Optional[list[str]]  # noqa: UP045
    attribution_logo: list[int]
    attribution_batch: int
    deeplift_top: int
    deeplift_shuffles: int
    deeplift_batch: int
    modisco: bool
    modisco_window: list[int]
    modisco_sliding_window: int
    modisco_flank: int
    modisco_min_metacluster: int
    modisco_max_seqlets: int
    modisco_leiden_runs: int
    modisco_min_cluster: int
    modisco_trim_window: int
    modisco_initial_flank: int
    modisco_trim: float
    metaplot_flank: int
    metaplot_split: str
    tts: Optional[str]  # noqa: UP045
    gff: Optional[str]  # noqa: UP045
    progress: bool


@schema
class SigmaStageConfig:
    """sigma.stage: the budget of the sigma stage of `genometracks run`."""

    modes: list[str]
    folds: int
    max_epochs: int


@schema
class SigmaConfig:
    """conf/sigma: the sigma-class CNN's evaluation, logos and kernels, and the pipeline stage budget."""

    modes: list[str]
    folds: int
    batch_size: int
    lr: float
    weight_decay: float
    class_weight: str
    threads: int
    logos: bool
    logo_model: str
    cams: list[str]
    logo_heights: str
    kernels: bool
    kernel_base: Any  # "bn" or a number > 1
    motif_dir: Optional[str]  # noqa: UP045
    stage: SigmaStageConfig = field(default_factory=SigmaStageConfig)


@schema
class GeneratorConfig:
    """data.generator: the planted-promoter genome of data=synthetic (genometracks.labels.synthetic)."""

    length: int  # nt per contig
    n_contigs: int
    density: float  # promoters per nt per strand
    minus35: str
    minus10: str
    spacer: list[int]  # [shortest, longest] nt between the boxes
    tss_offset: int
    gc: float
    seed: int
    mutation_rate: float


@schema
class CurationConfig:
    """data.curation: the curated TSS set's rules."""

    priority: list[str]
    window: int  # nt
    min_support: int
    add_all_of: Optional[str]  # noqa: UP045


@schema
class DataConfig:
    """conf/data (custom, ecoli_k12, synthetic): a genome, its TSS labels and what the data set offers."""

    name: str
    fasta: Optional[str]  # noqa: UP045   null: generated (data.generator)
    tss: Optional[str]  # noqa: UP045
    circular: Optional[list[str]]  # noqa: UP045
    circular_tags: bool  # also circular: contigs whose FASTA header says circular=true / [topology=circular]
    labels: str
    aux_labels: list[str]  # label sets trained alongside `labels`, one extra model output each
    label_sets: list[str]
    shift: int
    # {test|validation|train: [[contig, start, end], ...]}, checked by data.streams.make_splits
    splits: Optional[dict[str, Any]]  # noqa: UP045
    curation: Optional[CurationConfig]  # noqa: UP045
    generator: Optional[GeneratorConfig]  # noqa: UP045
    n_streams: int
    eval_streams: int
    catalogue: bool
    organism: str
    annotation: Optional[str]  # noqa: UP045
    terminators: Optional[str]  # noqa: UP045
    motifs: Optional[str]  # noqa: UP045   a folder, or "planted"
    sigma_classes: bool


@schema
class NegativesConfig:
    """data.negatives of data=sigma_promoters: non-promoter windows."""

    ratio: float
    min_distance: int  # nt
    seed: Optional[int]  # noqa: UP045


@schema
class SigmaPromotersConfig:
    """conf/data/sigma_promoters.yaml: the sigma-class promoter windows (genometracks.sigma.data)."""

    name: str
    organism: str
    source: str  # regulondb | ipromoter2l | synthetic
    fasta: str
    circular: list[str]
    chrom: str
    promoterset: str
    ipromoter_dir: str
    confidence: list[str]
    classes: list[str]
    upstream: int  # nt
    downstream: int  # nt
    n_per_class: int
    negatives: NegativesConfig = field(default_factory=NegativesConfig)


@schema
class TransformerXLConfig:
    """conf/model (small, paper): genometracks.model.TransformerXL's arguments and the segment length."""

    _target_: str
    n_layer: int
    n_head: int
    d_model: int
    d_head: int
    conv_width: int
    window: int
    d_inner: int
    dropout: float
    per_head_conv: bool
    norm: str
    n_outputs: int
    seg_len: int


@schema
class SigmaCNNConfig:
    """conf/model/sigma_cnn.yaml: genometracks.sigma.model.SigmaCNN's arguments."""

    _target_: str
    channels: list[int]
    kernel_sizes: list[int]
    dropout: float


@schema
class ShippedModelConfig:
    """conf/model/<shipped>.yaml: a model shipped under genometracks/models/ (its card holds the rest)."""

    shipped: str


@schema
class TrainerConfig:
    """conf/trainer: pytorch_lightning.Trainer's arguments. `Any` where Lightning takes more than one
    type (an int counts batches, a float a fraction; devices may be "auto"; strategy a name or a config)."""

    _target_: str
    accelerator: str
    devices: Any
    num_nodes: int
    max_epochs: Optional[int]  # noqa: UP045
    max_steps: int
    limit_train_batches: Any
    val_check_interval: Any
    gradient_clip_val: Optional[float]  # noqa: UP045
    log_every_n_steps: int
    num_sanity_val_steps: int
    deterministic: Any  # true, false or "warn"
    enable_progress_bar: bool
    precision: Any
    strategy: Any
    fast_dev_run: Any  # false, true or a number of batches
    overfit_batches: Any


@schema
class TaskConfig:
    """conf/task: the training task (optimiser, schedule, loss, memory, checkpoints)."""

    lr: float
    weight_decay: float
    warmup_steps: int
    schedule: str
    loss: str
    pos_weight: float
    focal_gamma: float
    target_spread: int
    spread_decay: float
    aux_weight: float
    attention_path: str
    train_memory: bool
    early_stopping_patience: int
    test_split: bool
    logger: str
    init_from: Optional[str]  # noqa: UP045   a checkpoint or a shipped model.safetensors
    checkpoint_every_n_steps: int


# the schema each group's files name first in their defaults list (`- schema`) ...
SCHEMAS: dict[str, type] = {
    "export": ExportConfig,
    "predict": PredictConfig,
    "interpret": InterpretConfig,
    "sigma": SigmaConfig,
    "data": DataConfig,
    "model": TransformerXLConfig,
    "trainer": TrainerConfig,
    "task": TaskConfig,
}
# ... and the schemas of the group files of another shape, named `schema_<shape>` (group, name) → schema
SHAPES: dict[tuple[str, str], type] = {
    ("data", "schema_sigma"): SigmaPromotersConfig,
    ("model", "schema_sigma_cnn"): SigmaCNNConfig,
    ("model", "schema_shipped"): ShippedModelConfig,
}


def register_schemas() -> None:
    """Store each schema as `<group>/schema` or `<group>/schema_<shape>` (idempotent; call before composing)."""
    store = ConfigStore.instance()
    for group, node in SCHEMAS.items():
        store.store(group=group, name="schema", node=node)
    for (group, name), node in SHAPES.items():
        store.store(group=group, name=name, node=node)
