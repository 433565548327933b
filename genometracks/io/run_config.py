"""A run directory remembers the configuration it was made with (`DIR/config.yaml`, resolved, and
`DIR/overrides.txt`, the command-line overrides of its first job); later commands on the same
directory must compose the same data and model, or they would mix a genome's tracks with another's."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from genometracks.io.atomic import write_text_atomic
from genometracks.io.paths import conf_dir
from genometracks.io.provenance import sha256_file

COMPARED = ("data", "model")
# batch sizes and the label sets `data summary` reports: free to change between jobs
IGNORED = {
    "data.n_streams",
    "data.eval_streams",
    "data.label_sets",
    # the data set's declared capabilities (conf/data/*.yaml) follow from data.name, compared above;
    # run directories made before they were declared lack them
    "data.catalogue",
    "data.organism",
    "data.annotation",
    "data.terminators",
    "data.motifs",
    "data.sigma_classes",
}


def _ignored(key: str, data: dict[str, object]) -> bool:
    """Keys that do not change a run's outputs: IGNORED, and the synthetic genome generator's
    settings when the genome is read from a FASTA (data.fasta set), which ignores them."""
    return key in IGNORED or (key.startswith("data.generator.") and data.get("fasta") not in (None, "???"))


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key and the fix."""


def _flat(tree: object, prefix: str) -> dict[str, object]:
    if isinstance(tree, dict):
        out: dict[str, object] = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}.{key}"))
        return out
    return {prefix: tree}


def save_overrides(out: Path) -> None:
    """Write DIR/overrides.txt once (the first job's overrides), for the error message below."""
    target = out / "overrides.txt"
    if target.exists():
        return
    try:
        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith(("run_dir=", "stages="))]
    except ValueError:  # not under Hydra
        return
    write_text_atomic(target, " ".join(overrides) + "\n")


INPUT_KEYS = ("data.fasta", "data.tss")  # the files a run's outputs are made from, fingerprinted
INPUTS = "inputs.json"


def input_files(cfg: DictConfig) -> dict[str, Path]:
    """{key: path} of the INPUT_KEYS the configuration sets to an existing file."""
    data = cfg.get("data") or {}
    found = {}
    for key in INPUT_KEYS:
        value = data.get(key.split(".", 1)[1]) if hasattr(data, "get") else None
        if value not in (None, "", "???") and Path(str(value)).is_file():
            found[key] = Path(str(value))
    return found


def fingerprint(path: Path) -> dict[str, object]:
    """{path, bytes, mtime_ns, sha256} of one input file."""
    stat = os.stat(path)
    return {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}


def same_file_content(saved: dict[str, Any], path: Path) -> bool:
    """Whether `path` still holds what `saved` (a `fingerprint`) describes: same size and time, or same
    bytes (a file touched or copied anew)."""
    stat = os.stat(path)
    if stat.st_size != saved.get("bytes"):
        return False
    return stat.st_mtime_ns == saved.get("mtime_ns") or sha256_file(path) == saved.get("sha256")


def save_configuration(cfg: DictConfig, out: Path) -> None:
    """DIR/config.yaml (resolved; the INPUT_KEYS' files as absolute paths, so the run directory reads
    them from any working directory) and DIR/inputs.json (the input files' fingerprints)."""
    saved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    files = {key: path.absolute() for key, path in input_files(cfg).items()}
    for key, path in files.items():
        OmegaConf.update(saved, key, str(path), force_add=True)
    folder = _shipped_folder(OmegaConf.select(saved, "model.shipped", default=None))
    if folder is not None:  # a model folder given by path: absolute, like the input files
        OmegaConf.update(saved, "model.shipped", str(folder), force_add=True)
    write_text_atomic(out / "config.yaml", OmegaConf.to_yaml(saved))
    prints = {key: fingerprint(path) for key, path in files.items()}
    write_text_atomic(out / INPUTS, json.dumps(prints, indent=1) + "\n")


def changed_inputs(cfg: DictConfig, out: Path) -> list[str]:
    """The INPUT_KEYS whose file (same path as when DIR/inputs.json was written) now holds other bytes."""
    return changed_files(out, input_files(cfg))


def changed_files(out: Path, files: dict[str, Path]) -> list[str]:
    """The keys of `files` ({key: path}) that DIR/inputs.json fingerprinted at the same path and that
    now hold other bytes."""
    try:
        saved = json.loads((out / INPUTS).read_text())
    except (OSError, ValueError):
        return []  # a run directory from before session 16, or none yet
    changed = []
    for key, path in files.items():
        if key in saved and _same_path(path, saved[key].get("path")) and not same_file_content(saved[key], path):
            changed.append(key)
    return changed


def _same_path(path: Path | str, other: object) -> bool:
    """One file named two ways: the same text, or the same absolute path from this working directory."""
    if other is None:
        return False
    return str(path) == str(other) or Path(str(path)).absolute() == Path(str(other)).absolute()


def _same_input(key: str, saved_value: object, now_value: object, out: Path) -> bool:
    """Whether two values of an INPUT_KEYS setting name the same input: the same path (`_same_path`),
    or a file whose bytes are those DIR/inputs.json fingerprinted for the key (the file given by
    another path, e.g. relative from another folder)."""
    if saved_value == now_value or now_value in (None, "", "???"):
        return True
    if _same_path(str(now_value), saved_value):
        return True
    try:
        saved = json.loads((out / INPUTS).read_text())[key]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    path = Path(str(now_value))
    return path.is_file() and saved.get("bytes") == path.stat().st_size and saved.get("sha256") == sha256_file(path)


def _shipped_folder(value: object) -> Path | None:
    """The absolute folder of a `model.shipped` given as a path (with '/' or a leading '.'), else None (a name)."""
    text = str(value) if value is not None else ""
    return Path(text).expanduser().absolute() if ("/" in text or text.startswith(".")) else None


def _use_shipped(value: object) -> str:
    """The overrides that choose the shipped model `value` (a name or a folder)."""
    return f"model=shipped model.shipped={value}" if _shipped_folder(value) is not None else f"model={value}"


def check_same_run(cfg: DictConfig, out: Path) -> None:
    """Raise ConfigError when DIR/config.yaml exists and its data/model differ from `cfg`'s, or an input
    file of the same path was changed since (its outputs would be another genome's or labels'). A setting
    the run never had (`???`, a TSS file added to a predict-only run) is no conflict: it is written into
    DIR/config.yaml (`_record_added`), so later commands and `report` read it."""
    saved_path = out / "config.yaml"
    if not saved_path.is_file():
        return
    changed = changed_inputs(cfg, out)
    if changed:
        files = ", ".join(f"{key}={input_files(cfg)[key]}" for key in changed)
        stale = " and ".join(str(p) for p in (out / "stages", saved_path) if p.exists())  # a predict-only run has no stages/
        raise ConfigError(
            f"{out / INPUTS}: {files} changed since this run directory was made from it, and its outputs were made "
            f"from the old file; choose a new run_dir, or delete {stale} to make its outputs again"
        )
    saved = OmegaConf.to_container(OmegaConf.load(saved_path), resolve=False)
    now = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(saved, dict) and isinstance(now, dict)
    diffs, added = [], {}
    for group in COMPARED:
        a, b = (_flat(comparable(tree.get(group, {})), group) for tree in (saved, now))
        for key in sorted(set(a) | set(b)):
            if _ignored(key, saved.get("data", {})) or _ignored(key, now.get("data", {})) or a.get(key) == b.get(key):
                continue
            if a.get(key) == "???":  # a setting the run never had (a TSS file added for interpret): no conflict
                if b.get(key) not in (None, "", "???"):
                    added[key] = b.get(key)
                continue
            if key not in a and _newer_key(key, saved):  # a key of a later version (data.circular_tags): recorded
                added[key] = b.get(key)
                continue
            if key in INPUT_KEYS and _same_input(key, a.get(key), b.get(key), out):
                continue
            if (
                key == "model.shipped"
                and _shipped_folder(a.get(key)) is not None
                and _shipped_folder(a.get(key)) == _shipped_folder(b.get(key))
            ):
                continue  # one model folder named two ways (relative from another working directory)
            diffs.append(f"{key} was {'unset' if a.get(key) is None else repr(a.get(key))}, now {b.get(key)!r}")
    if diffs:
        diffs.sort(key=lambda text: not text.split(" ", 1)[0].endswith(".name"))  # data.name first
        overrides = (out / "overrides.txt").read_text().strip() if (out / "overrides.txt").is_file() else ""
        hint = f" (it was made with: {overrides})" if overrides else ""
        if shipped_name(now) and not shipped_name(saved):  # a directory trained by an earlier `run`
            hint += "; it holds a model trained there: add train=true to use it"
        elif shipped_name(saved) and shipped_name(saved) != shipped_name(now):  # `run` added model=ecoli_k12
            hint += f"; its tracks came from the shipped model: add {_use_shipped(shipped_name(saved))}"
        shown = 2 if overrides else 5  # with the overrides to pass again, two differences say enough
        more = f" and {len(diffs) - shown} more" if len(diffs) > shown else ""
        raise ConfigError(
            f"{saved_path}: this run directory was made with another configuration: "
            f"{'; '.join(diffs[:shown])}{more}. Pass the overrides the run "
            f"was made with{hint}, or choose a new run_dir"
        )
    if added:
        _record_added(out, added)


def comparable(section: Any) -> Any:
    """A config section as jobs compare it: data.splits without an interval (the 70/20/10 default, which
    versions before session 20 saved as null) as null."""
    if isinstance(section, dict) and isinstance(section.get("splits"), dict) and not any(section["splits"].values()):
        return {**section, "splits": None}
    return section


def _newer_key(key: str, saved: dict[Any, Any]) -> bool:
    """Whether dotted `key` is missing from the saved config only because that run's version had no such
    setting: its parent section was saved as a mapping (a section saved as null, e.g. data.curation, is a
    setting the run had switched off)."""
    node: object = saved
    for part in key.split(".")[:-1]:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return isinstance(node, dict) and key.rsplit(".", 1)[-1] not in node


def _record_added(out: Path, added: dict[str, Any]) -> None:
    """Write settings a later command gave that the run never had (a TSS file for interpret) into
    DIR/config.yaml (input files absolute, fingerprinted in inputs.json), so `report` and later
    commands read them too."""
    saved = OmegaConf.load(out / "config.yaml")
    prints = json.loads((out / INPUTS).read_text()) if (out / INPUTS).is_file() else {}
    for key, value in added.items():
        if key in INPUT_KEYS and Path(str(value)).is_file():
            value = str(Path(str(value)).absolute())
            prints[key] = fingerprint(Path(value))
        OmegaConf.update(saved, key, value, force_add=True)
    write_text_atomic(out / "config.yaml", OmegaConf.to_yaml(saved))
    write_text_atomic(out / INPUTS, json.dumps(prints, indent=1) + "\n")


def group_defaults(group: str, option: str = "default") -> DictConfig:
    """conf/<group>/<option>.yaml as written (unresolved): the single source of a group's defaults for
    callers that pass only some keys (library use, tests)."""
    loaded = OmegaConf.load(conf_dir() / group / f"{option}.yaml")
    assert isinstance(loaded, DictConfig), f"conf/{group}/{option}.yaml is not a mapping"
    loaded.pop("defaults", None)  # the file's defaults list (its schema), not a value
    return loaded


# what a resumed training run must keep: the optimiser, loss and schedule its checkpoint was made with,
# the seed of its data order, and the number of streams its carried memory holds (trainer.*, e.g. a
# longer max_epochs, and the checkpoint interval may change)
RESUME_FIXED = (
    "seed",
    "data.n_streams",
    "data.labels",
    "data.aux_labels",
    *(
        f"task.{k}"
        for k in ("lr", "weight_decay", "warmup_steps", "schedule", "loss", "pos_weight", "focal_gamma")
        + ("target_spread", "spread_decay", "aux_weight", "train_memory", "init_from")
    ),
)


def check_resume(cfg: DictConfig, out: Path, how: str = "resume=true continues the run as it was made") -> None:
    """ConfigError when a resume=true run changes a RESUME_FIXED setting of DIR/config.yaml (`how`: what
    continues it, for the message)."""
    saved_path = out / "config.yaml"
    if not saved_path.is_file():
        return
    saved = OmegaConf.load(saved_path)
    diffs = [
        f"{key} was {OmegaConf.select(saved, key)!r}, now {OmegaConf.select(cfg, key)!r}"
        for key in RESUME_FIXED
        if OmegaConf.select(saved, key) != OmegaConf.select(cfg, key)
    ]
    if diffs:
        raise ConfigError(
            f"{saved_path}: {how}, but {'; '.join(diffs)}. Drop the changed "
            "overrides to continue it, or train into a new run_dir (task.init_from=DIR/checkpoints/last.ckpt starts from its weights)"
        )


def check_root_settings(cfg: Any) -> None:
    """The top-level keys no group schema covers: one ConfigError naming the key and the fix."""
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed={seed!r}: give a whole number, e.g. seed=0")
    for key in ("resume", "train"):
        value = cfg.get(key)
        if not (isinstance(value, bool) or (key == "train" and value is None)):
            raise ConfigError(f"{key}={value!r}: give {key}=true or {key}=false")
    stages = cfg.get("stages")
    if stages is not None and not OmegaConf.is_list(stages) and not isinstance(stages, list):
        raise ConfigError(f"stages={stages!r}: give a list, e.g. stages=[{stages}] or stages=[predict,export]")
    logger = (cfg.get("task") or {}).get("logger")
    if logger is not None and logger not in ("csv", "tensorboard"):
        raise ConfigError(f"task.logger={logger!r}: choose csv or tensorboard")


def set_by_user(cfg: Any, key: str) -> bool:
    """Whether `key` ('group.leaf') was given on the command line (a Hydra override); outside Hydra
    (library use, tests), whether it differs from its data/model group file's value."""
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # not under Hydra
        group, leaf = key.split(".", 1)
        try:
            default = OmegaConf.select(group_defaults(group, str(cfg[group].name)), leaf)
        except (OSError, KeyError, AttributeError):
            return True
        return bool(OmegaConf.select(cfg, key) != default)
    return any(o.lstrip("+~").split("=", 1)[0] == key for o in overrides)


def shipped_name(cfg: Any) -> str | None:
    """model.shipped of a composed config (model=<shipped name>), else None; model=shipped without
    model.shipped= is a ConfigError."""
    model = cfg.get("model") if cfg is not None else None
    if isinstance(model, DictConfig) and "shipped" in model.keys() and OmegaConf.is_missing(model, "shipped"):
        raise ConfigError(
            "model.shipped is not set; pass model.shipped=NAME or FOLDER (with model=shipped): the shipped model to predict with"
        )
    value = model.get("shipped") if model is not None else None
    return str(value) if value else None


DEFAULT_MODEL = "ecoli_k12"  # the shipped model `genometracks run` predicts with unless asked to train


def _truthy(value: str) -> bool | None:
    text = value.strip().strip("'\"").lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    return None


def main_job_overrides(overrides: list[str]) -> list[str]:
    """`genometracks run` overrides with `model=<DEFAULT_MODEL>` added when the job should predict with
    the shipped model: `train=false`, or no `train=true` and no experiment, model or ckpt chosen."""
    keys = {o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[1] if "=" in o else "" for o in overrides}
    train = _truthy(keys["train"]) if "train" in keys else None
    if train is True or "model" in keys or "ckpt" in keys:  # ckpt= names the model itself
        return list(overrides)
    if train is None and "experiment" in keys:
        return list(overrides)
    return [f"model={DEFAULT_MODEL}", *overrides]


def run_dir_model_overrides(overrides: list[str]) -> list[str]:
    """A later command's overrides with `model=<DEFAULT_MODEL>` added when its run directory was made with
    it (`genometracks run` adds it itself, so the user never typed it; DIR/overrides.txt records it) and
    the command chooses no model, checkpoint, experiment or training of its own."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    if keys & {"model", "ckpt", "experiment", "train"}:
        return list(overrides)
    run_dir = next((o.split("=", 1)[1].strip("'\"") for o in overrides if o.startswith("run_dir=")), None)
    try:
        made_with = (Path(run_dir) / "overrides.txt").read_text().split() if run_dir else []
    except OSError:
        return list(overrides)
    return [f"model={DEFAULT_MODEL}", *overrides] if f"model={DEFAULT_MODEL}" in made_with else list(overrides)
