"""Three small genomes for the collection tests (tests/test_collection.py, tests/test_slurm.py): one
contig, two contigs, and a draft assembly with NCBI-style names; and the stand-ins they run with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# genome → {contig name in every output: (FASTA header, length)}; the draft has NCBI-style names
GENOMES = {
    "iso_a": {"chr1": ("chr1 isolate A", 9_000)},
    "iso_b": {"contig_b": ("contig_b", 6_000), "plasmid_b": ("plasmid_b plasmid", 2_500)},
    "draft": {
        f"NZ_DRAFT000{i}.1": (f"gi|100{i}|ref|NZ_DRAFT000{i}.1| draft contig {i}", n) for i, n in enumerate((4_000, 2_200, 1_300, 600))
    },
}


def write_fasta(path: Path, contigs: dict[str, tuple[str, int]], seed: int) -> Path:
    """Random sequence, a soft-masked stretch and an N run in the first contig; 70-letter lines."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, (header, n) in enumerate(contigs.values()):
        seq = "".join(rng.choice(list("ACGT"), n))
        if i == 0:
            seq = seq[:300] + seq[300:400].lower() + "N" * 50 + seq[450:]
        parts.append(f">{header}\n" + "\n".join(seq[j : j + 70] for j in range(0, n, 70)) + "\n")
    path.write_text("".join(parts))
    return path


def stub_env(root: Path) -> dict[str, str]:
    """igv.js and the JBrowse bundle are stand-ins (nothing is fetched); a private cache."""
    stub = root / "stub.js"
    stub.write_text("// browser bundle stand-in: these tests read the files, not the pages\n")
    return {"GENOMETRACKS_IGV_JS": str(stub), "GENOMETRACKS_JBROWSE_JS": str(stub), "GENOMETRACKS_CACHE": str(root / "cache")}


def summary_rows(coll: Path) -> dict[str, dict[str, str]]:
    lines = (coll / "summary.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return {row[0]: dict(zip(head, row)) for row in (line.split("\t") for line in lines[1:])}
