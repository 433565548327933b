"""The SLURM launcher against a real one-node SLURM cluster (../shared/tools/slurm/start; .ci/run starts
it): a 2-point CPU training sweep and a 3-genome predict, each submitted as a real job array, each job's
outputs read back."""

import json
import shutil
import subprocess

import pytest

from genometracks.training.checkpoint import load_model
from tests.conftest import TINY, cli

pytestmark = pytest.mark.slow
# the SLURM launcher sized for the one-node test cluster (partition debug, 2 CPUs)
ON_TEST_NODE = ("hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2")


def _cluster_up() -> str | None:
    """None when sbatch can submit to an idle partition, else why not."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "sbatch/sinfo not installed (start the test cluster: ../shared/tools/slurm/start)"
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if state.returncode != 0 or "idle" not in state.stdout and "mix" not in state.stdout:
        return f"no idle SLURM node (sinfo: {(state.stdout + state.stderr).strip()[:200]}); run ../shared/tools/slurm/start"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _cluster_up()
    if reason:
        pytest.skip(reason)


def test_cpu_training_sweep_runs_as_a_slurm_job_array(slurm, tmp_path):
    tiny = [o for o in TINY if not o.startswith("model.n_layer=")]
    done = cli(
        "train",
        "-m",
        *ON_TEST_NODE,
        "hydra.launcher.timeout_min=15",
        "trainer=cpu",
        *tiny,
        "model.n_layer=1,2",
        f"run_dir={tmp_path}",
    )
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


def test_a_job_sbatch_refuses_is_one_line_naming_what_to_check(slurm, tmp_path):
    done = cli("train", "-m", *ON_TEST_NODE, "hydra.launcher.partition=nosuch", *TINY, f"run_dir={tmp_path}", timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("genometracks: error: the scheduler refused the job(s): sbatch: error: invalid partition specified: nosuch")


def test_ddp_training_runs_as_one_slurm_task_per_rank(slurm, tmp_path):
    # two tasks of one job, one rank each: rank 1 took the run directory's lock that rank 0 held and
    # stopped ("in use by genometracks train"); with start_method=spawn each task forked ranks of its own
    done = cli(
        "train",
        "-m",
        *ON_TEST_NODE,
        "hydra.launcher.timeout_min=10",
        "trainer=ddp_cpu",
        *TINY,
        "trainer.max_epochs=1",
        f"run_dir={tmp_path}",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    logs = {p.name: p.read_text() for p in (tmp_path / ".submitit").rglob("*_log.*")}
    assert sum("global_rank=1(2)" in text for text in logs.values()) == 1  # two tasks: ranks 0 and 1 of 2
    assert not any("in use by genometracks" in text for text in logs.values())
    metrics = json.loads((tmp_path / "0" / "metrics.json").read_text())
    assert metrics["test"]["both"]["n_positions"] == 4000  # both ranks' streams gathered
    assert (tmp_path / "0" / "checkpoints" / "best.ckpt").is_file()


def test_three_genome_predict_runs_as_a_slurm_job_array(slurm, tmp_path):
    """`genometracks predict manifest=... hydra/launcher=slurm`: one SLURM job per genome (the shipped
    model, no training), then the summary and one hub; every job's tracks read back."""
    import re

    import numpy as np
    import pyBigWig

    from tests.collection_run import GENOMES, stub_env, summary_rows, write_fasta
    from tests.kent import assert_hub_clean

    for seed, (name, contigs) in enumerate(GENOMES.items()):
        write_fasta(tmp_path / f"{name}.fa", contigs, seed)
    manifest = tmp_path / "genomes.tsv"
    manifest.write_text("".join(f"{n}\t{n}.fa\n" for n in GENOMES))
    coll = tmp_path / "coll"
    done = cli(
        "predict",
        f"manifest={manifest}",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=debug",
        f"run_dir={coll}",
        env=stub_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # a genome's job is sized for predict, not for training (8 CPUs and 32 GB waited forever on this node)
    script = next((coll / ".submitit").rglob("*_submission.sh")).read_text()
    for line in ("#SBATCH --cpus-per-task=2", "#SBATCH --mem=4GB", "#SBATCH --time=60", "#SBATCH --job-name=genometracks_predict"):
        assert line in script, script
    logs = sorted(p.name for p in (coll / ".submitit").rglob("*_log.out"))
    assert len(logs) == 3 and len({re.match(r"(\d+)_", name).group(1) for name in logs}) == 1, logs  # one array
    rows = summary_rows(coll)
    for name, contigs in GENOMES.items():
        assert rows[name]["status"] == "ok", rows[name]
        assert int(rows[name]["positions"]) == 2 * sum(n for _, n in contigs.values())
        for strand in ("plus", "minus"):
            with pyBigWig.open(str(coll / name / "tracks" / f"tss.{strand}.bw")) as bw:
                assert dict(bw.chroms()) == {c: n for c, (_, n) in contigs.items()}
                values = np.concatenate([np.asarray(bw.values(c, 0, n)) for c, (_, n) in contigs.items()])
                assert np.isfinite(values).all() and 0.0 < values.max() < 1.0
        peaks = (coll / name / "tracks" / "tss_peaks.bed").read_text().splitlines()
        assert int(rows[name]["peaks"]) == len(peaks) > 0
    assert re.findall(r"^genome (\S+)$", (coll / "hub" / "genomes.txt").read_text(), re.M) == list(GENOMES)
    assert_hub_clean(coll / "hub")


def test_mem_per_cpu_or_gpu_replaces_the_default_mem(slurm, tmp_path):
    """sbatch refuses --mem beside --mem-per-cpu; the launcher's mem_gb (32) and a collection's (4/8) went
    with every job, so a mem_per_cpu= typed by the user failed every job."""
    from genometracks.collection.launch import slurm_job_overrides

    assert "hydra.launcher.mem_gb=4" in slurm_job_overrides("predict", ["hydra/launcher=slurm"])
    chosen = slurm_job_overrides("predict", ["hydra/launcher=slurm", "hydra.launcher.mem_per_cpu=1G"])
    assert not any(o.startswith("hydra.launcher.mem_gb=") for o in chosen) and "hydra.launcher.cpus_per_task=2" in chosen
    sized = [o for o in ON_TEST_NODE if not o.startswith("hydra.launcher.mem_gb=")]
    done = cli(
        "train",
        "-m",
        *sized,
        "hydra.launcher.mem_per_cpu=1G",
        "hydra.launcher.timeout_min=10",
        *TINY,
        "trainer.max_epochs=1",
        f"run_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "0" / "metrics.json").is_file()
    script = next((tmp_path / ".submitit").rglob("*_submission.sh")).read_text()
    assert "#SBATCH --mem-per-cpu=1G" in script and "#SBATCH --mem=" not in script
