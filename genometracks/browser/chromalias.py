"""Sequence-name aliases of a genome: the hub's `chromAlias` file (UCSC) and the alias lists of IGV
and JBrowse 2, so a BED keyed by the RefSeq accession, the INSDC name (U00096.3), a `chr`-style
name or the FASTA's original NCBI-style header (`gi|...|ref|NC_X.1|`) all land on our contigs.

Our contig names are `genometracks.genome.contig_name` of the FASTA header's first word.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from pathlib import Path

from genometracks.genome.sequence import contig_name

# Aliases of sequences we know (RefSeq accession → {alias column: name}): INSDC (GenBank) accession,
# the chr-style name of UCSC's legacy E. coli browser and Ensembl Bacteria's sequence name.
KNOWN_ALIASES: dict[str, dict[str, str]] = {
    "NC_000913.3": {"genbank": "U00096.3", "ucsc": "chr", "ensembl": "Chromosome"},
}
COLUMNS = ("genbank", "refseq", "ucsc", "ensembl", "fasta")


def fasta_original_names(fasta: str | Path) -> dict[str, str]:
    """{contig name: the FASTA header's first word} for the records whose name was changed
    (NCBI-style headers); reads only the header lines."""
    fasta = Path(fasta)
    opener = gzip.open if fasta.suffix in {".gz", ".bgz"} else open
    names: dict[str, str] = {}
    with opener(fasta, "rb") as handle:
        for line in handle:
            if line.startswith(b">") and line[1:].split():
                word = line[1:].split()[0].decode(errors="replace")
                if contig_name(word) != word:
                    names[contig_name(word)] = word
    return names


def chr_partner(name: str) -> str | None:
    """The `chr`-style partner of a contig name: chr1 ↔ 1, chrX ↔ X, A → chrA; None for a name that
    merely starts with the letters (chromosome, chrom2: no 'omosome' or 'om2')."""
    if not name.startswith("chr"):
        return f"chr{name}"
    rest = name[3:]
    return rest if rest[:1].isdigit() or rest[:1].isupper() else None


def chrom_aliases(chrom_sizes: Mapping[str, int], originals: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """{contig: {column: alias}} for every contig: known aliases, the original FASTA name, the
    RefSeq/GenBank column for an accession-named contig, and a `chr`-style partner (chrA ↔ A)."""
    originals = dict(originals or {})
    table: dict[str, dict[str, str]] = {}
    for name in chrom_sizes:
        row = dict(KNOWN_ALIASES.get(name, {}))
        if name[:3] in ("NC_", "NZ_", "AC_", "NT_", "NW_"):
            row.setdefault("refseq", name)
        if name in originals:
            row["fasta"] = originals[name]
        if "ucsc" not in row and (partner := chr_partner(name)):
            row["ucsc"] = partner
        table[name] = {k: v for k, v in row.items() if v and v != name}
    taken = set(chrom_sizes)  # an alias may name one contig only and never shadow a real one
    for row in table.values():
        for column in list(row):
            if row[column] in taken:
                del row[column]
            else:
                taken.add(row[column])
    return table


def write_chrom_alias(path: str | Path, chrom_sizes: Mapping[str, int], originals: Mapping[str, str] | None = None) -> Path:
    """UCSC's chromAlias text format: a `# sequenceName <columns>` header, then one tab-separated row
    per contig, our name first, its aliases in the named columns (empty where it has none)."""
    table = chrom_aliases(chrom_sizes, originals)
    columns = [c for c in COLUMNS if any(c in row for row in table.values())]
    lines = ["# " + "\t".join(["sequenceName", *columns])]
    lines += ["\t".join([name, *(table[name].get(c, "") for c in columns)]) for name in chrom_sizes]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def alias_list(chrom_sizes: Mapping[str, int], originals: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """{contig: [aliases]} for IGV and JBrowse 2 alias files."""
    return {name: list(row.values()) for name, row in chrom_aliases(chrom_sizes, originals).items()}
