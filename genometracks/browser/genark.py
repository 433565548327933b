"""UCSC GenArk assemblies we can check tracks against offline (hub `genome_mode="genark"`)."""

from __future__ import annotations

# Sequence names and lengths of GenArk assemblies, by accession.
GENARK_SIZES: dict[str, dict[str, int]] = {"GCF_000005845.2": {"NC_000913.3": 4641652}}
