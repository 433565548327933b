"""The one-line form of an error, as the CLI prints it and a collection's summary records it."""

from __future__ import annotations

import re

from genometracks.io.paths import conf_dir

# settings a command needs that have no default (`???` in conf/), and how to give them
REQUIRED = {
    "data.fasta": "data.fasta=GENOME.fa (with data=custom): the genome to read",
    "data.tss": "data.tss=TSS.bed (with data=custom): the TSS positions that training and evaluation need",
}


def error_line(err: BaseException) -> str:
    """`genometracks: error: ...` on one line. Advice to load a checkpoint with `weights_only=False`
    (from torch or Lightning) is cut: that runs arbitrary code from the file. A missing required
    setting (OmegaConf's MissingMandatoryValue) is named with how to give it."""
    key = getattr(err, "full_key", None)
    if type(err).__name__ == "MissingMandatoryValue" and key:
        how = REQUIRED.get(str(key), f"{key}=VALUE")
        return f"genometracks: error: {key} is not set; pass {how}"
    text = " ".join(str(err).split()) or type(err).__name__
    unknown = re.match(r"Could not override '([^']+)'\.", text)
    if unknown:  # Hydra's advice (+KEY=VALUE) would add a setting nothing reads
        close = nearest_setting(unknown.group(1))
        hint = f"did you mean {close}?" if close else "the settings and their defaults are in the conf/ folder"
        return f"genometracks: error: {unknown.group(1)} is not a setting; {hint}"
    missing_option = re.search(r"Could not find '([\w]+)/([^']+)'", text)
    if missing_option:  # Hydra adds its search path and lists the schema options too
        group, option = missing_option.groups()
        choices = group_options(group)
        import difflib

        nearest = difflib.get_close_matches(option, choices, n=1, cutoff=0.6)
        hint = f"did you mean {group}={nearest[0]}? " if nearest else ""
        return f"genometracks: error: {group}={option}: no such {group} config; {hint}choose one of {', '.join(choices)}"
    merging = re.match(r"Error merging override ([\w.]+)=(.*)$", text)
    if merging:
        key, value = merging.groups()
        if setting_is_a_list(key) and not value.startswith("["):
            return f"genometracks: error: {key} is a list: give {key}=[{value}] (quoted in the shell: '{key}=[{value}]')"
        cause = " ".join(str(err.__cause__ or "").split()).split(" full_key:")[0]
        return f"genometracks: error: {key}={value}: {cause or 'not a valid value for this setting'}"
    if type(err).__name__ == "FailedJobError" and "failed during processing" in text:  # a job raised
        return f"genometracks: error: a job failed: {_job_failure(str(err))}"
    if type(err).__name__ == "FailedJobError":  # submitit: sbatch (or the local launcher) refused the jobs
        return (
            f"genometracks: error: the scheduler refused the job(s): {text}; check hydra.launcher.partition, "
            "cpus_per_task, mem_gb (or mem_per_cpu) and timeout_min against what `sinfo` shows"
        )
    if type(err).__name__ == "UncompletedJobError":  # submitit: a job ended without a result
        inner = text.rsplit("genometracks: error: ", 1)  # the job's own one-line error, where it printed one
        if len(inner) == 2:
            return f"genometracks: error: a job failed: {inner[1]}"
        return f"genometracks: error: a job ended without a result: {text[:400]}; its log is in the run directory's .submitit/ folder"
    sentences = re.split(r"(?<=[.!?])\s+", text)
    text = " ".join(s for s in sentences if "weights_only" not in s) or type(err).__name__
    return f"genometracks: error: {text}"


def _job_failure(message: str) -> str:
    """What submitit's 'Job (task=N) failed during processing with trace: ----- TRACE ----- You can check
    full logs ... - PATH' says in one line: the trace's last line (the error), and the .err log."""
    lines = [line.strip() for line in message.splitlines()]
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    trace = lines[rules[0] + 1 : rules[1]] if len(rules) >= 2 else lines
    cause = next((line for line in reversed(trace) if line), "no trace")
    logs = [line[2:] for line in lines if line.startswith("- ") and line.endswith(".err")]
    return f"{cause[:300]}" + (f" (log: {logs[0]})" if logs else "")


def _settings() -> dict[str, object]:
    """Every setting the conf/ folder defines: {'group.key...': default} over each group's option files
    and the root config (the first option seen gives the default)."""
    from omegaconf import OmegaConf

    root = conf_dir()
    found: dict[str, object] = {}

    def walk(tree: object, prefix: str) -> None:
        if isinstance(tree, dict):
            for key, value in tree.items():
                if key not in ("defaults", "hydra", "_target_"):
                    walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            found.setdefault(prefix, tree)

    for path in sorted(root.glob("*/*.yaml")):
        if path.parent.name not in ("hydra", "experiment", "debug"):
            walk(OmegaConf.to_container(OmegaConf.load(path), resolve=False), path.parent.name)
    walk(OmegaConf.to_container(OmegaConf.load(root / "config.yaml"), resolve=False), "")
    return found


def nearest_setting(key: str) -> str | None:
    """The defined setting closest to a mistyped `key` (difflib), or None."""
    import difflib

    try:
        names = list(_settings())
    except (OSError, ValueError):
        return None
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    return close[0] if close else None


def setting_is_a_list(key: str) -> bool:
    """Whether conf/ gives `key` a list default (data.circular=[...], stages=[...])."""
    try:
        return isinstance(_settings().get(key), list)
    except (OSError, ValueError):
        return False


def group_options(group: str) -> list[str]:
    """The options of a config group a user may choose (conf/<group>/*.yaml), schemas left out."""
    folder = conf_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("schema")) if folder.is_dir() else []


def config_groups_text() -> str:
    """`--help`'s list of config groups, one `group: option, ...` line each (conf/<group>/, hydra/launcher
    included), without the schemas Hydra would list among the options (choosing one is refused)."""
    root = conf_dir()
    groups = sorted(str(d.relative_to(root)) for d in root.rglob("*") if d.is_dir() and any(d.glob("*.yaml")))
    return "\n".join(f"{group}: {', '.join(group_options(group))}" for group in groups)
