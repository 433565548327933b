"""A collection's summary: one row per genome of its manifest (status, positions, peaks, wall seconds
of its last job, error line), as `COLL/summary.tsv` and a printed table."""

from __future__ import annotations

import json

from genometracks.collection.manifest import Genome
from genometracks.io.atomic import write_text_atomic
from genometracks.io.run_lock import lock_holder
from genometracks.io.rundir import CollectionDir

FIELDS = ("name", "status", "positions", "peaks", "seconds", "error")


def genome_record(coll: CollectionDir, genome: Genome) -> dict:
    """The genome's last job record (COLL/<name>/collection_job.json); a 'running' one while a live job holds
    the genome's lock (whatever an earlier job recorded), and a 'failed' one saying no job finished when the
    record says running but nobody holds the lock (killed by the scheduler, or never started)."""
    path = coll.genome(genome.name).job_status
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {"status": "running"}  # no record: as a job that never finished
    holder = lock_holder(coll.genome(genome.name).root)
    if holder is not None:  # a job is at work on it (a SLURM array whose submitting process was stopped, or a rerun)
        return {
            "name": genome.name,
            "status": "running",
            "positions": None,
            "peaks": None,
            "seconds": None,
            "error": f"still running: {holder}",
        }
    if record.get("status") == "running":
        # a job ends by writing its record: this one was killed or never ran
        return {
            "name": genome.name,
            "status": "failed",
            "positions": None,
            "peaks": None,
            "seconds": None,
            "error": f"genometracks: error: {path}: no job result; the job did not finish (killed, or never "
            f"started: see {coll.root / '.submitit'} on a cluster). Run the same command again",
        }
    return {key: record.get(key) for key in FIELDS}


def write_summary(coll: CollectionDir, genomes: list[Genome]) -> list[dict]:
    """Write COLL/summary.tsv and print the table; return the records in manifest order."""
    records = [genome_record(coll, g) for g in genomes]
    lines = ["\t".join(FIELDS)]
    lines += ["\t".join("" if r[k] is None else str(r[k]) for k in FIELDS) for r in records]
    write_text_atomic(coll.summary, "\n".join(lines) + "\n")
    width = max(len("genome"), *(len(r["name"]) for r in records))
    print(f"\n{'genome':<{width}}  status  {'positions':>11}  {'peaks':>7}  {'seconds':>8}  error")
    for r in records:
        numbers = [f"{r[k]:,}" if isinstance(r[k], int) else "" for k in ("positions", "peaks")]
        seconds = "" if r["seconds"] is None else f"{float(r['seconds']):.1f}"
        print(f"{r['name']:<{width}}  {r['status']:<6}  {numbers[0]:>11}  {numbers[1]:>7}  {seconds:>8}  {r['error'] or ''}")
    ok = sum(r["status"] == "ok" for r in records)
    print(f"{ok} of {len(records)} genome(s) ok; summary: {coll.summary}", flush=True)
    return records
