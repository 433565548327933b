"""Every config group composes, and every model config instantiates a working model."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from genometracks.io.paths import conf_dir
from tests.conftest import compose


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_experiments_compose_and_resolve(experiment, tmp_path):
    cfg = compose(f"experiment={experiment}", f"run_dir={tmp_path}")
    OmegaConf.resolve(cfg)
    assert cfg.run_dir == str(tmp_path)
    assert cfg.data.name and cfg.model._target_


SHIPPED = [m for m in _options("model") if "shipped" in OmegaConf.load(conf_dir() / "model" / f"{m}.yaml")]


# model=shipped is every shipped model's config with the name left to fill (tests/test_predict.py)
@pytest.mark.parametrize("model", [m for m in _options("model") if m not in ("sigma_cnn", "shipped") and m not in SHIPPED])
def test_model_configs_instantiate(model):
    import torch

    from genometracks.training.train import build_model

    cfg = compose(f"model={model}")
    net = build_model(cfg.model)
    assert net.lookahead == cfg.model.n_layer * (cfg.model.conv_width // 2)
    tokens = torch.randint(0, 5, (2, 40 + net.lookahead))
    logits, _ = net(tokens, net.init_memory(2), torch.ones(2, dtype=torch.bool))
    assert logits.shape == (2, 40)


def test_paper_model_matches_the_paper():
    cfg = compose("model=paper")
    assert (
        cfg.model.n_layer,
        cfg.model.n_head,
        cfg.model.d_model,
        cfg.model.d_head,
        cfg.model.conv_width,
        cfg.model.seg_len,
        cfg.model.window,
    ) == (6, 6, 32, 32, 7, 512, 512)


def test_shared_data_default_points_beside_checkout():
    cfg = compose()
    assert Path(cfg.paths.shared_data).name == "data"
    assert cfg.data.fasta.endswith("ecoli_k12/genome/NC_000913.3.fa")


@pytest.mark.parametrize("launcher", ["slurm", "local"])
@pytest.mark.parametrize("trainer, gpus", [("ddp_cpu", None), ("cpu", None), ("ddp_gpu", 4), ("gpu", 1)])
def test_launchers_compose(launcher, trainer, gpus):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from genometracks.cli import _register_resolvers

    _register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=[f"hydra/launcher={launcher}", f"trainer={trainer}"], return_hydra_config=True)
    launcher_cfg = cfg.hydra.launcher
    assert "submitit" in launcher_cfg._target_
    if launcher == "slurm":
        # Lightning on SLURM: one task per device, nodes = trainer.num_nodes; GPUs only for a GPU trainer
        # (a CPU job asking for gres is refused by sbatch on a node without GPUs)
        assert launcher_cfg.tasks_per_node == cfg.trainer.devices
        assert launcher_cfg.gpus_per_node == gpus
        assert launcher_cfg.nodes == cfg.trainer.num_nodes


@pytest.mark.parametrize("model", SHIPPED)
def test_shipped_model_configs_load(model):
    from genometracks.inference.shipped import resolve_model

    source = resolve_model(compose(f"model={model}"), Path("unused"))
    assert source.card["name"] == model and 0 < source.threshold < 1


def test_structured_configs_type_the_fixed_groups(tmp_path):
    from hydra.errors import ConfigCompositionException
    from omegaconf import OmegaConf

    from genometracks.io.schema import SCHEMAS

    cfg = compose("experiment=smoke", f"run_dir={tmp_path}")
    for group, schema in SCHEMAS.items():
        assert OmegaConf.get_type(cfg[group]) is schema, group
    assert cfg.export.organism == cfg.data.organism  # the data set declares its organism
    with pytest.raises(ConfigCompositionException):
        compose("experiment=smoke", f"run_dir={tmp_path}", "interpret.n_streams=four")


# a group file is selected by `group=option`; these need another group's file beside them to compose
BESIDE = {("data", "sigma_promoters"): ["experiment=sigma_cnn"], ("model", "sigma_cnn"): ["experiment=sigma_cnn"]}
TYPED_GROUPS = ["data", "model", "task", "trainer", "predict", "export", "interpret", "sigma"]


@pytest.mark.parametrize("group, option", [(g, o) for g in [*TYPED_GROUPS, "debug"] for o in _options(g)])
def test_every_shipped_yaml_composes_under_the_schema_it_names(group, option, tmp_path):
    from genometracks.io.schema import SCHEMAS, SHAPES

    cfg = compose(*BESIDE.get((group, option), []), f"{group}={option}", f"run_dir={tmp_path}")
    OmegaConf.resolve(cfg)
    if group == "debug":  # a `@package _global_` patch of the typed groups
        return
    first = OmegaConf.load(conf_dir() / group / f"{option}.yaml").defaults[0]
    expected = SCHEMAS[group] if first == "schema" else SHAPES[(group, first)]
    assert OmegaConf.get_type(cfg[group]) is expected


# (group, the overrides that select a file of one shape, one of its keys, a value of the wrong type)
SHAPE_CASES = [
    ("data", [], "n_streams", "four"),
    ("data", ["data=custom"], "catalogue", "perhaps"),
    ("data", ["data=synthetic"], "generator.length", "long"),
    ("data", ["experiment=sigma_cnn"], "upstream", "far"),
    ("model", [], "n_layer", "three"),
    ("model", ["experiment=sigma_cnn"], "kernel_sizes", "[wide]"),
    ("model", ["model=ecoli_k12"], "shipped", "[one, two]"),
    ("trainer", [], "max_epochs", "three"),
    ("trainer", ["trainer=ddp_cpu"], "enable_progress_bar", "perhaps"),
    ("task", [], "lr", "fast"),
]


@pytest.mark.parametrize("fault", ["unknown key", "wrong type"])
@pytest.mark.parametrize("group, select, key, wrong", SHAPE_CASES)
def test_schemas_refuse_a_typo_in_yaml_naming_the_key(tmp_path, group, select, key, wrong, fault):
    """A YAML patch (as an experiment or debug file writes one) with an unknown key or a wrongly typed
    value is refused at composition, with Hydra's message naming the key (without the schema both pass)."""
    from hydra.errors import ConfigCompositionException

    *parents, leaf = key.split(".")
    name = f"{leaf}_typo" if fault == "unknown key" else leaf
    value = 1 if fault == "unknown key" else wrong
    body = "".join(f"{'  ' * depth}{part}:\n" for depth, part in enumerate([group, *parents]))
    (tmp_path / "debug").mkdir()
    (tmp_path / "debug" / "typo.yaml").write_text(f"# @package _global_\n{body}{'  ' * (len(parents) + 1)}{name}: {value}\n")
    full_key = ".".join([group, *parents, name])
    with pytest.raises(ConfigCompositionException, match=rf"full_key: {full_key}(\[0\])?\n") as err:
        compose(f"hydra.searchpath=[file://{tmp_path}]", *select, "debug=typo", f"run_dir={tmp_path}")
    assert ("not in" if fault == "unknown key" else str(wrong).strip("[]").split(",")[0]) in str(err.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("data.n_streams=four", "data.n_streams"),
        ("model.window=wide", "model.window"),
        ("trainer.num_nodes=many", "trainer.num_nodes"),
        ("task.train_memory=perhaps", "task.train_memory"),
    ],
)
def test_schemas_refuse_a_wrongly_typed_override_naming_the_key(tmp_path, override, key):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as err:
        compose("experiment=smoke", f"run_dir={tmp_path}", override)
    assert f"full_key: {key}" in str(err.value.__cause__)


def test_smoke_experiment_on_a_custom_genome_reads_its_fasta(tmp_path):
    """experiment=smoke sets data.generator.*; with data=custom the user's FASTA is the genome (the
    README's `train experiment=smoke data=custom ...`), not a generated one."""
    from genometracks.data.dataset import generates_genome, open_genome

    fasta, bed = tmp_path / "g.fa", tmp_path / "t.bed"
    fasta.write_text(">chrA\n" + "ACGTTGCA" * 25 + "\n")
    bed.write_text("chrA\t10\t11\tt1\t0\t+\n")
    cfg = compose("experiment=smoke", "data=custom", f"data.fasta={fasta}", f"data.tss={bed}", f"run_dir={tmp_path}")
    assert cfg.data.generator.length == 100000  # the experiment's settings are there, and do not apply
    genome, path, tss = open_genome(cfg)
    assert (list(genome.contigs), genome.contigs["chrA"].length, path, tss) == (["chrA"], 200, fasta, bed)
    assert not generates_genome(cfg.data) and generates_genome(compose("experiment=smoke").data)


def test_schemas_hold_no_values():
    """Every schema field is MISSING (or a nested schema): the defaults live in the YAML only."""
    import dataclasses

    from omegaconf import MISSING

    from genometracks.io.schema import SCHEMAS, SHAPES

    for schema in [*SCHEMAS.values(), *SHAPES.values()]:
        for item in dataclasses.fields(schema):
            nested = item.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(item.default_factory)
            assert item.default is MISSING or nested, f"{schema.__name__}.{item.name}"
