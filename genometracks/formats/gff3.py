"""GFF3 of point features (TSS calls), written to the specification (version 3.1.26).

Coordinates: a feature at 0-based forward position p is written start = end = p + 1 (GFF3 is
1-based, closed). Seqids, and attribute tags and values, are percent-encoded where the specification
reserves a character (tab, newline, CR, '%', control characters; in attributes also ';', '=',
'&' and ','; ',' separates the values of a multi-valued attribute). IDs are `<contig>:<name>`, unique
in the file even where two contigs have a call at the same place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.io.atomic import write_text_atomic

SEQID_OK = re.compile(r"[a-zA-Z0-9.:^*$@!+_?|-]")  # GFF3's unescaped seqid characters
ATTRIBUTE_RESERVED = set("\t\n\r%;=&,")


def _percent(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode())


def escape_seqid(name: str) -> str:
    """A contig name as a GFF3 seqid: characters outside [a-zA-Z0-9.:^*$@!+_?|-] percent-encoded."""
    return "".join(c if SEQID_OK.fullmatch(c) else _percent(c) for c in name)


def escape_value(value: object) -> str:
    """One attribute value (or tag) with GFF3's reserved characters and control characters percent-encoded."""
    return "".join(_percent(c) if c in ATTRIBUTE_RESERVED or ord(c) < 32 or ord(c) == 127 else c for c in str(value))


def attribute_column(pairs: Sequence[tuple[str, object]]) -> str:
    """Column 9 from (tag, value) pairs in order; a value that is a list/tuple is written as the
    attribute's several values (comma-separated); empty values and pairs are left out ('.' if none)."""
    parts = []
    for tag, value in pairs:
        values = [v for v in (value if isinstance(value, list | tuple) else [value]) if v is not None and str(v) != ""]
        if values:
            parts.append(f"{escape_value(tag)}={','.join(escape_value(v) for v in values)}")
    return ";".join(parts) or "."


def write_point_gff3(
    path: str | Path,
    features: pd.DataFrame,
    chrom_sizes: Mapping[str, int],
    feature_type: str,
    source: str,
    attributes: Sequence[str] = (),
) -> Path:
    """Write `features` (chrom, pos: 0-based, strand, name, score, and the `attributes` columns, written
    as lower-case tags in that order; a list-valued cell gives a multi-valued attribute) as GFF3
    rows of `feature_type` (a Sequence Ontology name, e.g. TSS), one `##sequence-region` per contig,
    sorted by contig (in `chrom_sizes` order), position and strand; atomically."""
    rank = {name: i for i, name in enumerate(chrom_sizes)}
    contig_rank = np.array([rank[c] for c in features["chrom"]], dtype=np.int64)
    strand = features["strand"].to_numpy(str)
    order = np.lexsort((strand, features["pos"].to_numpy(np.int64), contig_rank))
    frame = features.iloc[order]
    lines = ["##gff-version 3.1.26"]
    lines += [f"##sequence-region {escape_seqid(c)} 1 {size}" for c, size in chrom_sizes.items()]
    columns = [frame[tag].tolist() for tag in attributes]
    for i, (chrom, pos, strand_i, name, score) in enumerate(
        zip(frame["chrom"], frame["pos"], frame["strand"], frame["name"], frame["score"], strict=True)
    ):
        column9 = attribute_column([("ID", f"{chrom}:{name}"), ("Name", name), *((tag, col[i]) for tag, col in zip(attributes, columns))])
        start = str(int(pos) + 1)
        written_score = "." if pd.isna(score) else f"{float(score):.6g}"
        lines.append(
            "\t".join(
                [
                    escape_seqid(str(chrom)),
                    escape_value(source),
                    escape_value(feature_type),
                    start,
                    start,
                    written_score,
                    strand_i,
                    ".",
                    column9,
                ]
            )
        )
    return write_text_atomic(path, "\n".join(lines) + "\n")
