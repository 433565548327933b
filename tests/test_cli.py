"""The console script: `data summary` and `labels` through Hydra, as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genometracks.cli import main
from tests.conftest import ECOLI, needs_ecoli


def _summary(capsys, *overrides):
    main(["data", "summary", *overrides])
    return json.loads(capsys.readouterr().out)


def test_data_summary_synthetic(capsys):
    s = _summary(capsys, "data=synthetic", "data.generator.length=30000", "data.generator.n_contigs=2")
    assert s["total_length"] == 60000
    assert s["positions_per_split"] == {"train": 2 * 42000, "validation": 2 * 12000, "test": 2 * 6000}
    planted = s["label_sets"]["planted"]
    assert planted["total"] == sum(v for split in planted["per_split"].values() for v in split.values())


@needs_ecoli
@pytest.mark.slow
def test_data_summary_ecoli_acceptance(capsys):
    s = _summary(capsys, "data=ecoli_k12", "data.label_sets=[regulondb_strong,cappable_seq]")
    assert s["total_length"] == 4_641_652
    assert s["positions_per_split"]["test"] == 1_856_660
    assert s["splits"]["test"] == ["NC_000913.3:2738785-3667115"]
    cap = s["label_sets"]["cappable_seq"]
    assert 16_000 <= cap["total"] <= 16_600 and cap["liftover"]["dropped"] < 100
    assert 6_400 <= s["label_sets"]["regulondb_strong"]["total"] <= 6_700


@needs_ecoli
def test_labels_command_writes_sorted_bed_with_purines(tmp_path, capsys):
    from genometracks.genome.sequence import Genome

    out = tmp_path / "cap.bed"
    main(["labels", "labels=cappable_seq", f"out={out}"])
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert 16_000 <= len(rows) <= 16_600
    assert {r[0] for r in rows} == {"NC_000913.3"}
    starts = np.array([int(r[1]) for r in rows])
    assert np.all(np.diff(starts) >= 0)
    g = Genome.open(ECOLI / "genome" / "NC_000913.3.fa")
    tokens = g.tokens("NC_000913.3")
    plus = np.array([r[5] == "+" for r in rows])
    first = np.where(plus, tokens[starts], 3 - tokens[starts])  # base at +1 on the TSS's strand
    assert np.mean((first == 0) | (first == 2)) >= 0.75


@needs_ecoli
def test_labels_out_bed_gz_is_bgzip_with_a_tabix_index(tmp_path, capsys):
    import pysam

    out = tmp_path / "drna.bed.gz"
    main(["labels", "labels=drnaseq", f"out={out}"])
    assert out.read_bytes()[:2] == b"\x1f\x8b" and (tmp_path / "drna.bed.gz.tbi").is_file()  # was plain text
    with pysam.TabixFile(str(out)) as tbx:
        rows = list(tbx.fetch("NC_000913.3", 0, 100_000))
    assert rows and all(0 <= int(r.split("\t")[1]) < 100_000 for r in rows)


def test_console_script_usage_and_bad_command():
    done = subprocess.run([sys.executable, "-m", "genometracks.cli", "frobnicate"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown command 'frobnicate'" in done.stderr
    typo = subprocess.run([sys.executable, "-m", "genometracks.cli", "predcit", "run_dir=x"], capture_output=True, text=True)
    assert typo.stderr.strip().splitlines() == [
        "genometracks: error: unknown command 'predcit'; did you mean predict? (genometracks --help lists the commands)"
    ]


def test_command_help_lists_the_choices_a_user_may_make():
    """Hydra's --help listed the schemas (model: ..., schema, schema_shipped, ...) among the options."""
    done = subprocess.run([sys.executable, "-m", "genometracks.cli", "predict", "--help"], capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[0].startswith("usage: genometracks predict [group=option ...]")
    first = lines.index("== Config groups (group=option) ==") + 1
    groups = dict(line.split(": ", 1) for line in lines[first : lines.index("", first)])
    assert groups["trainer"] == "cpu, ddp_cpu, ddp_gpu, gpu"
    assert groups["hydra/launcher"] == "local, slurm"
    assert groups["data"] == "custom, ecoli_k12, sigma_promoters, synthetic"
    assert "schema" not in done.stdout.split("== Config (")[0]
    assert "run_dir: runs/" in done.stdout  # the config follows


@pytest.mark.parametrize(
    "override, line",
    [
        # Hydra's advice was '+predict.peaks.treshold=0.3', which adds a setting nothing reads
        ("predict.peaks.treshold=0.3", "predict.peaks.treshold is not a setting; did you mean predict.peaks.threshold?"),
        ("data.circular=NC_000913.3", "data.circular is a list: give data.circular=[NC_000913.3]"),
        ("data.shift=abc", "data.shift=abc: Value 'abc' of type 'str' could not be converted to Integer"),
        # Hydra listed its search path and the schema options among the choices
        ("model=ecoli_k21", "model=ecoli_k21: no such model config; did you mean model=ecoli_k12? choose one of ecoli_k12,"),
        ("model=schema", "model=schema is the schema of the model configs, not a choice; choose one of ecoli_k12,"),
    ],
)
def test_mistyped_settings_get_one_line_with_the_fix(tmp_path, override, line):
    done = subprocess.run(
        [sys.executable, "-m", "genometracks.cli", "predict", override, f"run_dir={tmp_path / 'r'}"], capture_output=True, text=True
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and line in done.stderr, done.stderr


@pytest.mark.slow
def test_bad_config_value_gets_clear_error(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "genometracks.cli",
            "data",
            "summary",
            "data=custom",
            f"data.fasta={tmp_path}/none.fa",
            f"data.tss={tmp_path}/none.bed",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "none.fa: FASTA file not found" in done.stderr


@needs_ecoli
@pytest.mark.slow
def test_curated_labels_with_overlap_report(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "curated.bed"
    main(["labels", "labels=curated", f"out={out}"])
    assert 4_000 <= len(out.read_text().splitlines()) <= 4_700
    table = pd.read_csv(tmp_path / "curated_overlap" / "overlap.tsv", sep="\t")
    pair = table[(table.set_a == "cappable_seq") & (table.set_b == "drnaseq")].iloc[0]
    assert 0 < pair.shared <= min(pair.n_a, pair.n_b)
    assert (tmp_path / "curated_overlap" / "overlap.png").stat().st_size > 10_000


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    """The run failed with exit 2 and one line `genometracks: error: ...` on stderr, nothing else."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "HYDRA_FULL_ERROR" not in done.stderr, done.stderr
    assert "weights_only=False" not in done.stderr and "`weights_only` set to `False`" not in done.stderr
    errors = [line for line in lines if line.startswith("genometracks: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    assert "Error executing job" not in done.stderr, done.stderr
    return errors[0]


@pytest.mark.parametrize(
    "case", ["fasta", "bed", pytest.param("checkpoint", marks=pytest.mark.slow), "run_dir", "config", "unset fasta", "unset shipped"]
)
def test_domain_errors_print_one_line_and_exit_2(tmp_path, case):
    import torch

    fasta = tmp_path / "g.fa"
    fasta.write_text(">x\nACGTACGTAC\n")
    bed = tmp_path / "t.bed"
    bed.write_text("x\t2\t3\tt1\t0\t+\n")
    base = ["data summary", "data=custom", f"data.fasta={fasta}", f"data.tss={bed}"]
    if case == "fasta":
        fasta.write_text(">x\nACGT!!\n")
        args, needle = base, "not a nucleotide letter"
    elif case == "bed":
        bed.write_text("x\tten\t3\tt1\t0\t+\n")
        args, needle = base, "t.bed"
    elif case == "checkpoint":  # a pickle of an arbitrary object: torch's advice must not reach the user
        ckpt = tmp_path / "evil.ckpt"
        torch.save({"x": Path("not/a/tensor")}, ckpt)
        args, needle = ["predict", "data=synthetic", f"ckpt={ckpt}", f"run_dir={tmp_path / 'run'}"], "evil.ckpt"
    elif case == "run_dir":
        (tmp_path / "file").write_text("x")
        args, needle = ["run", f"run_dir={tmp_path / 'file' / 'run'}"], "cannot be created"
    elif case == "unset fasta":
        args, needle = ["data summary", "data=custom"], "data.fasta is not set; pass data.fasta=GENOME.fa (with data=custom)"
    elif case == "unset shipped":
        args, needle = ["predict", "model=shipped", f"run_dir={tmp_path / 'run'}"], "model.shipped is not set; pass model.shipped=NAME"
    else:
        args, needle = ["data summary", "data=synthetic", "nosuchkey=1"], "nosuchkey"
    done = subprocess.run(
        [sys.executable, "-m", "genometracks.cli", *args[0].split(), *args[1:]],
        capture_output=True,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
    assert needle in _one_error_line(done)


def test_full_error_shows_the_traceback(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "genometracks.cli",
            "data",
            "summary",
            "data=custom",
            f"data.fasta={tmp_path}/none.fa",
            f"data.tss={tmp_path}/none.bed",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )
    assert done.returncode != 0 and "Traceback" in done.stderr and "none.fa" in done.stderr


def test_slurm_tasks_need_a_number_of_devices():
    # tasks_per_node: ${trainer.devices}: 'auto' went into sbatch as is
    from genometracks.cli import UsageError, slurm_gpus, slurm_tasks

    assert slurm_tasks(2) == 2 and slurm_tasks("4") == 4 and slurm_gpus("gpu", 2) == 2 and slurm_gpus("cpu", "auto") is None
    for bad in ("auto", "-1", 0, "[0,1]"):
        with pytest.raises(UsageError, match="give their number"):
            slurm_tasks(bad)


@pytest.mark.slow
def test_submitit_launchers_refuse_a_trainer_sweep_and_local_ddp(tmp_path):
    """hydra/launcher=slurm sized every job of `trainer=cpu,ddp_cpu` from the unswept trainer (one task:
    the ddp job failed, the submitter waited); the local launcher cannot start DDP's second rank."""
    from genometracks.cli import local_gpus
    from tests.conftest import TINY

    for launcher in ("slurm", "local"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "genometracks.cli",
                "train",
                "-m",
                f"hydra/launcher={launcher}",
                "trainer=cpu,ddp_cpu",
                f"run_dir={tmp_path / launcher}",
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2 and done.stderr.strip().splitlines() == [
            f"genometracks: error: trainer=cpu,ddp_cpu: hydra/launcher={launcher} sizes every job of a sweep from one trainer "
            "(tasks, GPUs), so the points would not get their own; run one sweep per trainer"
        ]
        assert not (tmp_path / launcher).exists()
    assert (local_gpus("gpu", 1), local_gpus("cpu", 1), local_gpus("cpu", 2)) == (1, 0, 0)  # submitit's local runner needs a number
    from genometracks.cli import UsageError, check_launcher

    for sweep in (
        ["hydra/launcher=submitit_slurm", "trainer=cpu,ddp_cpu"],
        ["hydra/launcher=local", "+trainer.devices=1,2"],
        ["hydra/launcher=slurm", "trainer=glob(*)"],
    ):
        with pytest.raises(UsageError, match="sizes every job of a sweep from one trainer"):
            check_launcher(["-m", *sweep])
    check_launcher(["-m", "hydra/launcher=slurm", "trainer.devices=[0,1]"])  # a list value, not a sweep
    check_launcher(["-m", "trainer=cpu,ddp_cpu"])  # Hydra's own launcher starts each job as its own command
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "genometracks.cli",
            "train",
            "-m",
            "hydra/launcher=local",
            "trainer=ddp_cpu",
            *TINY,
            f"run_dir={tmp_path / 'ddp'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 2 and ddp.stderr.strip().splitlines()[-1].startswith(
        "genometracks: error: a job failed: trainer.devices=2: hydra/launcher=local runs each job as one process"
    ), ddp.stderr[-2000:]


def test_scheduler_refusals_are_one_line_with_what_to_check():
    from submitit.core.utils import FailedJobError

    from genometracks.io.errors import error_line

    line = error_line(FailedJobError("sbatch: error: invalid partition specified: nosuch\nsbatch: error: Batch job submission failed"))
    assert line.startswith("genometracks: error: the scheduler refused the job(s): sbatch: error: invalid partition specified: nosuch")
    assert line.endswith(
        "check hydra.launcher.partition, cpus_per_task, mem_gb (or mem_per_cpu) and timeout_min against what `sinfo` shows"
    )
    # a job that ran and raised is no refusal: its error and its log, in one line
    crashed = FailedJobError(
        "Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent call last):\n"
        '  File "x.py", line 1\nRuntimeError: CUDA out of memory\n----------------------\n'
        "You can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n"
        "  - /r/.submitit/7/7_0_log.err\n  - /r/.submitit/7/7_0_log.out"
    )
    assert error_line(crashed) == "genometracks: error: a job failed: RuntimeError: CUDA out of memory (log: /r/.submitit/7/7_0_log.err)"


def test_data_summary_reads_circularity_from_fasta_headers(capsys, tmp_path):
    """A Unicycler assembly's `circular=true` reaches the summary (and every stage) without data.circular;
    data.circular_tags=false turns the tags off."""
    fasta = tmp_path / "asm.fa"
    fasta.write_text(">1 length=40 depth=1.00x circular=true\n" + "ACGT" * 10 + "\n>2 length=20 depth=9.8x\n" + "ACGT" * 5 + "\n")
    bed = tmp_path / "t.bed"
    bed.write_text("1\t4\t5\tt1\t0\t+\n")
    base = ["data=custom", f"data.fasta={fasta}", f"data.tss={bed}"]
    contigs = _summary(capsys, *base)["contigs"]
    assert {name: c["circular"] for name, c in contigs.items()} == {"1": True, "2": False}
    contigs = _summary(capsys, *base, "data.circular_tags=false")["contigs"]
    assert {name: c["circular"] for name, c in contigs.items()} == {"1": False, "2": False}
