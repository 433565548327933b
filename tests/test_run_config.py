"""A run directory's configuration check compares only what changes its outputs."""

import json

import pytest
from omegaconf import OmegaConf

from genometracks.data.dataset import ConfigError
from genometracks.io.run_config import check_same_run, main_job_overrides
from tests.conftest import compose

CUSTOM = ["data=custom", "data.fasta=/data/G.fa", "data.tss=/data/T.bed"]


def _made_with(tmp_path, *overrides):
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(compose(*overrides), resolve=True))


def test_custom_genome_trained_under_smoke_then_predicted_without_it(tmp_path):
    # the README's flow: train experiment=smoke data=custom ..., then predict data=custom ... in the same run
    # dir; smoke's synthetic-generator settings do not apply to a FASTA and must not be compared
    _made_with(tmp_path, "experiment=smoke", *CUSTOM)
    check_same_run(compose(*CUSTOM), tmp_path)
    check_same_run(compose(*CUSTOM, "data.n_streams=3"), tmp_path)  # batch size: free


@pytest.mark.parametrize(
    "change, named",
    [
        ("data.fasta=/data/other.fa", "data.fasta"),
        ("data.tss=/data/other.bed", "data.tss"),
        ("data.shift=10", "data.shift"),
        ("model.window=64", "model.window"),
    ],
)
def test_what_changes_outputs_is_refused(tmp_path, change, named):
    _made_with(tmp_path, "experiment=smoke", *CUSTOM)
    overrides = [o for o in CUSTOM if not o.startswith(change.split("=")[0] + "=")] + [change]
    with pytest.raises(ConfigError, match=named):
        check_same_run(compose(*overrides), tmp_path)


def test_synthetic_generator_settings_are_compared(tmp_path):
    _made_with(tmp_path, "experiment=smoke")
    with pytest.raises(ConfigError, match="data.generator.density"):
        check_same_run(compose("experiment=smoke", "data.generator.density=0.004"), tmp_path)


def test_a_directory_trained_by_an_earlier_run_suggests_train_true(tmp_path):
    # `run` used to train by default; now it predicts with the shipped model, so an old run directory is
    # refused, and the one line says how to keep using the model trained there
    _made_with(tmp_path)  # experiment=ecoli_cpu, model=small: what `run` trained before
    with pytest.raises(ConfigError, match="it holds a model trained there: add train=true to use it"):
        check_same_run(compose(*main_job_overrides([])), tmp_path)  # what `run` composes now
    check_same_run(compose(), tmp_path)  # train=true composes the same config: accepted


def test_a_new_run_that_failed_before_making_anything_forgets_its_configuration(tmp_path):
    from genometracks.pipeline import run_pipeline

    run = tmp_path / "run"
    wrong = ["data=custom", f"data.fasta={tmp_path}/typo.fa", f"data.tss={tmp_path}/T.bed", f"run_dir={run}", "stages=[data]"]
    with pytest.raises(Exception, match="typo.fa"):
        run_pipeline(compose(*wrong))
    assert run.is_dir() and not (run / "config.yaml").exists() and not (run / "overrides.txt").exists()
    check_same_run(compose("data=custom", "data.fasta=/data/G.fa", "data.tss=/data/T.bed", f"run_dir={run}"), run)  # the fix may run
    # a run that saved a checkpoint before failing keeps its configuration: resuming needs the same model
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(Exception, match="typo.fa"):
        run_pipeline(compose(*wrong))
    with pytest.raises(ConfigError, match="data.fasta"):
        check_same_run(compose("data=custom", "data.fasta=/data/G.fa", "data.tss=/data/T.bed", f"run_dir={run}"), run)


def test_run_with_a_checkpoint_trains_nothing_it_would_not_use(tmp_path):
    from genometracks.pipeline import _stage_train

    result = _stage_train(compose(f"ckpt={tmp_path}/best.ckpt", f"run_dir={tmp_path}"), tmp_path)
    assert result == {"skipped": f"ckpt={tmp_path}/best.ckpt given, trained already"}
    with pytest.raises(ValueError, match="train=true with ckpt=.*drop ckpt= to train"):
        _stage_train(compose(f"ckpt={tmp_path}/best.ckpt", "train=true", f"run_dir={tmp_path}"), tmp_path)


def test_a_run_made_with_a_shipped_model_names_it_when_a_later_command_leaves_it_out(tmp_path):
    _made_with(tmp_path, "model=ecoli_k12", *CUSTOM)  # what `genometracks run` composes for a custom genome
    with pytest.raises(ConfigError, match="its tracks came from the shipped model: add model=ecoli_k12"):
        check_same_run(compose(*CUSTOM), tmp_path)  # `export data=custom ...` without model=
    check_same_run(compose("model=ecoli_k12", *CUSTOM), tmp_path)


def test_a_collection_genome_restarts_when_its_manifest_row_changed(tmp_path):
    import json

    from genometracks.collection.job import _forget_outdated_run as _forget_failed_start
    from genometracks.io.rundir import RunDir

    run = RunDir(tmp_path)
    old = ["data=custom", "data.fasta=/data/old.fa", "data.tss=/data/T.bed", f"run_dir={tmp_path}"]
    new = ["data=custom", "data.fasta=/data/new.fa", "data.tss=/data/T.bed", f"run_dir={tmp_path}"]

    def made(status: str) -> None:
        _made_with(tmp_path, *old)
        run.stages.mkdir(exist_ok=True)
        run.stage_marker("predict").write_text("{}")
        run.job_status.write_text(json.dumps({"status": status}))

    made("ok")  # a genome that succeeded, same row: left as it is
    _forget_failed_start(run, compose(*old))
    assert run.config.exists() and run.stage_marker("predict").exists()
    _forget_failed_start(run, compose(*new))  # succeeded, then its FASTA was replaced: every stage again
    assert not run.config.exists() and not any(run.stages.glob("*.json"))
    made("failed")  # failed after predict (e.g. its contigs did not match GenArk), then its FASTA was corrected
    _forget_failed_start(run, compose(*new))
    assert not run.config.exists() and not any(run.stages.glob("*.json"))
    check_same_run(compose(*new), tmp_path)  # the corrected row runs every stage again
    made("failed")  # failed, row unchanged: its finished stages are kept (a rerun resumes)
    _forget_failed_start(run, compose(*old))
    assert run.config.exists() and run.stage_marker("predict").exists()


def test_an_input_file_changed_in_place_is_refused_and_a_touch_is_not(tmp_path):
    import os

    from genometracks.io.run_config import INPUTS, changed_files, save_configuration

    fasta, tss = tmp_path / "G.fa", tmp_path / "T.bed"
    fasta.write_text(">c\nACGTACGT\n")
    tss.write_text("c\t1\t2\tt\t0\t+\n")
    run = tmp_path / "run"
    run.mkdir()
    cfg = compose("data=custom", f"data.fasta={fasta}", f"data.tss={tss}")
    save_configuration(cfg, run)
    saved = json.loads((run / INPUTS).read_text())
    assert set(saved) == {"data.fasta", "data.tss"} and saved["data.fasta"]["bytes"] == 12
    check_same_run(cfg, run)
    os.utime(fasta, ns=(1, 1))  # touched (or copied anew): the same bytes
    check_same_run(cfg, run)
    fasta.write_text(">c\nTTTTACGT\n")  # same name and size, other sequence: its tracks would be stale
    with pytest.raises(ConfigError, match=rf"{INPUTS}: data.fasta={fasta} changed since this run directory was made") as err:
        check_same_run(cfg, run)
    # a predict-only directory has no stages/ folder: only what exists is named for deletion
    assert f"delete {run / 'config.yaml'} to make its outputs again" in str(err.value) and "stages" not in str(err.value)
    assert changed_files(run, {"data.fasta": fasta, "data.tss": tss}) == ["data.fasta"]
    (run / INPUTS).unlink()  # a run directory from before inputs.json: not compared
    check_same_run(cfg, run)


def test_a_run_directory_names_its_input_files_by_absolute_path_and_works_from_any_folder(tmp_path, monkeypatch):
    # data.fasta=genomes/g.fa typed in one folder was refused from another (given absolutely), and the
    # report, reading config.yaml from elsewhere, lost its curves to 'FASTA file not found'
    from genometracks.io.run_config import save_configuration

    (tmp_path / "genomes").mkdir()
    (tmp_path / "genomes" / "g.fa").write_text(">c\nACGTACGT\n")
    (tmp_path / "genomes" / "t.bed").write_text("c\t2\t3\tt\t0\t+\n")
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    relative = ["data=custom", "data.fasta=genomes/g.fa", "data.tss=genomes/t.bed"]
    save_configuration(compose(*relative), run)
    saved = OmegaConf.load(run / "config.yaml")
    assert saved.data.fasta == str(tmp_path / "genomes" / "g.fa") and saved.data.tss == str(tmp_path / "genomes" / "t.bed")
    check_same_run(compose(*relative), run)  # as typed, from the same folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    check_same_run(compose("data=custom", f"data.fasta={tmp_path}/genomes/g.fa", f"data.tss={tmp_path}/genomes/t.bed"), run)
    check_same_run(compose("data=custom", "data.fasta=../genomes/g.fa", "data.tss=../genomes/t.bed"), run)  # relative from here
    (elsewhere / "other.fa").write_text(">c\nTTTTTTTT\n")  # another genome is still another genome
    with pytest.raises(ConfigError, match="data.fasta was"):
        check_same_run(compose("data=custom", "data.fasta=other.fa", "data.tss=../genomes/t.bed"), run)


def test_a_tss_file_may_be_added_to_a_run_made_without_one(tmp_path):
    # predict-only run (data.tss unset), then interpret, which needs the TSS file: adding it was refused
    # ("data.tss was '???'") and leaving it out was refused by interpret
    _made_with(tmp_path, "model=ecoli_k12", "data=custom", "data.fasta=/data/G.fa")
    check_same_run(compose("model=ecoli_k12", "data=custom", "data.fasta=/data/G.fa", "data.tss=/data/T.bed"), tmp_path)
    with pytest.raises(ConfigError, match="data.fasta was '/data/G.fa', now '/data/H.fa'"):
        check_same_run(compose("model=ecoli_k12", "data=custom", "data.fasta=/data/H.fa", "data.tss=/data/T.bed"), tmp_path)
    # the added file is remembered (report read config.yaml, found no TSS file and drew no curves), absolute
    # and fingerprinted, and from then on it is the run's: another one is refused
    bed = tmp_path / "t.bed"
    bed.write_text("c\t5\t6\tt\t0\t+\n")
    _made_with(tmp_path, "model=ecoli_k12", "data=custom", "data.fasta=/data/G.fa")
    check_same_run(compose("model=ecoli_k12", "data=custom", "data.fasta=/data/G.fa", f"data.tss={bed}"), tmp_path)
    assert OmegaConf.load(tmp_path / "config.yaml").data.tss == str(bed)
    assert json.loads((tmp_path / "inputs.json").read_text())["data.tss"]["sha256"]
    with pytest.raises(ConfigError, match="data.tss was"):
        check_same_run(compose("model=ecoli_k12", "data=custom", "data.fasta=/data/G.fa", "data.tss=/data/T.bed"), tmp_path)


def test_the_stage_table_says_why_a_stage_was_skipped(tmp_path, capsys):
    # 'sigma  skipped' left the reason in stages/sigma.json only
    from genometracks.pipeline import run_pipeline

    (tmp_path / "g.fa").write_text(">c\n" + "ACGT" * 500 + "\n")
    run_pipeline(
        compose("model=ecoli_k12", "data=custom", f"data.fasta={tmp_path / 'g.fa'}", "stages=[sigma]", f"run_dir={tmp_path / 'run'}")
    )
    out = capsys.readouterr().out
    assert "sigma: skipped: sigma classes need the E. coli RegulonDB promoter set" in out
    row = next(line for line in out.splitlines() if line.startswith("sigma "))
    assert "skipped" in row and "(sigma classes need the E. coli RegulonDB promoter set" in row


def test_a_model_folder_named_from_another_folder_is_the_same_model(tmp_path, monkeypatch):
    """model.shipped=FOLDER was compared as text (a relative path from elsewhere was 'another model') and
    the hint said model=/abs/folder, which is no config option."""
    from genometracks.io.run_config import save_configuration

    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "models" / "mine").mkdir(parents=True)
    (tmp_path / "models" / "other").mkdir()
    monkeypatch.chdir(tmp_path)
    save_configuration(compose("model=shipped", "model.shipped=models/mine", f"run_dir={run}"), run)
    assert OmegaConf.load(run / "config.yaml").model.shipped == str(tmp_path / "models" / "mine")  # absolute
    monkeypatch.chdir(tmp_path / "models")
    check_same_run(compose("model=shipped", "model.shipped=./mine", f"run_dir={run}"), run)
    check_same_run(compose("model=shipped", f"model.shipped={tmp_path}/models/mine/", f"run_dir={run}"), run)
    with pytest.raises(ConfigError, match=rf"add model=shipped model.shipped={tmp_path}/models/mine, or choose"):
        check_same_run(compose("model=ecoli_k12", f"run_dir={run}"), run)
    with pytest.raises(ConfigError, match="model.shipped was"):
        check_same_run(compose("model=shipped", "model.shipped=./other", f"run_dir={run}"), run)


def test_a_setting_of_a_later_version_is_no_conflict_and_leaves_finished_stages_alone(tmp_path):
    """A run directory saved before data.circular_tags existed: the key is recorded, not refused, and the
    stages' fingerprints change only where the FASTA's headers tag a contig the list leaves out."""
    from genometracks.io.run_config import _newer_key
    from genometracks.pipeline import stage_settings

    fasta = tmp_path / "g.fa"
    fasta.write_text(">c1 length=8\nACGTACGT\n>p1 length=4\nACGT\n")
    custom = ["data=custom", f"data.fasta={fasta}", "data.tss=/data/T.bed"]
    saved = OmegaConf.to_container(compose(*custom), resolve=True)
    del saved["data"]["circular_tags"]
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(saved)))
    check_same_run(compose(*custom), tmp_path)
    assert OmegaConf.load(tmp_path / "config.yaml").data.circular_tags is True
    # a section saved as null is a setting the run had switched off, not a newer key
    assert _newer_key("data.circular_tags", {"data": {"circular": []}})
    assert not _newer_key("data.curation.window", {"data": {"curation": None}})
    assert not _newer_key("data.circular", {"data": {"circular": []}})

    def data_print(*overrides):
        return stage_settings(compose(*custom, *overrides), "data")

    assert data_print() == data_print("data.circular_tags=false")  # no tag in the headers: the flag changes nothing
    fasta.write_text(">c1 length=8\nACGTACGT\n>p1 length=4 circular=true\nACGT\n")
    assert data_print() != data_print("data.circular_tags=false")
    assert data_print("data.circular=[p1]") == data_print("data.circular=[p1]", "data.circular_tags=false")


def test_split_coordinates_can_be_given_on_the_command_line_and_old_runs_keep_their_default(tmp_path, capsys):
    """`data.splits: null` could not take data.splits.test=[...] (OmegaConf cannot merge into a null node: a
    traceback); the default is now lists without an interval, the same 70/20/10 split as null was, so run
    directories saved with null are neither refused nor made again."""
    from genometracks.cli import main
    from genometracks.pipeline import stage_settings

    fasta = tmp_path / "g.fa"
    fasta.write_text(">chrA\n" + "ACGT" * 75 + "\n>chrB\n" + "ACGT" * 50 + "\n")
    bed = tmp_path / "t.bed"
    bed.write_text("chrA\t10\t11\tt1\t0\t+\n")
    custom = ["data=custom", f"data.fasta={fasta}", f"data.tss={bed}"]
    for override, test in (("data.splits.test=[[chrA,250,300]]", ["chrA:250-300"]), ("data.splits={test:[[chrB,0,50]]}", ["chrB:0-50"])):
        main(["data", "summary", *custom, override])
        assert json.loads(capsys.readouterr().out)["splits"]["test"] == test
    saved = OmegaConf.to_container(compose(*custom), resolve=True)
    saved["data"]["splits"] = None  # how earlier versions saved the default
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(saved)))
    check_same_run(compose(*custom), tmp_path)
    with pytest.raises(ConfigError, match="data.splits.test"):
        check_same_run(compose(*custom, "data.splits.test=[[chrA,250,300]]"), tmp_path)
    old = compose(*custom)
    old.data.splits = None
    assert stage_settings(old, "data") == stage_settings(compose(*custom), "data")
