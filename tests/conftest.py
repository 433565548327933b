"""Shared fixtures: Hydra config composition and the shared-data marker."""
from __future__ import annotations


import pytest

from genometracks.paths import shared_data

ECOLI = shared_data() / "ecoli_k12"
needs_ecoli = pytest.mark.skipif(not ECOLI.exists(), reason=f"shared E. coli data not found at {ECOLI}")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Synthetic genomes and indexes go to a per-session cache, never to the user's."""
    cache = tmp_path_factory.getbasetemp() / "gt_cache"
    monkeypatch.setenv("GENOMETRACKS_CACHE", str(cache))
    yield


@pytest.fixture()
def one_thread():
    """Tiny tensors: one torch thread is faster and immune to a busy machine's thread contention."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def compose(*overrides: str):
    """The composed root config with `overrides`, as `genometracks <command>` would see it."""
    from hydra import compose as hydra_compose, initialize_config_dir

    from genometracks.cli import _register_resolvers
    from genometracks.paths import conf_dir

    _register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))
