"""Training end to end through the CLI: resume after a kill, sweeps, DDP, debug configs, learning."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import TINY, cli, compose, kill_once_checkpointed, needs_ecoli


def _cli(*args, env=None):
    return cli(*args, env=env)


def _test_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["test"]["both"]


pytestmark = pytest.mark.slow  # trains models (minutes)


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    run = tmp_path_factory.mktemp("unbroken")
    done = _cli("train", *TINY, f"run_dir={run}")
    assert done.returncode == 0, done.stderr[-3000:]
    OUTPUT["unbroken"] = done.stdout + done.stderr
    return run


OUTPUT: dict[str, str] = {}


def test_no_third_party_noise_in_the_output(unbroken):
    """Lightning's litlogger tip and library deprecation warnings never reach the job's output."""
    text = OUTPUT["unbroken"]
    assert "litlogger" not in text.lower() and "Tip:" not in text
    assert "deprecated" not in text.lower() and "DeprecationWarning" not in text


def test_train_writes_checkpoint_metrics_config(unbroken):
    metrics = json.loads((unbroken / "metrics.json").read_text())
    assert (unbroken / "checkpoints" / "best.ckpt").is_file() and (unbroken / "config.yaml").is_file()
    test = metrics["test"]
    assert set(test) == {"both", "+", "-"}
    assert test["both"]["n_positions"] == test["+"]["n_positions"] + test["-"]["n_positions"] == 2 * 2000
    for key in ("roc_auc", "pr_auc", "pr_auc_k4", "pr_auc_k10", "lr_plus"):
        assert key in test["both"]
    # test calls are made at the kept checkpoint's validation threshold, not the test split's own optimum
    point = test["both"]["at_threshold"]
    assert point["chosen_on"] == "validation" and point["threshold"] == metrics["validation"]["both"]["threshold_f1"]
    assert metrics["validation"]["both"]["at_threshold"]["chosen_on"] == "this split"
    assert metrics["validation"]["both"]["at_threshold"]["f1"] == pytest.approx(metrics["validation"]["both"]["f1_best"])
    assert 0 < point["calls"] < test["both"]["n_positions"]
    assert metrics["experiment"] == "smoke" and metrics["labels"] == "planted"
    # the checkpoint records its label shift: predict elsewhere with ckpt= places outputs with it
    hparams = torch.load(unbroken / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hparams["shift"] == int(yaml.safe_load((unbroken / "config.yaml").read_text())["data"]["shift"]) == 20


def test_metrics_are_this_runs_own_and_the_kept_checkpoints(tmp_path):
    # an earlier run's eval/*.json in the folder passed as this run's (test_split=false read a stale
    # test.json), and "validation" was the last epoch's, not the checkpoint's that was kept
    import torch

    (tmp_path / "eval").mkdir()
    for phase in ("val", "test"):
        (tmp_path / "eval" / f"{phase}.json").write_text(json.dumps({"both": {"roc_auc": 0.999, "note": "stale"}}))
    done = _cli("train", *TINY, "task.test_split=false", f"run_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"] == {} and "note" not in metrics["validation"]["both"] and not (tmp_path / "eval" / "test.json").exists()
    ckpt = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    kept = [
        state["best_model_score"]
        for key, state in ckpt["callbacks"].items()
        if "val_loss" in key and state.get("best_model_score") is not None
    ]
    assert kept and metrics["val_loss"] == pytest.approx(float(kept[0]), rel=1e-5)  # the kept checkpoint's validation


def test_a_step_budget_shorter_than_one_epoch_finishes_on_the_last_checkpoint(tmp_path):
    # no validation ran, so early stopping had no val_loss and stopped the run with an error
    done = _cli("train", *TINY, "trainer.max_steps=2", f"run_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_step"] == 2 and metrics["best_checkpoint"] == "checkpoints/last.ckpt"
    # the checkpoint saved when max_steps stopped the run has its epoch counter moved on: a card counted 2 epochs
    from genometracks.training.checkpoint import checkpoint_progress

    assert checkpoint_progress(tmp_path / "checkpoints" / "last.ckpt") == (2, 1) == (metrics["global_step"], metrics["epochs"])
    assert metrics["validation"] == {} and metrics["test"]["both"]["n_positions"] == 4000


def test_resume_after_kill_mid_epoch_matches_unbroken(unbroken, tmp_path):
    run = tmp_path / "broken"
    kill_once_checkpointed("train", *TINY, run_dir=run)
    assert not (run / "metrics.json").exists(), "killed too late: the run had already finished"
    # a resume that changes how the run trains (optimiser, loss, streams of the carried memory) is refused
    for changed, said in (("task.lr=0.5", "task.lr was 0.003, now 0.5"), ("data.n_streams=2", "data.n_streams was 4, now 2")):
        refused = _cli("train", *TINY, changed, f"run_dir={run}", "resume=true")
        assert refused.returncode == 2 and said in refused.stderr and "resume=true continues the run as it was made" in refused.stderr
    done = _cli("train", *TINY, f"run_dir={run}", "resume=true")
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = _test_metrics(unbroken), _test_metrics(run)
    for key in ("roc_auc", "pr_auc", "pr_auc_k10"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key


def test_a_run_with_dropout_resumed_after_a_kill_matches_the_unbroken_run(tmp_path):
    """Checkpoints did not keep torch's random state, and the loaders drew from it, so dropout's numbers
    differed after a resume (val_loss 0.013727 against 0.013701 in a smoke run)."""
    from genometracks.training.checkpoint import checkpoint_progress

    dropout = [*TINY, "model.dropout=0.2", "task.test_split=false"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    done = _cli("train", *dropout, f"run_dir={whole}")
    assert done.returncode == 0, done.stderr[-3000:]
    kill_once_checkpointed("train", *dropout, run_dir=broken)
    assert not (broken / "metrics.json").exists(), "killed too late: the run had already finished"
    killed_job = torch.load(broken / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["genometracks_wall_seconds"]
    done = _cli("train", *dropout, f"run_dir={broken}", "resume=true")
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = (json.loads((run / "metrics.json").read_text()) for run in (whole, broken))
    # every job of the run is on record, the first one's command (no resume=true) makes it afresh
    jobs = b["provenance"]["jobs"]
    assert [job["resumed"] for job in jobs] == [False, True] and "resume=true" not in jobs[0]["command"]
    assert len(a["provenance"]["jobs"]) == 1 and json.loads((broken / "train_jobs.json").read_text()) == jobs
    assert a["val_loss"] == b["val_loss"] and a["validation"]["both"]["pr_auc"] == b["validation"]["both"]["pr_auc"]
    # wall time: the resumed run counts the killed job up to the checkpoint it resumed from (a card gave the
    # last job's seconds alone); an unbroken run's two figures are one
    assert 0 < killed_job and b["provenance"]["wall_seconds_all_jobs"] == pytest.approx(
        killed_job + b["provenance"]["wall_seconds"], abs=0.2
    )
    assert a["provenance"]["wall_seconds_all_jobs"] == pytest.approx(a["provenance"]["wall_seconds"], abs=0.2)
    for name in ("best.ckpt", "last.ckpt"):
        one, two = (torch.load(run / "checkpoints" / name, map_location="cpu", weights_only=True)["state_dict"] for run in (whole, broken))
        assert all(torch.equal(one[k], two[k]) for k in one), name
    # last.ckpt is the finished run's latest state (it was the latest best or step snapshot: a run continued
    # with more epochs trained again from there)
    assert checkpoint_progress(whole / "checkpoints" / "last.ckpt")[0] == a["global_step"]


def test_sweep_through_submitit_local_launcher(tmp_path):
    tiny = [o for o in TINY if not o.startswith("model.n_layer=")]
    done = _cli("train", "-m", "hydra/launcher=local", "model.n_layer=1,2", *tiny, "trainer.max_epochs=1", f"run_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    for job, n_layer in (("0", 1), ("1", 2)):
        metrics = json.loads((tmp_path / job / "metrics.json").read_text())
        assert metrics["model"]["n_layer"] == n_layer
        assert metrics["test"]["both"]["n_positions"] == 4000
        # the job's own command (what a model card shows), and the sweep it came from
        made = metrics["provenance"]
        assert made["command"].startswith("genometracks train ") and f"model.n_layer={n_layer} " in made["command"]
        assert made["command"].endswith(f"run_dir={tmp_path / job}") and "1,2" not in made["command"]
        assert made["sweep"]["job"] == int(job) and made["sweep"]["dir"] == str(tmp_path)


def test_ddp_cpu_two_ranks_metrics_equal_single_process(tmp_path):
    from genometracks.training.train import evaluate_checkpoint

    done = _cli("train", "trainer=ddp_cpu", *TINY, "trainer.max_epochs=1", f"run_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = _test_metrics(tmp_path)
    assert ddp["n_positions"] == 4000  # the two ranks' disjoint streams gathered: every position once
    cfg = compose(*TINY, f"run_dir={tmp_path}")
    single = evaluate_checkpoint(cfg, tmp_path / "checkpoints" / "best.ckpt")["both"]
    for key in ("n_positions", "n_positives", "roc_auc", "pr_auc"):
        assert single[key] == pytest.approx(ddp[key], abs=1e-6), key
    # the test split is scored at the validation split's threshold, in DDP as in one process
    assert ddp["at_threshold"]["chosen_on"] == single["at_threshold"]["chosen_on"] == "validation"
    for key in ("threshold", "calls", "f1"):
        assert single["at_threshold"][key] == pytest.approx(ddp["at_threshold"][key], abs=1e-6), key


def test_ddp_strategy_restarts_its_second_rank_with_the_command(tmp_path):
    # strategy=ddp (trainer=ddp_gpu's) makes Lightning start rank 1 as `python argv[0] argv[1:]`: the
    # command word was only in argv[0] ('genometracks train'), so rank 1 saw 'unknown command' and the
    # job was killed; and rank 1 must not take the run directory's lock that rank 0 holds
    done = _cli("train", *TINY, "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_epochs=1", f"run_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"]["both"]["n_positions"] == 4000  # both ranks' streams gathered
    assert metrics["provenance"]["command"].startswith("genometracks train experiment=smoke ")
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file() and "unknown command" not in done.stderr


def test_debug_fast_dev_run(tmp_path):
    done = _cli("train", *TINY, "debug=fast_dev_run", f"run_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    # the main job would mark training done without a model and fail at predict: refused before any stage
    whole = _cli("run", *TINY, "debug=fast_dev_run", f"run_dir={tmp_path / 'run'}")
    assert whole.returncode == 2 and "debug=fast_dev_run trains one batch and keeps no model" in whole.stderr
    assert not (tmp_path / "run" / "stages").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.window=0", "model.window=0 must be a positive integer"),
        ("model.seg_len=50000", "longer than the longest contig"),
        # top-level keys without a group schema: 'no' counted as true, a string became a list of letters
        ("resume=no", "resume='no': give resume=true or resume=false"),
        ("seed=abc", "seed='abc': give a whole number"),
        ("stages=predict", "stages='predict': give a list, e.g. stages=[predict]"),
        ("task.logger=tensorbord", "task.logger='tensorbord': choose csv or tensorboard"),  # was CSV, silently
        ("resume=true", "resume=true, but"),  # nothing to resume: a mistyped run_dir started afresh
    ],
)
def test_impossible_config_values_fail_clearly(tmp_path, override, message):
    done = _cli("train", *TINY, override, f"run_dir={tmp_path}")
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert done.stderr.count("genometracks: error:") == 1 and "Traceback" not in done.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_a_gpu_trainer_without_a_gpu_is_one_line(tmp_path):
    done = _cli("train", *TINY, "trainer=gpu", f"run_dir={tmp_path}")
    assert done.returncode == 2 and "trainer.accelerator=gpu, but this process sees no GPU" in done.stderr
    assert done.stderr.count("genometracks: error:") == 1 and "Traceback" not in done.stderr  # was 58 lines of one


def test_training_again_into_a_trained_run_dir_is_refused(unbroken, tmp_path):
    # it overwrote the checkpoints and config.yaml while the run's tracks and stage markers stayed
    import shutil

    run = tmp_path / "run"
    shutil.copytree(unbroken, run)
    before = (run / "checkpoints" / "best.ckpt").read_bytes()
    done = _cli("train", *TINY, "model.n_layer=2", f"run_dir={run}")
    assert done.returncode == 2 and "model.n_layer was 1, now 2" in done.stderr, done.stderr[-2000:]
    same = _cli("train", *TINY, f"run_dir={run}")
    assert same.returncode == 2 and "holds a trained model already (checkpoints/); add resume=true" in same.stderr
    assert (run / "checkpoints" / "best.ckpt").read_bytes() == before and "n_layer: 1" in (run / "config.yaml").read_text()


def test_unknown_config_key_fails_clearly(tmp_path):
    done = _cli("train", *TINY, "model.n_layerz=3", f"run_dir={tmp_path}")
    assert done.returncode != 0 and "n_layerz" in done.stderr


def test_smoke_experiment_learns_planted_promoters(tmp_path):
    """Learning check (issue 3): the smoke budget reaches test ROC AUC >= 0.95 on the synthetic genome."""
    done = _cli("train", "experiment=smoke", "trainer.enable_progress_bar=false", f"run_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    test = _test_metrics(tmp_path)
    assert test["roc_auc"] >= 0.95, test
    # the validation pass inside fit (last epoch) must see the same model quality as the test pass
    validation = json.loads((tmp_path / "metrics.json").read_text())["validation"]["both"]
    assert validation["roc_auc"] >= 0.95, validation
    assert test["pr_auc"] > 0.3, test  # far above the ~0.002 of a random ranking


def test_learning_rate_warmup_then_cosine_decay():
    from genometracks.training.task import lr_factor

    assert [lr_factor(s, 4) for s in (0, 1, 3, 4, 1000)] == [0.25, 0.5, 1.0, 1.0, 1.0]  # constant after warm-up
    assert lr_factor(4, 4, 104) == pytest.approx(1.0)  # decay starts at the end of warm-up
    assert lr_factor(54, 4, 104) == pytest.approx(0.05 + 0.95 * 0.5)  # halfway: cos(pi/2) = 0
    assert lr_factor(104, 4, 104) == pytest.approx(0.05) == lr_factor(500, 4, 104)  # floor, then stays
    assert lr_factor(0, 0, 100) == pytest.approx(1.0)


def test_aux_labels_set_the_outputs_and_refuse_contradictions():
    """data.aux_labels names the sets trained alongside data.labels; train sets model.n_outputs to
    1 + their number and refuses a repeated set or another n_outputs in one line."""
    from genometracks.io.run_config import ConfigError
    from genometracks.training.train import aux_label_sets

    cfg = compose("data.labels=cappable_seq", "data.aux_labels=[regulondb_strong,curated]")
    assert cfg.model.n_outputs == 1 and aux_label_sets(cfg) == ["regulondb_strong", "curated"] and cfg.model.n_outputs == 3
    plain = compose("data.labels=cappable_seq")
    assert aux_label_sets(plain) == [] and plain.model.n_outputs == 1
    with pytest.raises(ConfigError, match="name each label set once"):
        aux_label_sets(compose("data.labels=cappable_seq", "data.aux_labels=[cappable_seq]"))
    with pytest.raises(ConfigError, match=r"model.n_outputs=5 but data.aux_labels has 1 sets"):
        aux_label_sets(compose("data.aux_labels=[cappable_seq]", "model.n_outputs=5"))


@needs_ecoli
def test_training_labels_stack_each_set_as_built_alone():
    """The training labels of data.labels=cappable_seq with aux [regulondb_strong]: column 0 is the
    Cappable-seq labels, column 1 the RegulonDB strong ones, exactly as each set builds alone."""
    from genometracks.data.dataset import load_dataset
    from genometracks.data.streams import build_labels
    from genometracks.training.train import aux_label_sets, training_labels

    cfg = compose("data.labels=cappable_seq", "data.aux_labels=[regulondb_strong]")
    dataset = load_dataset(cfg)
    stacked = training_labels(cfg, dataset, aux_label_sets(cfg))
    for k, name in enumerate(["cappable_seq", "regulondb_strong"]):
        alone = load_dataset(cfg, label_set=name)
        built = build_labels(alone.genome, alone.sites, alone.shift)
        for key in built:
            np.testing.assert_array_equal(stacked[key][:, k], built[key])
    assert stacked[("NC_000913.3", "+")][:, 1].sum() > 1000
