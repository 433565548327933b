"""Many genomes, one command: `genometracks predict|run manifest=genomes.tsv run_dir=COLL` or
`genometracks predict|run -m data.fasta=a.fa,b.fa run_dir=COLL`.

Either form becomes one Hydra multirun over `genome=<name>,...` (the manifest's names; a FASTA list
is named after its files): one job per genome through the configured launcher (Hydra's basic one by
default, `hydra/launcher=local` for submitit's local executor, `hydra/launcher=slurm` for a SLURM job
array), each in its own run directory `COLL/<name>/` (`hydra.sweep.subdir=${genome}`). Genomes whose
last job finished are not launched again; the others resume from their last finished stage. When the
jobs are done the summary is written (`COLL/summary.tsv`, printed) and the collection's hub gathered
(`genometracks collect COLL`, see genometracks.collection.collect). Predict uses the shipped model
unless `model=` or `ckpt=` is given.

This module stays light (no torch): the CLI imports it for every command.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import QuotedString
from omegaconf import DictConfig, OmegaConf

from genometracks.browser.genark import GENARK_SIZES
from genometracks.browser.hub import HubError
from genometracks.collection.manifest import Genome, ManifestError, from_fastas, read_manifest, write_manifest
from genometracks.collection.summary import genome_record, write_summary
from genometracks.genome.sequence import Genome as Sequences
from genometracks.io.atomic import write_text_atomic
from genometracks.io.run_config import DEFAULT_MODEL, ConfigError, changed_files, group_defaults
from genometracks.io.run_lock import run_dir_lock
from genometracks.io.rundir import CollectionDir

COMMANDS = ("predict", "run")
MULTIRUN = ("-m", "--multirun")


@dataclass
class Collection:
    """A collection command: its directory, genomes and the overrides every genome's job shares."""

    command: str
    coll: CollectionDir
    genomes: list[Genome]
    overrides: list[str]
    source: str = ""  # where the genomes came from: the user's manifest, or data.fasta=...


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~") if "=" in override else ""


def _sweep_values(override: str) -> list[str] | None:
    """The values of a sweep override (`key=a,b`, quoting as Hydra reads it), or None if not a sweep."""
    parsed = OverridesParser.create().parse_overrides([override])[0]
    if not parsed.is_sweep_override():
        return None
    # the values themselves: sweep_string_iterator() gives them re-escaped ("'my genome.fa'", "my\\ genome.fa")
    return [v.text if isinstance(v, QuotedString) else str(v) for v in parsed.sweep_iterator()]


def hydra_flags(overrides: list[str]) -> list[str]:
    """Hydra's own flags among `overrides` (-m aside), each with its value where it takes one: '--cfg job'."""
    found = []
    for i, item in enumerate(overrides):
        if item.startswith("-") and item not in MULTIRUN:
            value = overrides[i + 1] if i + 1 < len(overrides) else ""
            found.append(f"{item} {value}" if value and "=" not in value and not value.startswith("-") else item)
    return found


def collection_request(command: str, overrides: list[str]) -> Collection | None:
    """The collection that `genometracks <command> <overrides>` asks for, or None for a single run."""
    if command not in COMMANDS:
        return None
    values = {_key(o): o.split("=", 1)[1] for o in overrides if _key(o)}
    multirun = any(o in MULTIRUN for o in overrides)
    fastas = _sweep_values(f"data.fasta={values['data.fasta']}") if multirun and "data.fasta" in values else None
    manifest = values.get("manifest")
    if manifest in (None, "null") and not fastas:
        return None
    if manifest not in (None, "null") and "data.fasta" in values:
        raise ConfigError(f"manifest={manifest} and data.fasta= both name genomes; give one of them")
    flags = hydra_flags(overrides)
    if flags:  # Hydra's own flags (--cfg job, --help, --info): they would be written into the collection's settings
        raise ConfigError(
            f"{' '.join(flags)} with a collection: ask it of one genome (genometracks {command} data=custom "
            f"data.fasta=GENOME.fa ... {' '.join(flags)}); nothing was written"
        )
    if "run_dir" not in values:
        raise ConfigError(
            f"genometracks {command} of several genomes needs run_dir=DIR: the collection folder "
            "that holds one run directory per genome, the summary and the hub"
        )
    rest = [o for o in overrides if o not in MULTIRUN and _key(o) not in ("manifest", "data.fasta", "run_dir")]
    sweeps = [o for o in rest if "=" in o and not _key(o).startswith("hydra") and _sweep_values(o) is not None]
    if sweeps:
        raise ConfigError(
            f"{sweeps[0]}: a collection sweeps over its genomes only; run one collection per setting (each with its own run_dir)"
        )
    data = values.get("data", "custom")
    if data != "custom":
        raise ConfigError(f"data={data}: a collection's genomes are FASTA files (data=custom); drop data={data}")
    coll = CollectionDir(Path(values["run_dir"].strip("'\"")).expanduser().absolute())
    if manifest not in (None, "null"):
        genomes = read_manifest(str(manifest).strip("'\""))
    else:
        genomes = from_fastas(fastas or [], Path.cwd())
    check_genark_contigs(genomes, str(manifest).strip("'\"") if manifest not in (None, "null") else "data.fasta=")
    if command == "run" and fastas:  # a list of FASTAs carries no TSS files: refused before any job, not by each in turn
        raise ConfigError(
            f"data.fasta={values['data.fasta']}: `genometracks run` needs each genome's TSS BED for its data and interpret "
            "stages, which a list of FASTAs does not give; write a manifest (name, FASTA, accession or empty, TSS BED) and "
            "pass manifest=FILE, or predict only with `genometracks predict -m data.fasta=...`"
        )
    shared = [o for o in rest if _key(o) != "data"]
    if command == "predict" and not any(_key(o) in ("model", "ckpt") for o in shared):
        shared = [f"model={DEFAULT_MODEL}", *shared]  # no training: the shipped model
    source = (
        str(Path(str(manifest).strip("'\"")).expanduser().absolute())
        if manifest not in (None, "null")
        else f"data.fasta={values['data.fasta']}"
    )
    return Collection(command, coll, genomes, ["data=custom", *shared, f"run_dir='{coll.root}'"], source)


def check_genark_contigs(genomes: list[Genome], source: str) -> None:
    """Before any job: a genome given a GenArk accession whose contigs are known must have them (each
    job checked it only after predicting and exporting in full). A FASTA that cannot be read is left to
    its job, which records why without stopping the others."""
    for genome in genomes:
        known = GENARK_SIZES.get(genome.accession or "")
        if known is None:
            continue
        try:
            sizes = Sequences.open(genome.fasta).chrom_sizes()
        except (ValueError, OSError):
            continue
        if dict(sizes) != known:
            have = ", ".join(f"{c} ({n:,} nt)" for c, n in list(sizes.items())[:3])
            want = ", ".join(f"{c} ({n:,} nt)" for c, n in known.items())
            raise ManifestError(
                f"{source}: genome {genome.name!r} ({genome.fasta}) has contigs {have}, GenArk {genome.accession} has {want}; "
                "leave its accession column empty to give it a hub assembly of its own FASTA"
            )


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# a genome's job on SLURM, unless the command line sizes it: conf/hydra/launcher/slurm.yaml is sized for
# training (8 CPUs, 32 GB, 4 h); measured for E. coli (README): predict 2 CPUs and 0.9 GB in about 1.5 min,
# the whole pipeline 2.6 GB in 5-8 min
SLURM_JOB = {
    "predict": {"cpus_per_task": 2, "mem_gb": 4, "timeout_min": 60},
    "run": {"cpus_per_task": 2, "mem_gb": 8, "timeout_min": 120},
}


def slurm_job_overrides(command: str, overrides: list[str]) -> list[str]:
    """hydra.launcher.* settings for a collection's SLURM jobs (SLURM_JOB, a job name naming the command)
    that `overrides` do not set; none when the launcher is not SLURM."""
    if not any(_key(o) == "hydra/launcher" and o.split("=", 1)[1] == "slurm" for o in overrides):
        return []
    given = {_key(o) for o in overrides}
    wanted = {**SLURM_JOB.get(command, {}), "name": f"genometracks_{command}"}
    if given & {"hydra.launcher.mem_per_cpu", "hydra.launcher.mem_per_gpu"}:  # sbatch takes one of the three
        wanted.pop("mem_gb", None)
    return [f"hydra.launcher.{k}={v}" for k, v in wanted.items() if f"hydra.launcher.{k}" not in given]


def job_overrides(request: Collection, names: list[str]) -> list[str]:
    """The Hydra multirun of `names`: one job per genome, in COLL/<name>/."""
    return [
        "-m",
        *request.overrides,
        *slurm_job_overrides(request.command, request.overrides),
        f"manifest={_quoted(str(request.coll.manifest))}",
        "genome=" + ",".join(_quoted(n) for n in names),
        "hydra.sweep.subdir=${genome}",
    ]


def hub_settings(overrides: list[str]) -> DictConfig:
    """conf/export's hub labels with the command line's `export.*` overrides."""
    settings = group_defaults("export")
    given = [o.split(".", 1)[1] for o in overrides if _key(o).startswith("export.")]
    merged = OmegaConf.merge(settings, OmegaConf.from_dotlist(given)) if given else settings
    assert isinstance(merged, DictConfig)
    return merged


def row_changed(coll: CollectionDir, genome: Genome) -> bool:
    """Whether the genome's manifest row names another FASTA, TSS or genes file than its run directory was made
    from, or the same file now holds other bytes (its job then runs again, every stage: `collection.job`)."""
    folder = coll.genome(genome.name)
    try:
        saved = OmegaConf.load(folder.config).get("data") or {}
    except (OSError, ValueError):
        return False
    changed = str(saved.get("fasta")) != str(genome.fasta)
    for key, path in (("tss", genome.tss), ("annotation", genome.annotation)):
        changed = changed or (path is not None and str(saved.get(key)) != str(path))
    files = {"data.fasta": Path(genome.fasta)}
    files |= {f"data.{key}": Path(path) for key, path in (("tss", genome.tss), ("annotation", genome.annotation)) if path is not None}
    return changed or bool(changed_files(folder.root, {k: p for k, p in files.items() if p.is_file()}))


def accession_changed(coll: CollectionDir, genome: Genome) -> bool:
    """Whether the genome's row names another GenArk accession than its finished job was checked against
    (its job then runs again: the check runs at the end of the job)."""
    try:
        record = json.loads(coll.genome(genome.name).job_status.read_text())
    except (OSError, ValueError):
        return False  # no finished job: it runs anyway
    return "accession" in record and record["accession"] != genome.accession


# free to change between runs of one collection: where and how the jobs run, the hub's labels
FREE_SETTINGS = ("hydra", "hydra/launcher", "export", "run_dir")


def shared_settings(request: Collection) -> list[str]:
    """The overrides that decide a genome's outputs (not FREE_SETTINGS), sorted."""
    return sorted(o for o in request.overrides if not _key(o).startswith(FREE_SETTINGS))


def check_same_settings(request: Collection) -> None:
    """ConfigError when COLL/settings.txt lists other shared overrides than this command's (the finished genomes
    were made with those: a new genome would be made otherwise, unnoticed); write the file when absent."""
    now = shared_settings(request)
    path = request.coll.settings
    if path.is_file():
        before = path.read_text().split("\n")[:-1]
        if before != now:
            gone, new = [s for s in before if s not in now], [s for s in now if s not in before]
            raise ConfigError(
                f"{path}: this collection was made with other settings (then: {' '.join(gone) or 'none'}; now: "
                f"{' '.join(new) or 'none'}); its finished genomes would not match the new ones. Run it with the "
                "same settings (the launcher and export.* labels may change), or choose a new run_dir"
            )
        return
    write_text_atomic(path, "\n".join(now) + "\n")


def run_collection(
    request: Collection, launch: Callable[[list[str]], None], collect: Callable[[CollectionDir, list[Genome], list[dict], DictConfig], dict]
) -> int:
    """Launch the genomes not finished yet, then write the summary and the hub. Exit status 0 when every
    genome is ok, 1 when some failed (the summary says which and why)."""
    coll = request.coll
    coll.root.mkdir(parents=True, exist_ok=True)
    with run_dir_lock(coll.root, f"{request.command} (collection)"):
        check_same_settings(request)
        write_manifest(coll.manifest, request.genomes, request.source)
        todo = [
            g.name
            for g in request.genomes
            if genome_record(coll, g)["status"] not in ("ok", "running") or row_changed(coll, g) or accession_changed(coll, g)
        ]
        for genome in request.genomes:
            if genome.name not in todo:
                record = genome_record(coll, genome)
                if record["status"] == "running":
                    print(f"genome {genome.name}: {record['error']}, skipped")
                else:
                    print(f"genome {genome.name}: finished earlier, skipped ({coll.genome(genome.name).job_status})")
        launch_error: BaseException | None = None
        if todo:
            print(f"{request.command}: {len(todo)} genome(s) to run, one job each, in {coll.root}/<name>/", flush=True)
            try:
                launch(job_overrides(request, todo))
            except Exception as err:  # noqa: BLE001 - e.g. a scheduler that lost jobs: summarise, then report
                launch_error = err
        records = write_summary(coll, request.genomes)
        try:
            written = collect(coll, request.genomes, records, hub_settings(request.overrides))
            print(f"hub:   {coll.root / str(written['hub'])}\nindex: {coll.root / str(written['index'])}", flush=True)
        except HubError as err:  # no genome finished: no hub (an earlier one is removed), the index says why
            if any(r["status"] == "ok" for r in records):
                raise
            print(f"{err}\nindex: {coll.index_html}", flush=True)
        if launch_error is not None:
            raise launch_error
    return 0 if all(r["status"] == "ok" for r in records) else 1
