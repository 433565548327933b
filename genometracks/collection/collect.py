"""`genometracks collect COLL [export.hub_name=...]`: gather a collection's per-genome run directories
into one UCSC hub (`COLL/hub/`) and one index page (`COLL/index.html`), and rewrite `COLL/summary.tsv`.

The collection commands end with this step; run it alone after jobs finished on their own (a SLURM
array whose submitting process was stopped) or to rebuild the hub. The genomes are those of
`COLL/manifest.tsv` (written by the collection command); those whose job finished go into the hub.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from genometracks.browser.collection_hub import Member, write_collection_hub
from genometracks.collection.launch import hub_settings
from genometracks.collection.manifest import Genome, ManifestError, read_manifest
from genometracks.collection.summary import write_summary
from genometracks.io.run_config import group_defaults
from genometracks.io.run_lock import run_dir_lock
from genometracks.io.rundir import CollectionDir


def collect(coll: CollectionDir, genomes: list[Genome], records: list[dict], settings: DictConfig) -> dict:
    """Write the collection's hub and index page from the genomes' job records (see write_collection_hub)."""
    members = [
        Member(
            g.name,
            coll.genome(g.name).root,
            g.fasta,
            g.accession,
            str(r["status"]),
            r["positions"],
            r["peaks"],
            r["seconds"],
            str(r["error"] or ""),
        )
        for g, r in zip(genomes, records)
    ]
    return write_collection_hub(
        coll,
        members,
        hub_name=str(settings.hub_name),
        short_label=str(settings.short_label),
        long_label=str(settings.long_label),
        email=str(settings.email),
    )


def main_collect(argv: list[str]) -> int:
    """`genometracks collect COLL [export.key=value ...]`; exit 0 when every genome is ok, else 1."""
    if not argv or argv[0].startswith("-"):
        print("usage: genometracks collect COLL [export.hub_name=NAME export.short_label=... ...]")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    known = set(group_defaults("export"))
    for option in argv[1:]:
        key = option.split("=", 1)[0]
        if "=" not in option or not key.startswith("export.") or key.split(".", 1)[1] not in known:
            raise ManifestError(
                f"genometracks collect: {option!r} is not an option of collect; give export.KEY=VALUE with KEY one of {sorted(known)}"
            )
    coll = CollectionDir(Path(argv[0]).expanduser().absolute())
    if not coll.manifest.is_file():
        raise ManifestError(
            f"{coll.manifest}: not found; {coll.root} is not a collection directory (make one "
            "with `genometracks predict manifest=genomes.tsv run_dir=DIR`)"
        )
    with run_dir_lock(coll.root, "collect"):
        genomes = read_manifest(coll.manifest)
        records = write_summary(coll, genomes)
        written = collect(coll, genomes, records, hub_settings(argv[1:]))
    print(f"hub:   {coll.root / str(written['hub'])}\nindex: {coll.root / str(written['index'])}")
    return 0 if all(r["status"] == "ok" for r in records) else 1
