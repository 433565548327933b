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


@pytest.mark.parametrize("model", [m for m in _options("model") if m != "sigma_cnn" and m not in SHIPPED])
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
    assert (cfg.model.n_layer, cfg.model.n_head, cfg.model.d_model, cfg.model.d_head,
            cfg.model.conv_width, cfg.model.seg_len, cfg.model.window) == (6, 6, 32, 32, 7, 512, 512)


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
        cfg = hydra_compose(config_name="config", overrides=[f"hydra/launcher={launcher}", f"trainer={trainer}"],
                            return_hydra_config=True)
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
