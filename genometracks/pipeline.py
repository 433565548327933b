"""`genometracks run`: data → train → predict → peaks → interpret → sigma → export → validate → report.

With no experiment, model or ckpt chosen (and no train=true) the CLI adds model=ecoli_k12: the train
stage is skipped and predict uses the shipped model (genometracks.inference.shipped); train=true trains from scratch.

Each finished stage leaves `DIR/stages/<stage>.json` (its summary and seconds). A re-run skips
finished stages, so an interrupted run resumes from the last finished one (training itself resumes
mid-epoch from `checkpoints/last.ckpt`). `stages=[predict,export]` runs just those, finished or not.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from genometracks.browser.export import export_command
from genometracks.browser.hub import HubError
from genometracks.browser.validate import validate_hub
from genometracks.data.summary import summarise_data
from genometracks.genome.sequence import circular_in_headers
from genometracks.inference.peaks import peaks_command
from genometracks.inference.predict import predict_command
from genometracks.interpret.command import interpret_command
from genometracks.io.atomic import write_text_atomic
from genometracks.io.jsonsafe import json_safe
from genometracks.io.malloc import release_freed_memory
from genometracks.io.resources import peak_rss_mib
from genometracks.io.run_config import IGNORED, INPUTS, check_resume, comparable, save_configuration, save_overrides, shipped_name
from genometracks.io.rundir import RunDir
from genometracks.report.build import build_report
from genometracks.sigma.evaluate import run_sigma
from genometracks.sigma.stage import SIGMA_OUTPUTS, run_sigma_stage
from genometracks.training.train import train

STAGES = ("data", "train", "predict", "peaks", "interpret", "sigma", "export", "validate", "report")


def train_command(cfg: DictConfig) -> dict:
    """`genometracks train`: the sigma-class CNN when the model is one (`model=sigma_cnn`, as in
    `experiment=sigma_cnn`), else the TSS model."""
    if str(cfg.model.get("_target_", "")).startswith("genometracks.sigma"):
        return run_sigma(cfg)
    return train(cfg)


def _stage_data(cfg: DictConfig, out: Path) -> dict:
    summary = summarise_data(cfg)
    write_text_atomic(RunDir(out).data_summary, json.dumps(json_safe(summary), indent=2, default=str, allow_nan=False))
    return {"total_length": summary["total_length"], "positions_per_split": summary["positions_per_split"]}


def _stage_train(cfg: DictConfig, out: Path) -> dict:
    name = shipped_name(cfg)
    if name or cfg.get("train") is False:
        if name and cfg.get("train") is True:
            raise ValueError(
                f"train=true with model={name}: a shipped model is already trained; drop model={name} "
                "to train the default model from scratch, or choose model=small|paper"
            )
        why = f"shipped model {name}, trained already" if name else "train=false"
        return {"skipped": f"{why} (train=true trains from scratch)"}
    if cfg.get("ckpt"):  # the later stages read ckpt=: a model trained here would go unused
        if cfg.get("train") is True:
            raise ValueError(
                f"train=true with ckpt={cfg.ckpt}: the later stages would use ckpt=, not the model trained here; "
                "drop ckpt= to train and use a new model, or drop train=true to use the checkpoint"
            )
        return {"skipped": f"ckpt={cfg.ckpt} given, trained already"}
    if RunDir(out).last_ckpt.exists():
        _check_continued_training(cfg, out)
        with open_dict(cfg):
            cfg.resume = True
    result = train_command(cfg)
    test = result.get("test", {}).get("both", {})
    return {"test_roc_auc": test.get("roc_auc"), "test_pr_auc": test.get("pr_auc"), "global_step": result.get("global_step")}


def _trains_here(cfg: DictConfig) -> bool:
    """Whether the train stage trains (not a shipped model, train=false or ckpt=)."""
    return not (shipped_name(cfg) or cfg.get("train") is False or cfg.get("ckpt"))


def _check_continued_training(cfg: DictConfig, out: Path) -> None:
    """The train stage continues DIR/checkpoints/last.ckpt: refuse settings that cannot continue it
    (check_resume), before anything is changed."""
    check_resume(cfg, out, how=f"`run` continues the training in {RunDir(out).last_ckpt} (its settings changed since it ran)")


def _precheck(stage: str, cfg: DictConfig, out: Path) -> None:
    """What `stage` would refuse before it changes anything, checked before the markers of the stages after
    it are removed (a refused train stage left predict..report to be made again)."""
    if stage == "train" and _trains_here(cfg) and RunDir(out).last_ckpt.exists():
        _check_continued_training(cfg, out)


def _stage_predict(cfg: DictConfig, out: Path) -> dict:
    return predict_command(cfg)


def _stage_peaks(cfg: DictConfig, out: Path) -> dict:
    return peaks_command(cfg)


def _stage_interpret(cfg: DictConfig, out: Path) -> dict:
    return interpret_command(cfg)


def _stage_sigma(cfg: DictConfig, out: Path) -> dict:
    """Sigma-class CNN on RegulonDB (E. coli only) and the sigma track of the peak calls."""
    if not cfg.data.get("sigma_classes"):
        return {"skipped": "sigma classes need the E. coli RegulonDB promoter set (data=ecoli_k12)"}

    return run_sigma_stage(cfg, out)


def _stage_export(cfg: DictConfig, out: Path) -> dict:
    return export_command(cfg)


def _stage_validate(cfg: DictConfig, out: Path) -> dict:
    problems = {}
    run = RunDir(out)
    for hub, folder in (("hub", run.hub), ("hub_genark", run.hub_genark)):
        if (folder / "hub.txt").exists():
            problems[hub] = validate_hub(folder)
    bad = {k: v for k, v in problems.items() if v}
    if bad:
        raise HubError("hub validation failed: " + "; ".join(f"{k}: {p}" for k, v in bad.items() for p in v))
    return {"validated": sorted(problems)}


def _stage_report(cfg: DictConfig, out: Path) -> dict:
    html, md = build_report(out)
    return {"report": str(Path(html).relative_to(out)), "markdown": str(Path(md).relative_to(out))}


RUNNERS: dict[str, Callable[[DictConfig, Path], dict]] = {
    "data": _stage_data,
    "train": _stage_train,
    "predict": _stage_predict,
    "peaks": _stage_peaks,
    "interpret": _stage_interpret,
    "sigma": _stage_sigma,
    "export": _stage_export,
    "validate": _stage_validate,
    "report": _stage_report,
}


def stage_marker(out: Path, stage: str) -> Path:
    """DIR/stages/<stage>.json, written when `stage` has finished."""
    return RunDir(out).stage_marker(stage)


# trainer settings that change the model a training makes (not where or how fast it runs); they count only
# where the train stage trains (not for a shipped model, train=false or ckpt=)
TRAINED_BY = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.limit_train_batches",
    "trainer.overfit_batches",
    "trainer.accumulate_grad_batches",
    "trainer.gradient_clip_val",
)
# the settings each stage's outputs are made from ('predict' without its 'peaks', which only the peaks
# stage reads); a finished stage whose settings changed runs again, and with it every later stage
STAGE_SETTINGS: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "train": ("data", "model", "task", "seed", "ckpt", "train", *TRAINED_BY),
    "predict": ("data", "model", "ckpt", "predict", "task.attention_path"),
    "peaks": ("predict.peaks", "data.annotation"),  # the calls' gene context reads the annotation
    "interpret": ("interpret", "seed"),
    "sigma": ("sigma", "sigma_model"),
    "export": ("export",),
    "validate": (),
    "report": (),
}


# stages whose outputs changed with the code (same settings): their version enters the fingerprint, so a
# run directory made before redoes them (and the stages after) once
OUTPUT_VERSIONS = {"sigma": SIGMA_OUTPUTS}


def stage_settings(cfg: DictConfig, stage: str, trainer: bool = True) -> str:
    """A fingerprint (SHA-256 of canonical JSON) of the settings `stage` reads (STAGE_SETTINGS); for the
    train stage without TRAINED_BY when it does not train, or `trainer`=False (markers of session 18 and
    before were written so)."""
    chosen: dict = {"outputs": OUTPUT_VERSIONS[stage]} if stage in OUTPUT_VERSIONS else {}
    keys = STAGE_SETTINGS[stage]
    if stage == "train" and (not trainer or shipped_name(cfg) or cfg.get("train") is False or cfg.get("ckpt")):
        keys = tuple(k for k in keys if k not in TRAINED_BY)  # no training: the trainer makes nothing here
    for key in keys:
        value = OmegaConf.select(cfg, key, default=None)
        value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        if key == "predict" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "peaks"}
        if key == "data" and isinstance(value, dict):  # batch sizes and reported label sets change no output
            value = {k: v for k, v in comparable(value).items() if f"data.{k}" not in IGNORED}
            value = _header_circularity(value)
        chosen[key] = value
    return hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _header_circularity(data: dict) -> dict:
    """`data` with data.circular_tags replaced by what it changes: the contigs that only their FASTA
    header makes circular (key left out when none, as in fingerprints written before the setting existed,
    so a run whose FASTA has no tags is not made again)."""
    data = dict(data)
    tags = data.pop("circular_tags", False)
    fasta = data.get("fasta")
    if tags and fasta not in (None, "", "???") and Path(str(fasta)).expanduser().is_file():
        tagged = sorted(set(circular_in_headers(Path(str(fasta)).expanduser())) - set(data.get("circular") or []))
        if tagged:
            data["circular_by_header"] = tagged
    return data


def _settings_changed(cfg: DictConfig | None, out: Path, stage: str) -> bool:
    """Whether `stage` finished with other settings than `cfg`'s (markers of older versions: no)."""
    if cfg is None:
        return False
    try:
        recorded = json.loads(stage_marker(out, stage).read_text()).get("settings")
    except (OSError, ValueError):
        return False
    if recorded is None or recorded == stage_settings(cfg, stage):
        return False
    # a train marker from before the trainer's settings counted: the same data, model and task are no change
    return not (stage == "train" and recorded == stage_settings(cfg, stage, trainer=False))


def plan(requested, out: Path, within: tuple[str, ...] = STAGES, cfg: DictConfig | None = None) -> list[tuple[str, bool]]:
    """[(stage, run?)]: explicit `stages=[...]` run as given; otherwise the stages of `within` (default:
    every stage) that have not finished or finished with other settings (STAGE_SETTINGS), and every
    stage after the first of those, in order."""
    if requested:
        unknown = [s for s in requested if s not in STAGES]
        if unknown:
            raise ValueError(f"stages={list(requested)}: unknown {unknown}; choose from {list(STAGES)}")
        return [(s, s in requested) for s in STAGES if s in requested]
    steps, again = [], False
    for stage in (s for s in STAGES if s in within):
        again = again or not stage_marker(out, stage).exists() or _settings_changed(cfg, out, stage)
        steps.append((stage, again))
    return steps


def run_pipeline(cfg: DictConfig, within: tuple[str, ...] = STAGES) -> dict:
    """Run the planned stages (the unfinished ones of `within`, unless `stages=` names them) with a
    progress line each and a summary table at the end."""
    if shipped_name(cfg) and cfg.get("ckpt"):  # refused by predict too, but only after data and train ran
        raise ValueError(f"model={shipped_name(cfg)} and ckpt={cfg.ckpt} both name the model to use; give one of them")
    trains = not (shipped_name(cfg) or cfg.get("ckpt") or cfg.get("train") is False)
    if trains and (cfg.get("trainer") or {}).get("fast_dev_run"):  # one batch, no checkpoint: nothing to predict with
        raise ValueError(
            "debug=fast_dev_run trains one batch and keeps no model, so predict and the later stages would have none: "
            "use it with `genometracks train`; a quick whole pipeline is experiment=smoke"
        )
    run = RunDir.checked(cfg)
    out = run.root
    out.mkdir(parents=True, exist_ok=True)
    fresh = not run.config.exists()
    if fresh:  # the run remembers its configuration (train rewrites the same)
        save_configuration(cfg, run.root)
        save_overrides(out)
    try:
        return _run_stages(cfg, run, within)
    except BaseException:
        if fresh:
            forget_unused_configuration(run)
        raise


def forget_configuration(run: RunDir, stages: bool = False) -> None:
    """Remove the configuration a run directory remembers (config.yaml, overrides.txt) and, with
    stages=True, its finished-stage markers, so the next command composes it afresh and runs every stage."""
    for path in [run.config, run.overrides, run.root / INPUTS, *(run.stages.glob("*.json") if stages else [])]:
        path.unlink(missing_ok=True)


def forget_unused_configuration(run: RunDir) -> None:
    """A new run that stopped before any stage finished or any checkpoint was saved (say, its FASTA was
    missing) made nothing from the configuration it remembers: forget it, so the corrected command may run."""
    if not any(run.stages.glob("*.json")) and not any(run.checkpoints.glob("*.ckpt")):
        forget_configuration(run)


def _drop_stale_report(run: RunDir) -> bool:
    """Remove DIR/report.html and report.md (they describe outputs about to change and would stand beside
    the new ones as if current); whether there were any."""
    found = [p for p in (run.report_html, run.report_md) if p.is_file()]
    for path in found:
        path.unlink()
    return bool(found)


def _run_stages(cfg: DictConfig, run: RunDir, within: tuple[str, ...]) -> dict:
    """`run_pipeline` after the run directory is set up: the stages, then the summary table."""
    out = run.root
    steps = plan(list(cfg.stages) if cfg.get("stages") else None, out, within, cfg)
    summary = {}
    for index, (stage, todo) in enumerate(steps, 1):
        head = f"[{index}/{len(steps)}] {stage}"
        if not todo:
            print(f"{head}: done earlier, skipped ({stage_marker(out, stage).relative_to(out)})", flush=True)
            summary[stage] = {"status": "done earlier"}
            continue
        changed = stage_marker(out, stage).exists() and _settings_changed(cfg, out, stage)
        print(f"{head} ...{' (its settings changed since it ran)' if changed else ''}", flush=True)
        _precheck(stage, cfg, out)
        for later in STAGES[STAGES.index(stage) + 1 :]:  # made from this stage's outputs: no longer finished
            stage_marker(out, later).unlink(missing_ok=True)
        if not any(s == "report" and todo for s, todo in steps) and _drop_stale_report(run):
            print("  report.html and report.md removed: made from outputs this stage rewrites; `genometracks run` writes them again")
        start = time.perf_counter()
        result = RUNNERS[stage](cfg, out) or {}
        release_freed_memory()  # what a stage freed is not the next stage's resident memory
        seconds, peak = round(time.perf_counter() - start, 1), peak_rss_mib()
        record = {
            "stage": stage,
            "seconds": seconds,
            "peak_rss_mib": peak,
            "settings": stage_settings(cfg, stage),
            "result": result,
        }
        write_text_atomic(stage_marker(out, stage), json.dumps(json_safe(record), indent=2, default=str, allow_nan=False))
        summary[stage] = {"status": "skipped" if "skipped" in result else "ran", "seconds": seconds, "peak_rss_mib": peak}
        if "skipped" in result:
            summary[stage]["why"] = str(result["skipped"])
        print(f"{head}: {'skipped: ' + str(result['skipped']) if 'skipped' in result else f'finished in {seconds} s'}", flush=True)
    print("\nstage       status        seconds  peak MiB (so far)")
    for stage, row in summary.items():
        why = f"  ({row['why']})" if row.get("why") else ""
        print(f"{stage:<11} {row['status']:<13} {row.get('seconds', ''):>7}  {row.get('peak_rss_mib', ''):>8}{why}")
    if run.report_html.exists():
        print(f"\nreport: {run.report_html}\nhub:    {run.hub / 'hub.txt'}\nIGV:    {run.igv / 'session.xml'}")
    return summary


def report_command(cfg: DictConfig) -> dict:
    """`genometracks report run_dir=DIR`."""
    result = _stage_report(cfg, RunDir.of_job(cfg).root)
    print(json.dumps(result))
    return result
