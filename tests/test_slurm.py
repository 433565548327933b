"""The SLURM launcher against a real one-node SLURM cluster (../shared/tools/slurm/start; .ci/run starts
it): a 2-point CPU training sweep submitted as a real job array, each job's outputs read back."""
import json
import shutil
import subprocess

import pytest

from genometracks.training.checkpoint import load_model
from tests.conftest import TINY, cli

pytestmark = pytest.mark.slow


def _cluster_up() -> str | None:
    """None when sbatch can submit to an idle partition, else why not."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "sbatch/sinfo not installed (start the test cluster: ../shared/tools/slurm/start)"
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if state.returncode != 0 or "idle" not in state.stdout and "mix" not in state.stdout:
        return (f"no idle SLURM node (sinfo: {(state.stdout + state.stderr).strip()[:200]}); "
                "run ../shared/tools/slurm/start")
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _cluster_up()
    if reason:
        pytest.skip(reason)


def test_cpu_training_sweep_runs_as_a_slurm_job_array(slurm, tmp_path):
    tiny = [o for o in TINY if not o.startswith("model.n_layer=")]
    done = cli("train", "-m", "hydra/launcher=slurm", "hydra.launcher.partition=debug",
               "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=15",
               "trainer=cpu", *tiny, "model.n_layer=1,2", f"run_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    # submitit wrote one SLURM job per point (array job ids like 12_0, 12_1) and their logs
    logs = sorted(p.name for p in (tmp_path / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2, logs
    for job, n_layer in (("0", 1), ("1", 2)):
        metrics = json.loads((tmp_path / job / "metrics.json").read_text())
        assert metrics["model"]["n_layer"] == n_layer
        assert 0.0 <= metrics["test"]["both"]["roc_auc"] <= 1.0
        model, seg_len, _ = load_model(tmp_path / job / "checkpoints" / "best.ckpt")
        assert (model.n_layer, seg_len) == (n_layer, 64)
