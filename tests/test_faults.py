"""The fault suite: `genometracks run` end to end on a tiny synthetic budget, re-run and resumed
after kills at exact moments (mid-training, mid-bigWig write, mid-hub swap) and under a full disk.

Each case checks the same invariant: a killed or failed job leaves every earlier output whole (byte
for byte where it was finished), a hub or IGV session never names a missing file, and a plain re-run
of the same command finishes the run without manual cleanup. Kills use SIGKILL (no Python clean-up
runs); exact kill points come from `GENOMETRACKS_KILL_AT` (genometracks/io/faults.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import resource
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pyBigWig
import pytest

from genometracks.pipeline import STAGES
from tests.conftest import TINY_RUN, cli, kill_once_checkpointed
from tests.kent import assert_hub_clean

LEFTOVER = re.compile(r"^\..*(\.tmp|\.staging-|\.old-)")


def run(run_dir: Path, *extra: str, env: dict | None = None, preexec_fn=None) -> subprocess.CompletedProcess:
    return cli("run", *TINY_RUN, *extra, f"run_dir={run_dir}", env=env, preexec_fn=preexec_fn)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(run_dir: Path) -> list[str]:
    """Temporary files or staging folders anywhere under the run directory."""
    return [str(p.relative_to(run_dir)) for p in run_dir.rglob(".*") if LEFTOVER.match(p.name)]


def assert_browser_files_whole(run_dir: Path) -> None:
    """Whatever hub and IGV session exist validate and name only existing, readable files."""
    for hub in ("hub", "hub_genark"):
        if (run_dir / hub).exists():
            assert_hub_clean(run_dir / hub)
    session = run_dir / "igv" / "session.xml"
    if session.exists():
        for resource_ in ET.parse(session).getroot().iter("Resource"):
            for key in ("path", "index"):
                if resource_.get(key):
                    target = (session.parent / resource_.get(key)).resolve()
                    assert target.is_file() and target.stat().st_size > 0, target
    for bw in (run_dir / "tracks").glob("*.bw"):
        handle = pyBigWig.open(str(bw))
        assert handle is not None and handle.chroms() == {"syn1": 20000}, bw
        handle.close()


def stages_done(run_dir: Path) -> set[str]:
    return {p.stem for p in (run_dir / "stages").glob("*.json")}


pytestmark = pytest.mark.slow  # runs the whole pipeline in subprocesses and kills it


@pytest.fixture(scope="module")
def complete(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    run_dir = tmp_path_factory.mktemp("complete") / "run"
    done = run(run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir, done


def test_run_end_to_end_writes_report_hub_and_session(complete):
    run_dir, done = complete
    assert stages_done(run_dir) == set(STAGES)
    for stage in STAGES:
        assert re.search(rf"^{stage}\s+(ran|skipped)\s", done.stdout, re.M), stage  # the summary table
    assert_browser_files_whole(run_dir)
    assert leftovers(run_dir) == []
    trackdb = (run_dir / "hub" / "synthetic" / "trackDb.txt").read_text()
    for name in ("tss_plus.bw", "tss_minus.bw", "tss_peaks.bb", "motif_hits.bb"):
        assert f"bigDataUrl {name}" in trackdb
    report = (run_dir / "report.html").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())["test"]["both"]
    assert f"{metrics['roc_auc']:.3f}" in report
    assert (run_dir / "overrides.txt").read_text().split() == TINY_RUN


def test_rerun_skips_finished_stages_and_rewrites_nothing(complete, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(complete[0], run_dir)
    before = {p: digest(p) for p in run_dir.rglob("*") if p.is_file() and "stages" not in p.parts}
    done = run(run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done earlier, skipped") == len(STAGES)
    for path, value in before.items():
        if path.name not in {"cli.log", "config.yaml", "overrides.yaml", "hydra.yaml", ".genometracks.lock"}:  # this job's logs and lock
            assert digest(path) == value, path


def test_one_stage_reruns_alone(complete, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(complete[0], run_dir)
    peaks = run_dir / "tracks" / "tss_peaks.bed"
    peaks.write_text("")
    done = run(run_dir, "stages=[peaks]")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[1/1] peaks ..." in done.stdout and "train" not in done.stdout
    assert peaks.read_text() == (complete[0] / "tracks" / "tss_peaks.bed").read_text() != ""
    # the report described the outputs before this stage ran again: removed, not left as if current
    assert "report.html and report.md removed" in done.stdout
    assert not (run_dir / "report.html").exists() and not (run_dir / "report.md").exists()
    again = run(run_dir)  # the later stages, the report among them, run again
    assert again.returncode == 0 and (run_dir / "report.html").is_file(), again.stderr[-3000:]


def test_a_changed_setting_runs_its_stage_and_every_later_one_again(complete, tmp_path):
    # a finished run with another peak threshold: every stage was "done earlier, skipped" and the old
    # peaks stayed; and a stage run again alone left the later stages marked finished on old inputs
    run_dir = tmp_path / "run"
    shutil.copytree(complete[0], run_dir)
    old_peaks = (run_dir / "tracks" / "tss_peaks.bed").read_text()
    done = run(run_dir, "predict.peaks.threshold=0.2")
    assert done.returncode == 0, done.stderr[-3000:]
    skipped = re.findall(r"\] (\w+): done earlier, skipped", done.stdout)
    assert skipped == ["data", "train", "predict"], done.stdout
    assert "peaks ... (its settings changed since it ran)" in done.stdout
    assert (run_dir / "tracks" / "tss_peaks.bed").read_text() != old_peaks
    assert stages_done(run_dir) == set(STAGES)
    again = run(run_dir, "predict.peaks.threshold=0.2")  # the same settings: nothing runs
    assert again.returncode == 0 and again.stdout.count("done earlier, skipped") == len(STAGES)


def test_kills_during_training_bigwig_writing_and_hub_swap_then_resume(complete, tmp_path):
    run_dir = tmp_path / "run"
    # 1. SIGKILL while training, once the mid-epoch checkpoint exists
    kill_once_checkpointed("run", *TINY_RUN, run_dir=run_dir)
    assert stages_done(run_dir) == {"data"}

    # 2. resume; SIGKILL with the + strand bigWig written and the - strand one complete but not renamed
    done = run(run_dir, env={"GENOMETRACKS_KILL_AT": "write:tss.minus.bw"})
    assert done.returncode == -signal.SIGKILL
    assert "done earlier, skipped" in done.stdout and stages_done(run_dir) == {"data", "train"}
    assert (run_dir / "tracks" / "tss.plus.bw").is_file() and not (run_dir / "tracks" / "tss.minus.bw").exists()
    assert_browser_files_whole(run_dir)

    # 3. resume; SIGKILL with the hub built in its staging folder but not yet swapped in
    done = run(run_dir, env={"GENOMETRACKS_KILL_AT": "stage:hub"})
    assert done.returncode == -signal.SIGKILL
    assert "export" not in stages_done(run_dir) and not (run_dir / "hub").exists()
    assert any(".hub.staging-" in name for name in leftovers(run_dir))
    assert_browser_files_whole(run_dir)

    # 4. a plain re-run finishes, cleans up, and training resumed to the unbroken run's result
    done = run(run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert stages_done(run_dir) == set(STAGES) and leftovers(run_dir) == []
    assert_browser_files_whole(run_dir)
    got = json.loads((run_dir / "metrics.json").read_text())["test"]["both"]
    expected = json.loads((complete[0] / "metrics.json").read_text())["test"]["both"]
    assert got["roc_auc"] == pytest.approx(expected["roc_auc"], abs=1e-6)


def test_kill_during_export_keeps_the_previous_hub(complete, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(complete[0], run_dir)
    hub_before = {p.relative_to(run_dir): digest(p) for p in (run_dir / "hub").rglob("*") if p.is_file()}
    done = run(run_dir, "stages=[export]", env={"GENOMETRACKS_KILL_AT": "stage:hub"})
    assert done.returncode == -signal.SIGKILL
    assert {p.relative_to(run_dir): digest(p) for p in (run_dir / "hub").rglob("*") if p.is_file()} == hub_before
    assert_browser_files_whole(run_dir)
    done = run(run_dir, "stages=[export]")
    assert done.returncode == 0 and leftovers(run_dir) == []
    assert_browser_files_whole(run_dir)


def test_full_disk_during_bigwig_writing_fails_clearly_and_keeps_previous_tracks(complete, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(complete[0], run_dir)
    tracks = {p.name: digest(p) for p in (run_dir / "tracks").iterdir()}

    def small_file_limit():  # 64 KiB per file: logs fit, a bigWig of 20 kb does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    done = run(run_dir, "stages=[predict]", preexec_fn=small_file_limit)
    assert done.returncode != 0
    assert "tss.plus.bw" in done.stderr and "ulimit -f" in done.stderr
    assert {p.name: digest(p) for p in (run_dir / "tracks").iterdir()} == tracks
    assert leftovers(run_dir) == [] and "predict" in stages_done(run_dir)  # the earlier marker stays


def test_other_configuration_on_the_same_run_directory_is_refused(complete, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(complete[0], run_dir)
    done = cli("run", "stages=[predict]", f"run_dir={run_dir}")  # default data: E. coli, not synthetic
    assert done.returncode != 0
    assert "data.name was 'synthetic', now 'ecoli_k12'" in done.stderr
    assert "experiment=smoke" in done.stderr  # the overrides the run was made with


def test_trainer_settings_that_change_the_model_are_part_of_the_train_stage(tmp_path):
    """`run trainer.max_epochs=3` on a run finished with 2 epochs skipped every stage without a word."""
    from genometracks.io.run_config import main_job_overrides
    from genometracks.pipeline import stage_settings
    from tests.conftest import compose

    def train_print(*overrides):
        return stage_settings(compose(*overrides, f"run_dir={tmp_path}"), "train")

    trained = train_print(*TINY_RUN)
    assert train_print(*TINY_RUN, "trainer.max_epochs=3") != trained
    assert train_print(*TINY_RUN, "trainer.overfit_batches=2") != trained
    assert train_print(*TINY_RUN, "trainer.enable_progress_bar=true") == trained  # how it runs, not what it makes
    assert train_print(*TINY_RUN, "trainer.precision=bf16-mixed") == trained  # a GPU run continued on a CPU node
    shipped = main_job_overrides([])  # the shipped model: the trainer makes nothing, its settings do not count
    assert train_print(*shipped, "trainer.max_epochs=3") == train_print(*shipped)
    # a train marker of session 18 and before (no trainer settings in it) is no change with the same data,
    # model and task: such run directories do not run every stage again
    from genometracks.pipeline import _settings_changed, stage_marker

    cfg = compose(*TINY_RUN, f"run_dir={tmp_path}")
    marker = stage_marker(tmp_path, "train")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"settings": stage_settings(cfg, "train", trainer=False)}))
    assert not _settings_changed(cfg, tmp_path, "train")
    assert _settings_changed(compose(*TINY_RUN, "model.window=16", f"run_dir={tmp_path}"), tmp_path, "train")
    marker.write_text(json.dumps({"settings": trained}))
    assert not _settings_changed(cfg, tmp_path, "train")
    assert _settings_changed(compose(*TINY_RUN, "trainer.max_epochs=3", f"run_dir={tmp_path}"), tmp_path, "train")


def test_a_stage_whose_outputs_changed_with_the_code_is_redone_once(tmp_path, monkeypatch):
    """The sigma stage of a run directory made before session 20 kept logos taken before the last batch norm
    and kernel matches with the old q-values: its outputs' version is part of the fingerprint, so such a run
    redoes sigma and the stages after it (and its sigma CNN retrains), and nothing before."""
    from genometracks import pipeline
    from genometracks.sigma import stage as sigma_stage
    from tests.conftest import compose

    cfg = compose(*TINY_RUN, f"run_dir={tmp_path}")
    current = {stage: pipeline.stage_settings(cfg, stage) for stage in pipeline.STAGES}
    sig = compose("experiment=sigma_cnn")
    retrain = sigma_stage.trained_with(sig)
    monkeypatch.setattr(pipeline, "OUTPUT_VERSIONS", {})
    monkeypatch.setattr(sigma_stage, "SIGMA_OUTPUTS", 1)
    assert sigma_stage.trained_with(sig) != retrain
    for stage in pipeline.STAGES:
        marker = pipeline.stage_marker(tmp_path, stage)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"settings": pipeline.stage_settings(cfg, stage)}))  # as written before
    monkeypatch.undo()
    assert [s for s in pipeline.STAGES if current[s] != json.loads(pipeline.stage_marker(tmp_path, s).read_text())["settings"]] == ["sigma"]
    planned = pipeline.plan(None, tmp_path, cfg=cfg)
    assert [stage for stage, again in planned if again] == ["sigma", "export", "validate", "report"]


def test_a_train_stage_that_cannot_continue_is_refused_before_the_later_stages_are_undone(tmp_path):
    """`run task.lr=0.01` on a finished run: the train stage would continue checkpoints/last.ckpt with another
    learning rate and was refused ("resume=true continues ...", a flag the user never gave) after the markers
    of predict..report had been removed, so the next run made them all again."""
    from omegaconf import OmegaConf

    from genometracks import pipeline
    from genometracks.data.dataset import ConfigError
    from genometracks.io.rundir import RunDir
    from tests.conftest import compose

    made = compose(*TINY_RUN, f"run_dir={tmp_path}")
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(made, resolve=True))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"a checkpoint")
    for stage in pipeline.STAGES:
        marker = pipeline.stage_marker(tmp_path, stage)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"settings": pipeline.stage_settings(made, stage)}))
    changed = compose(*TINY_RUN, "task.lr=0.01", f"run_dir={tmp_path}")
    with pytest.raises(
        ConfigError,
        match=r"`run` continues the training in .*last\.ckpt \(its settings changed since it ran\), but task\.lr was 0\.003, now 0\.01",
    ):
        pipeline._run_stages(changed, RunDir(tmp_path), pipeline.STAGES)
    assert all(pipeline.stage_marker(tmp_path, stage).exists() for stage in pipeline.STAGES)


def test_a_moved_run_directory_keeps_its_best_score_on_resume(tmp_path):
    """`cp -a RUN RUN2` then resume=true in RUN2: Lightning dropped best_model_score (the folder's name
    changed), so the next validation replaced best.ckpt with a worse model."""
    import torch

    from genometracks.training.checkpoint import AtomicCheckpoint

    old, new = tmp_path / "E" / "checkpoints", tmp_path / "E2" / "checkpoints"
    callback = AtomicCheckpoint(dirpath=new, filename="best", monitor="val_loss", mode="min", save_top_k=1)
    score = torch.tensor(0.0138082)
    callback.load_state_dict(
        {
            "monitor": "val_loss",
            "best_model_score": score,
            "best_model_path": str(old / "best.ckpt"),
            "current_score": torch.tensor(0.0139),
            "dirpath": str(old),
            "best_k_models": {str(old / "best.ckpt"): score},
            "kth_best_model_path": str(old / "best.ckpt"),
            "kth_value": score,
            "last_model_path": str(old / "last.ckpt"),
        }
    )
    assert callback.best_model_score == score and callback.best_model_path == str(new / "best.ckpt")
    assert callback.best_k_models == {str(new / "best.ckpt"): score} and callback.last_model_path == str(new / "last.ckpt")
