"""`genometracks <command> key=value ...`: one Hydra entry point per command.

Hydra commands compose `conf/config.yaml` with the overrides (and `-m` for multirun);
`validate-hub` and `serve` take plain arguments.

Bad input (a FASTA, BED, checkpoint, run_dir or config value) ends with one line on stderr,
`genometracks: error: <what, where, the fix>`, and exit status 2; HYDRA_FULL_ERROR=1 shows the
traceback instead. Unexpected errors (bugs) keep their traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from genometracks.collection.launch import collection_request, run_collection
from genometracks.io.errors import config_groups_text, error_line, group_options
from genometracks.io.paths import conf_dir, output_dir_problem, shared_data
from genometracks.io.provenance import COMMAND_ENV
from genometracks.io.quiet import quiet_third_parties
from genometracks.io.run_config import check_root_settings, main_job_overrides, run_dir_model_overrides
from genometracks.io.run_lock import run_dir_lock, stop_cleanly_on_signals
from genometracks.io.schema import register_schemas

# command → "module:function(cfg)"; the module is imported only when its command runs
HYDRA_COMMANDS: dict[str, str] = {
    "data summary": "genometracks.data.summary:data_summary",
    "labels": "genometracks.data.summary:write_labels",
    "train": "genometracks.pipeline:train_command",
    "predict": "genometracks.inference.predict:predict_command",
    "peaks": "genometracks.inference.peaks:peaks_command",
    "export": "genometracks.browser.export:export_command",
    "interpret": "genometracks.interpret.command:interpret_command",
    "run": "genometracks.pipeline:run_pipeline",
    "report": "genometracks.pipeline:report_command",
}
# commands that write nothing: Hydra makes no run directory for them
NO_OUTPUT = {"data summary", "labels"}
PLAIN_COMMANDS: dict[str, str] = {
    "validate-hub": "genometracks.browser.validate:main_validate",
    "serve": "genometracks.browser.serve:main_serve",
    "bench": "genometracks.bench:main",
    "ship": "genometracks.inference.ship:main",
    "collect": "genometracks.collection.collect:main_collect",
}
COLLECTION_JOB = "genometracks.collection.job:collection_job"
COLLECT = "genometracks.collection.collect:collect"

USAGE = """usage: genometracks <command> [key=value ...] [-m]

commands:
  data summary      JSON summary of contigs, splits and TSS sets      (data=ecoli_k12|synthetic|custom)
  labels            write a TSS set as sorted BED6                    (labels=<set> out=PATH.bed)
  train             train the TSS model (or the sigma CNN)            (experiment=smoke|ecoli_cpu|paper|sigma_cnn
                                                                       run_dir=DIR)
  predict           whole-genome bigWig tracks per strand             (model=ecoli_k12 | ckpt=PATH, run_dir=DIR)
  peaks             TSS peak calls from the tracks                    (run_dir=DIR)
  interpret         attention heads, motifs, logos, attributions      (ckpt=PATH run_dir=DIR)
  export            UCSC track hub + IGV session                      (run_dir=DIR)
  run               the whole pipeline, resumable                     (run_dir=DIR: shipped model; train=true or experiment=...: train)
  predict|run manifest=genomes.tsv run_dir=COLL   (or -m data.fasta=a.fa,b.fa) many genomes: one job each,
                    summary.tsv, one hub for all                      (hydra/launcher=slurm on a cluster)
  collect COLL      gather a collection's genomes into one hub and index.html
  report            DIR/report.html and report.md from a run directory (run_dir=DIR)
  validate-hub DIR  hubCheck-style validation of a track hub
  serve DIR         serve a run directory over HTTP (byte ranges) on 127.0.0.1
  bench             textbook vs fast model throughput (JSON)
  ship              a training run -> genometracks/models/<name>/      (ckpt=RUN/checkpoints/best.ckpt name=ecoli_k12)
"""


class UsageError(ValueError):
    """A command line that cannot run (bad run_dir, unknown data command); the message says the fix."""


def _domain_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input or environment: ours (all ValueError), files, configs, pickles."""
    import pickle

    from hydra.errors import HydraException
    from lightning_fabric.utilities.exceptions import MisconfigurationException
    from omegaconf.errors import OmegaConfBaseException

    # MisconfigurationException: a trainer this machine cannot run (trainer=gpu without a GPU);
    # UncompletedJobError (FailedJobError: sbatch refused the jobs): a launcher's job that gave no result
    from submitit.core.utils import UncompletedJobError

    return (
        ValueError,
        OSError,
        pickle.UnpicklingError,
        HydraException,
        OmegaConfBaseException,
        MisconfigurationException,
        UncompletedJobError,
    )


def _fail(err: BaseException) -> None:
    print(error_line(err), file=sys.stderr)
    raise SystemExit(2)


def _resolve(target: str) -> Callable:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def slurm_tasks(devices: int | str) -> int:
    """SLURM tasks per node for a trainer: one per device, so `trainer.devices` must be a number."""
    if isinstance(devices, bool) or not str(devices).isdigit() or int(devices) < 1:
        raise UsageError(
            f"trainer.devices={devices}: hydra/launcher=slurm asks SLURM for one task per device, so give their "
            "number (e.g. trainer.devices=4), not auto or a list"
        )
    return int(devices)


def slurm_gpus(accelerator: str, devices: int | str) -> int | None:
    """GPUs per SLURM node for a trainer: its devices on a GPU accelerator, else None (no gres asked)."""
    return slurm_tasks(devices) if str(accelerator) in ("gpu", "cuda") else None


def slurm_mem(mem_gb: int, mem_per_cpu: str | None, mem_per_gpu: str | None) -> int | None:
    """A SLURM job's --mem in GB: `mem_gb`, or none when mem_per_cpu or mem_per_gpu is given (sbatch
    refuses --mem beside either: "--mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive")."""
    return None if mem_per_cpu or mem_per_gpu else int(mem_gb)


def local_gpus(accelerator: str, devices: int | str) -> int:
    """GPUs for a job of hydra/launcher=local: the trainer's devices on a GPU accelerator, else 0 (submitit's
    local executor hides every GPU from a job given 0, and needs a number)."""
    if str(accelerator) not in ("gpu", "cuda"):
        return 0
    if isinstance(devices, bool) or not str(devices).isdigit() or int(devices) < 1:
        raise UsageError(
            f"trainer.devices={devices}: hydra/launcher=local gives a GPU job its GPUs by number, so give it (e.g. trainer.devices=1)"
        )
    return int(devices)


LAUNCHED_PER_JOB = ("trainer", "trainer.devices", "trainer.accelerator", "trainer.num_nodes")


def check_launcher(overrides: list[str]) -> None:
    """Refuse what the submitit launchers (hydra/launcher=slurm|local) cannot do: a sweep over the trainer
    (the job array is sized once, from the trainer composed without the sweep: trainer=cpu,ddp_cpu gave
    every job one task, and rank 1 of ddp_cpu waited for a task it never got)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    values = {item.split("=", 1)[0].lstrip("+~"): item for item in overrides if "=" in item and not item.startswith("-")}
    launcher = values.get("hydra/launcher", "=").split("=", 1)[1]
    if launcher.removeprefix("submitit_") not in ("slurm", "local") or not {"-m", "--multirun"} & set(overrides):
        return
    parser = OverridesParser.create()
    for key in LAUNCHED_PER_JOB:
        if key in values and parser.parse_overrides([values[key]])[0].is_sweep_override():
            raise UsageError(
                f"{values[key]}: hydra/launcher={launcher} sizes every job of a sweep from one trainer "
                "(tasks, GPUs), so the points would not get their own; run one sweep per trainer"
            )


def check_local_launcher_job(cfg: DictConfig) -> None:
    """A job of hydra/launcher=local is one process: Lightning's DDP restarts further ranks as new
    commands, which submitit's local runner cannot start. Refuse a trainer of more than one device."""
    devices = OmegaConf.select(cfg, "trainer.devices", default=1)
    if os.environ.get("SUBMITIT_EXECUTOR") == "local" and str(devices) != "1":
        raise UsageError(
            f"trainer.devices={devices}: hydra/launcher=local runs each job as one process, and multi-process "
            "training cannot start there; drop hydra/launcher=local (Hydra's own launcher runs DDP) or use hydra/launcher=slurm"
        )


def _register_resolvers() -> None:
    """The `gt_shared_data` resolver and the structured-config schemas, before any composition."""
    register_schemas()
    if not OmegaConf.has_resolver("gt_shared_data"):
        OmegaConf.register_new_resolver("gt_shared_data", lambda: str(shared_data()))
    if not OmegaConf.has_resolver("gt_slurm_gpus"):
        OmegaConf.register_new_resolver("gt_slurm_gpus", slurm_gpus)
    if not OmegaConf.has_resolver("gt_slurm_tasks"):
        OmegaConf.register_new_resolver("gt_slurm_tasks", slurm_tasks)
    if not OmegaConf.has_resolver("gt_slurm_mem"):
        OmegaConf.register_new_resolver("gt_slurm_mem", slurm_mem)
    if not OmegaConf.has_resolver("gt_local_gpus"):
        OmegaConf.register_new_resolver("gt_local_gpus", local_gpus)
    if not OmegaConf.has_resolver("gt_config_groups"):
        OmegaConf.register_new_resolver("gt_config_groups", config_groups_text)


def _split_command(argv: list[str]) -> tuple[str, list[str]]:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(USAGE)
        raise SystemExit(0)
    if argv[0] == "data":
        if len(argv) < 2 or argv[1] != "summary":
            raise UsageError("genometracks data: the only data command is `genometracks data summary`")
        return "data summary", argv[2:]
    return argv[0], argv[1:]


def _check_run_dir(command: str, overrides: list[str]) -> None:
    """Refuse, before Hydra creates it, a `run_dir=` that cannot be a writable folder."""
    if command in NO_OUTPUT:
        return
    for item in overrides:
        if item.startswith("run_dir="):
            value = item.split("=", 1)[1]
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":  # Hydra's quoting: run_dir='my runs/a'
                value = value[1:-1]
            problem = output_dir_problem(value)
            if problem:
                raise UsageError(f"run_dir: {problem}; choose a writable run_dir=DIR")


def _check_group_choices(overrides: list[str]) -> None:
    """Refuse a config group option that is a schema (model=schema, data=schema_...): they sit in the
    groups for Hydra's type checks and composed a config of defaults only."""
    for item in overrides:
        key, _, value = item.partition("=")
        if "." not in key and "/" not in key and value.startswith("schema") and not key.startswith(("+", "~", "hydra")):
            raise UsageError(
                f"{key}={value} is the schema of the {key} configs, not a choice; choose one of {', '.join(group_options(key))}"
            )


def run_hydra(command: str, overrides: list[str]) -> None:
    """Run `command` as a Hydra app with `overrides` (Hydra's own flags such as -m, --cfg job work)."""
    import hydra

    _register_resolvers()
    target = _resolve(HYDRA_COMMANDS[command])
    extra = []
    if command in NO_OUTPUT:
        extra = ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none"]

    @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
    def _app(cfg):
        quiet_third_parties()  # again: Hydra has just configured logging
        try:
            if command in NO_OUTPUT:
                return target(cfg)
            check_root_settings(cfg)
            check_local_launcher_job(cfg)
            from hydra.core.hydra_config import HydraConfig

            if cfg.get("genome") is not None and cfg.get("manifest") is not None:  # one genome of a collection
                with stop_cleanly_on_signals():  # the job locks its genome's folder and records any failure
                    return _resolve(COLLECTION_JOB)(cfg, command)
            # one process per run directory (a sweep job's own folder; the first rank of a multi-process
            # training holds it for all), and a clean stop on SIGTERM/SIGINT
            folder = Path(HydraConfig.get().runtime.output_dir)
            lock = contextlib.nullcontext() if later_rank() else run_dir_lock(folder, command)
            with stop_cleanly_on_signals(), lock:
                return target(cfg)
        except _domain_errors() as err:  # reported here, before Hydra adds "Error executing job ..."
            if os.environ.get("GENOMETRACKS_FULL_ERROR") == "1":
                raise
            _fail(err)

    saved, full, named = sys.argv, os.environ.get("HYDRA_FULL_ERROR"), os.environ.get(COMMAND_ENV)
    # argv[0] stays the script (Lightning restarts the other ranks of `strategy=ddp` as python argv[0]
    # argv[1:]); the command travels in the environment, for those ranks and for the provenance line
    script = saved[0] if saved and Path(saved[0]).name in ("genometracks", "cli.py") else f"genometracks {command}"
    sys.argv = [script, *extra, *overrides]  # in-process callers (tests, notebooks) keep 'genometracks <command>' there
    os.environ[COMMAND_ENV] = command
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises the error itself; main() reports it on one line
    os.environ["GENOMETRACKS_FULL_ERROR"] = "1" if full == "1" else "0"
    try:
        _app()
    finally:
        sys.argv = saved
        for key, value in (("HYDRA_FULL_ERROR", full), (COMMAND_ENV, named)):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def later_rank() -> bool:
    """Whether this process is a second or later rank of a multi-process training: started by Lightning
    (LOCAL_RANK / NODE_RANK of `strategy=ddp`) or by SLURM (one task per device). The first rank holds
    the run directory's lock for all of them."""
    slurm_tasks = os.environ.get("SLURM_NTASKS", "1")
    if slurm_tasks.isdigit() and int(slurm_tasks) > 1 and os.environ.get("SLURM_PROCID", "0") != "0":
        return True
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


def _rank_restart(argv: list[str]) -> list[str]:
    """A rank Lightning restarted (`strategy=ddp`) gets the overrides without the command: put it back."""
    named = os.environ.get(COMMAND_ENV)
    if named and "LOCAL_RANK" in os.environ and (not argv or argv[0] not in {*HYDRA_COMMANDS, *PLAIN_COMMANDS, "data"}):
        return [*named.split(), *argv]
    return argv


def _flush_denormals() -> None:
    """Floats below 1.2e-38 become 0 in this process's compute threads (FTZ/DAZ; threads started
    later inherit it). Training gradients of a trained model are full of such values, and x86 CPUs
    handle them in microcode: without this a training step took 2.6x as long (docs/training.md)."""
    import torch

    torch.set_flush_denormal(True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `genometracks` console script; returns the exit status."""
    argv = _rank_restart(list(sys.argv[1:] if argv is None else argv))
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        command, rest = _split_command(argv)
        if command in PLAIN_COMMANDS:
            return int(_resolve(PLAIN_COMMANDS[command])(rest) or 0)
        if command not in HYDRA_COMMANDS:
            import difflib

            close = difflib.get_close_matches(command, [*HYDRA_COMMANDS, *PLAIN_COMMANDS], n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            print(f"genometracks: error: unknown command {command!r}; {hint}(genometracks --help lists the commands)", file=sys.stderr)
            return 2
        _flush_denormals()
        _check_run_dir(command, rest)
        _check_group_choices(rest)
        check_launcher(rest)
        if command == "run":  # the main job predicts with the shipped model unless asked to train
            rest = main_job_overrides(rest)
        elif command not in NO_OUTPUT and command != "train":  # later commands on a main job's directory: its shipped model
            rest = run_dir_model_overrides(rest)
        collection = collection_request(command, rest)
        if collection is not None:  # many genomes: one Hydra job each, then the summary and one hub
            quiet_third_parties()
            return run_collection(collection, lambda overrides: run_hydra(command, overrides), _resolve(COLLECT))
        quiet_third_parties()
        run_hydra(command, rest)
    except KeyboardInterrupt as stop:  # run_lock.Interrupted (SIGTERM) or Ctrl-C
        name = str(stop) or "SIGINT"
        again = "add resume=true to the same command to resume" if command == "train" else "run the same command again to resume"
        print(
            f"genometracks {command}: stopped by {name}; finished outputs are kept, temporary ones removed. {again[0].upper()}{again[1:]}",
            file=sys.stderr,
        )
        return 143 if name == "SIGTERM" else 130
    except _domain_errors() as err:
        if full_error:
            raise
        _fail(err)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
