"""One genome of a collection, as one Hydra job (a sweep point `genome=<name>`, run by the basic,
submitit-local or SLURM launcher in its own run directory `COLL/<name>/`).

The job reads its row of the collection's manifest into `data.fasta` / `data.tss` / `data.annotation`, takes the run
directory's lock and runs the pipeline's stages (`predict`: predict with peaks, then export; `run`:
every stage), which skip what an earlier job finished. Whatever happens, it ends by writing
`COLL/<name>/collection_job.json` (status, positions, peaks, seconds, the error as one line; while it
still holds the lock) and returns normally, so one failing genome never stops the others; a job that
finds another job of its genome at work leaves that job's record alone. SIGTERM / SIGINT still stop it.
"""

from __future__ import annotations

import json
import time

import pyBigWig
from omegaconf import DictConfig, open_dict

from genometracks.browser.genark import GENARK_SIZES
from genometracks.collection.manifest import ManifestError, genome_of, manifest_source
from genometracks.io.atomic import write_text_atomic
from genometracks.io.errors import error_line
from genometracks.io.run_config import ConfigError, check_same_run
from genometracks.io.run_lock import RunDirBusy, run_dir_lock
from genometracks.io.rundir import RunDir
from genometracks.pipeline import STAGES, forget_configuration, forget_unused_configuration, run_pipeline

STAGES_OF = {"predict": ("predict", "export"), "run": STAGES}


def _forget_outdated_run(run: RunDir, cfg: DictConfig) -> None:
    """A genome whose manifest row now names other files than its run directory was made from (say, a
    FASTA corrected after it failed its GenArk check, or replaced after it succeeded) forgets its
    configuration and finished stages, so every stage runs again on the new files; one whose earlier
    job failed before making anything (say, its FASTA was missing) forgets its configuration."""
    try:
        previous = json.loads(run.job_status.read_text())
    except (OSError, ValueError):
        return
    try:
        check_same_run(cfg, run.root)
    except ConfigError:  # the row changed: nothing made from the old one still holds
        forget_configuration(run, stages=True)
        return
    if previous.get("status") != "ok":
        forget_unused_configuration(run)


def _outcome(run: RunDir) -> dict:
    """positions and peaks of the genome from its predict stage's marker."""
    result = json.loads(run.stage_marker("predict").read_text())["result"]
    return {"positions": int(result["positions"]), "peaks": int(result["peaks"]["peaks"])}


def _check_genark(accession: str, run: RunDir, manifest: str, name: str) -> None:
    """A genome shown on a GenArk assembly must have its contigs (checked where the assembly is known)."""
    known = GENARK_SIZES.get(accession)
    with pyBigWig.open(str(run.tss_bigwig("+"))) as bw:
        sizes = dict(bw.chroms())
    if known is not None and sizes != known:
        raise ManifestError(
            f"{manifest}: genome {name!r} has contigs {_short(sizes)}, GenArk {accession} has "
            f"{_short(known)}; leave column 3 empty to give it a hub assembly of its own FASTA"
        )


def in_collection(line: str, source: str, name: str) -> str:
    """A genome's one-line error naming where to fix it: the manifest (or the data.fasta= list) and the
    genome's row, unless the message names them already; data.fasta/data.tss/data.annotation are that row's columns."""
    prefix = "genometracks: error: "
    text = line[len(prefix) :] if line.startswith(prefix) else line
    listed = source.startswith("data.fasta=")  # `-m data.fasta=a.fa,b.fa`: no manifest to name
    if f"genome {name!r}" not in text:
        text = f"genome {name!r}: {text}" if listed else f"{source}: genome {name!r}: {text}"
    if not listed:
        text = text.replace("set data.fasta to an existing file", "correct its FASTA column (column 2)")
    return prefix + text


def _short(sizes: dict[str, int]) -> str:
    items = [f"{c} ({n:,} nt)" for c, n in list(sizes.items())[:3]]
    return ", ".join(items) + (f" and {len(sizes) - 3} more" if len(sizes) > 3 else "")


def collection_job(cfg: DictConfig, command: str) -> dict:
    """Run genome `cfg.genome` of the collection `cfg.manifest` (see the module doc); returns its record."""
    name = str(cfg.genome)
    run = RunDir.of_job(cfg)
    start = time.perf_counter()
    record: dict = {"name": name, "status": "failed", "positions": None, "peaks": None, "seconds": None, "error": ""}
    record["accession"] = None  # the GenArk accession it was checked against (a rerun checks a new one)
    try:
        genome = genome_of(str(cfg.manifest), name)
        record["accession"] = genome.accession
        if command == "run" and genome.tss is None:
            raise ManifestError(
                f"{manifest_source(cfg.manifest)}: genome {name!r} has no TSS BED (column 4), which `genometracks run` "
                "needs for its data and interpret stages; add one, or predict only with "
                "`genometracks predict manifest=...`"
            )
        with open_dict(cfg):
            cfg.data.fasta = str(genome.fasta)
            if genome.tss is not None:
                cfg.data.tss = str(genome.tss)
            if genome.annotation is not None:
                cfg.data.annotation = str(genome.annotation)
        with run_dir_lock(run.root, f"{command} (collection genome {name})"):
            # the record is written while the lock is held: another job's status check never sees a
            # finished job without its record
            try:
                _forget_outdated_run(run, cfg)
                # until this job ends, the genome is not "ok": a job killed now (out of memory, a node lost, a
                # time limit) is run again by the next command instead of keeping an older run's record
                write_text_atomic(run.job_status, json.dumps({**record, "status": "running"}, indent=2))
                run_pipeline(cfg, STAGES_OF[command])
                if genome.accession is not None:
                    _check_genark(genome.accession, run, manifest_source(cfg.manifest), name)
                outcome = _outcome(run)
                record.update(status="ok", positions=outcome["positions"], peaks=outcome["peaks"])
            except Exception as err:  # noqa: BLE001 - any failure is this genome's, recorded; the others go on
                _failed(record, err, cfg, name)
            _write_record(record, run, start)
            return record
    except RunDirBusy as err:  # another job of this genome is at work: its record is its own, left alone
        record.update(status="running", error=in_collection(error_line(err), manifest_source(cfg.manifest), name))
        print(f"genome {name}: {record['error']}", flush=True)
        return record
    except Exception as err:  # noqa: BLE001 - before the lock: a bad manifest row, a missing TSS BED
        _failed(record, err, cfg, name)
    _write_record(record, run, start)
    return record


def _failed(record: dict, err: BaseException, cfg: DictConfig, name: str) -> None:
    record["error"] = in_collection(error_line(err), manifest_source(cfg.manifest), name)
    print(f"genome {name}: {record['error']}", flush=True)


def _write_record(record: dict, run: RunDir, start: float) -> None:
    record["seconds"] = round(time.perf_counter() - start, 1)
    run.root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run.job_status, json.dumps(record, indent=2))
