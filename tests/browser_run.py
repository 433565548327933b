"""A complete synthetic run directory for the browser clients (hubCheck and kent readers, IGV desktop,
JBrowse 2): every track `genometracks export` knows, on a genome whose FASTA has NCBI-style names.

Known content, so each client's reading can be checked exactly: plus-strand peaks at PLUS_PEAKS,
minus-strand peaks at MINUS_PEAKS, one sigma call per peak (sigma70 and sigma38 colours), motif hits
at MOTIF_HITS, the annotation's GENES; values carry at most 3 decimals, so a reader printing 6 significant digits is exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CHROM, PLASMID = "NZ_TEST01.1", "CP000001.1"
HEADERS = {CHROM: "gi|555001|ref|NZ_TEST01.1|", PLASMID: "gi|555002|gb|CP000001.1|"}
LENGTHS = {CHROM: 6000, PLASMID: 1500}
PLUS_PEAKS = (1000, 2500, 4000)  # 0-based +1 positions on CHROM, '+' strand
MINUS_PEAKS = (1500, 3000)  # ... '-' strand
MOTIF_HITS = ((960, 966, "+"), (1530, 1536, "-"))
# the annotation's genes (0-based half-open, strand, name, locus tag): the genes track of `peaks`
GENES = ((1050, 2300, "+", "dnaX", "SYN_0001"), (300, 1000, "-", "yfgM", "SYN_0002"), (4100, 5200, "+", "rpoZ", "SYN_0003"))
LOCUS = f"{CHROM}:801-3200"  # IGV syntax (1-based): holds peaks, sigma calls and motif hits


def sequences(seed: int = 7) -> dict[str, str]:
    """Random sequence with a soft-masked (lower-case) stretch and an N run on CHROM."""
    rng = np.random.default_rng(seed)
    seqs = {c: "".join(rng.choice(list("ACGT"), n)) for c, n in LENGTHS.items()}
    s = seqs[CHROM]
    seqs[CHROM] = s[:200] + s[200:260].lower() + "N" * 20 + s[280:]
    return seqs


def signal(strand: str) -> dict[str, np.ndarray]:
    """float32 per base: background 0.001-0.009, a peak of 0.9 (1 nt) with 0.3 shoulders at each call."""
    rng = np.random.default_rng(1 if strand == "+" else 2)
    out = {c: (rng.integers(1, 10, n) / 1000).astype(np.float32) for c, n in LENGTHS.items()}
    for pos in PLUS_PEAKS if strand == "+" else MINUS_PEAKS:
        out[CHROM][pos - 3 : pos + 4] = np.float32(0.3)
        out[CHROM][pos] = np.float32(0.9)
    return out


def peak_frame() -> pd.DataFrame:
    rows = [(CHROM, p, p + 1, f"TSS_{p + 1}+", 900, "+") for p in PLUS_PEAKS]
    rows += [(CHROM, p, p + 1, f"TSS_{p + 1}-", 900, "-") for p in MINUS_PEAKS]
    frame = pd.DataFrame(rows, columns=["chrom", "start", "end", "name", "score", "strand"])
    return frame.sort_values(["chrom", "start"]).reset_index(drop=True)


def motif_hit_records() -> pd.DataFrame:
    """The motif-hit track's rows for MOTIF_HITS (one head, FIMO scores 9.5 and 8.5 of a best 12): their
    itemRgb is the head's colour paled by score, which is what a browser must draw."""
    from genometracks.interpret.hit_track import hit_records
    from genometracks.interpret.scan import COLUMNS as SCAN_COLUMNS

    hits = pd.DataFrame(
        [
            ("L0H0", CHROM, s, e, st, 9.5 - i, 2e-5 * (i + 1), 9, 1.8e-4 * (i + 1), 0.025, f"TSS_{i}{st}", -10)
            for i, (s, e, st) in enumerate(MOTIF_HITS)
        ],
        columns=list(SCAN_COLUMNS),
    )  # best words as the scan returns them
    return hit_records(hits, {"L0H0": "m1"}, {"L0H0": 12.0})


def gene_set():
    """GENES on CHROM as the GeneSet `read_genes` would give."""
    from genometracks.labels.genes import GeneSet

    start, end, strand, name, tag = zip(*GENES, strict=True)
    return GeneSet(
        np.array([CHROM] * len(GENES), object),
        np.array(start, np.int64),
        np.array(end, np.int64),
        np.array(strand, "<U1"),
        np.array(name, object),
        np.array(tag, object),
        "browser_run",
    )


def make_run(run: Path) -> tuple[Path, dict[str, int]]:
    """Write the FASTA beside `run` and every track under run/tracks/; returns (fasta, chrom sizes)."""
    from genometracks.formats.bigbed import BedSchema, write_bed_outputs
    from genometracks.formats.bigwig import write_bigwig
    from genometracks.genome.intervals import SiteSet
    from genometracks.genome.sequence import Genome
    from genometracks.inference.genes_track import write_genes_track
    from genometracks.interpret.hit_track import SCHEMA as HIT_SCHEMA
    from genometracks.sigma.track import sigma_records, write_sigma_bigbed

    run.mkdir(parents=True, exist_ok=True)
    fasta = run.parent / f"{run.name}_genome.fa"
    fasta.write_text(
        "".join(
            f">{HEADERS[c]} synthetic {c}\n" + "\n".join(s[i : i + 60] for i in range(0, len(s), 60)) + "\n" for c, s in sequences().items()
        )
    )
    sizes = Genome.open(fasta).chrom_sizes()
    assert sizes == LENGTHS, sizes  # NCBI-style names read as their accessions
    tracks = run / "tracks"
    write_bigwig(tracks / "tss.plus.bw", sizes, signal("+"))
    write_bigwig(tracks / "tss.minus.bw", sizes, signal("-"))
    peaks = peak_frame()
    write_bed_outputs(peaks, tracks / "tss_peaks", BedSchema("tss_peaks", "TSS calls"), sizes)
    peaks.to_csv(tracks / "tss_peaks.bed", sep="\t", header=False, index=False)  # the plain BED `peaks` writes too
    classes = ["sigma24", "sigma28", "sigma32", "sigma38", "sigma54", "sigma70"]
    probs = np.full((len(peaks), len(classes)), 0.02)
    probs[np.arange(len(peaks)), np.where(peaks["strand"] == "+", 5, 3)] = 0.9  # + sigma70, - sigma38
    sites = SiteSet(
        peaks["chrom"].to_numpy(dtype=object),
        peaks["start"].to_numpy(),
        peaks["strand"].to_numpy(),
        name=peaks["name"].to_numpy(dtype=object),
        source="test",
    )
    write_sigma_bigbed(sigma_records(sites, probs, classes), tracks / "tss_sigma.bb", sizes, classes)
    write_bed_outputs(motif_hit_records(), tracks / "motif_hits", HIT_SCHEMA, sizes)
    write_genes_track(tracks, gene_set(), sizes)
    attribution = {c: (np.sin(np.arange(n) / 30) * 100).round().astype(np.float32) / 1000 for c, n in sizes.items()}
    write_bigwig(tracks / "attribution.plus.bw", sizes, attribution)
    write_bigwig(tracks / "attribution.minus.bw", sizes, {c: -v for c, v in attribution.items()})
    return fasta, sizes


def export(run: Path, fasta: Path, sizes: dict[str, int]) -> dict[str, str]:
    from genometracks.browser.export import export_run

    return export_run(run, fasta, sizes, {"genome_mode": "assembly"}, "Synthetic bacterium")


def export_organism(run: Path, fasta: Path, sizes: dict[str, int], organism: str) -> dict[str, str]:
    from genometracks.browser.export import export_run

    return export_run(run, fasta, sizes, {"genome_mode": "assembly"}, organism)


def exported_run(root: Path, why: str, before_export=None) -> tuple[Path, dict[str, int], dict[str, str]]:
    """make_run + export in ROOT/run with a local igv.js stand-in (no network; `why` says who needs none);
    `before_export()` runs in between (e.g. fetching a bundle the export copies). Returns (fasta, sizes,
    files written)."""
    import pytest

    fake_js = root / "igv.min.js"
    fake_js.write_text(f"// igv.js stand-in: {why}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENOMETRACKS_IGV_JS", str(fake_js))
        fasta, sizes = make_run(root / "run")
        if before_export is not None:
            before_export()
        return fasta, sizes, export(root / "run", fasta, sizes)
