"""Shared fixtures: Hydra config composition and the shared-data marker."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

from genometracks.io.paths import shared_data

ECOLI = shared_data() / "ecoli_k12"
needs_ecoli = pytest.mark.skipif(not ECOLI.exists(), reason=f"shared E. coli data not found at {ECOLI}")
# CI=true (as .ci/run sets it): a skipped test is a failure. The tests that skip elsewhere when a tool or
# data set is absent (kent tools, Chromium, IGV desktop, npm packages, the E. coli data) must run in CI;
# only a test marked `ci_may_skip` may skip there.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail") and not item.get_closest_marker("ci_may_skip"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where this test must run (CI=true): {reason}"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Synthetic genomes and indexes go to a per-session cache, never to the user's."""
    cache = tmp_path_factory.getbasetemp() / "gt_cache"
    monkeypatch.setenv("GENOMETRACKS_CACHE", str(cache))
    yield


@pytest.fixture(params=["compiled", "torch"])
def attention_kernel(request, monkeypatch):
    """Run a test on each CPU attention kernel of the fast path: genometracks' compiled one
    (genometracks/model/kernel.py; skipped where it cannot be built, a failure under CI) and
    PyTorch's flash-attention tiles (GENOMETRACKS_KERNEL=torch). Yields the kernel's name."""
    from genometracks.model import kernel

    if request.param == "torch":
        monkeypatch.setenv(kernel.SWITCH, "torch")
    else:
        monkeypatch.delenv(kernel.SWITCH, raising=False)
        if kernel.compiled() is None:
            pytest.skip("the compiled attention kernel could not be built here (g++ and ninja needed)")
    yield request.param


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
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from genometracks.cli import _register_resolvers
    from genometracks.io.paths import conf_dir

    _register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


# the smoke experiment's tiny model (1 layer, 2 heads, window 32) and its streams
TINY_MODEL = [
    "model.n_layer=1",
    "model.n_head=2",
    "model.d_model=16",
    "model.d_head=8",
    "model.window=32",
    "model.seg_len=64",
    "data.n_streams=4",
    "data.eval_streams=4",
]
# small interpretation budgets, for `genometracks run` (~30 s end to end)
TINY_INTERPRET = [
    "interpret.n_extreme=50",
    "interpret.optimise_steps=20",
    "interpret.attribution_top=20",
    "interpret.deeplift_top=20",
    "interpret.progress=false",
]
# a tiny, deterministic training budget: 1-layer model, 20 kb synthetic genome, 2 epochs (~10 s)
TINY = [
    "experiment=smoke",
    "data.generator.length=20000",
    "data.generator.n_contigs=1",
    "data.generator.density=0.004",
    *TINY_MODEL,
    "trainer.max_epochs=2",
    "task.checkpoint_every_n_steps=5",
    "trainer.enable_progress_bar=false",
    "task.warmup_steps=5",
]
# ... and small interpretation budgets, for `genometracks run` (~30 s end to end)
TINY_RUN = TINY + TINY_INTERPRET + ["predict.peaks.threshold=0.05"]


def cli(*args: str, env: dict | None = None, preexec_fn=None, timeout: int = 900) -> subprocess.CompletedProcess:
    """`genometracks <args>` in a fresh process (stdout, stderr captured as text)."""
    return subprocess.run(
        [sys.executable, "-m", "genometracks.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=preexec_fn,
        timeout=timeout,
    )


def kill_once_checkpointed(*args: str, run_dir) -> None:
    """Start `genometracks <args>` and SIGKILL it as soon as DIR/checkpoints/last.ckpt exists
    (mid-training: the checkpoint is written every task.checkpoint_every_n_steps steps)."""
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "genometracks.cli", *args, f"run_dir={run_dir}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists(), "the run ended before writing a mid-epoch checkpoint"


@contextlib.contextmanager
def run_dir_held(folder, command: str, without_flock: bool = False):
    """Another process holding `folder`'s run-directory lock (as a running job does) until the block ends;
    yields its Popen. `without_flock`: that process's file system answers flock() with ENOSYS (Lustre
    without -o flock), so it takes a POSIX record lock instead."""
    no_flock = "import errno, fcntl, os\ndef _no(*a):\n    raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))\nfcntl.flock = _no\n"
    script = (no_flock if without_flock else "") + (
        "import sys, pathlib; from genometracks.io.run_lock import run_dir_lock\n"
        f"with run_dir_lock(pathlib.Path({str(folder)!r}), {command!r}):\n"
        "    print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0


# The session's tiny planted-promoter model (tests/conftest_interpret.py), shared as a fixture.
from tests import conftest_interpret  # noqa: E402  (it imports compose from here)

trained_smoke = conftest_interpret.trained_smoke
