"""TSS calls in their gene context (primary, secondary, internal, antisense, orphan), the genes they
are read from, and the calls' GFF3, on hand-made layouts with known answers."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from genometracks.formats.gff3 import attribute_column, escape_seqid, escape_value, write_point_gff3
from genometracks.inference.gene_context import ContextRules, classify_calls, covering
from genometracks.labels.annotations import AnnotationError, read_tss_gff
from genometracks.labels.genes import GeneSet, read_genes
from tests.conftest import ECOLI, needs_ecoli

L = 10_000  # contig length of the hand-made layouts


def genes(*rows: tuple[int, int, str, str], chrom: str = "c") -> GeneSet:
    """GeneSet from (start, end, strand, name) rows, 0-based half-open; locus tags are name + '_t'."""
    return GeneSet(
        np.array([chrom] * len(rows), dtype=object),
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype="<U1"),
        np.array([r[3] for r in rows], dtype=object),
        np.array([f"{r[3]}_t" for r in rows], dtype=object),
    )


def calls(*rows: tuple[int, str, float], chrom: str = "c") -> pd.DataFrame:
    """Calls from (0-based position, strand, probability)."""
    return pd.DataFrame(
        {
            "chrom": [chrom] * len(rows),
            "pos": [r[0] for r in rows],
            "strand": [r[1] for r in rows],
            "name": [f"TSS_{r[0] + 1}{r[1]}" for r in rows],
            "probability": [r[2] for r in rows],
        }
    )


def classify(layout: GeneSet, frame: pd.DataFrame, circular: bool = False, **rules: int) -> pd.DataFrame:
    return classify_calls(frame, layout, {"c": L}, frozenset({"c"}) if circular else frozenset(), ContextRules(**rules))


# gene A on '+' at [1000, 2000) (first base 1000); gene B on '-' at [5000, 6000) (first base 5999)
LAYOUT = genes((1000, 2000, "+", "A"), (5000, 6000, "-", "B"))


@pytest.mark.parametrize(
    ("pos", "strand", "classes", "gene", "utr"),
    [
        (1000, "+", "primary", "A", 0),  # at the start codon: a leaderless mRNA, not internal
        (700, "+", "primary", "A", 300),  # max_utr nt upstream: still the gene's
        (699, "+", "orphan", "", -1),  # one further: none
        (1001, "+", "internal", "", -1),  # one past the first base
        (1999, "+", "internal", "", -1),  # the last base
        (2000, "+", "orphan", "", -1),  # past the end
        (5999, "-", "primary", "B", 0),  # a minus gene's first base is its end - 1
        (6299, "-", "primary", "B", 300),
        (6300, "-", "orphan", "", -1),
        (5998, "-", "internal", "", -1),
        (5000, "-", "internal", "", -1),
        (900, "-", "antisense", "", -1),  # antisense_flank nt before A on the other strand
        (899, "-", "orphan", "", -1),
        (2099, "-", "antisense", "", -1),  # antisense_flank - 1 nt past A's end
        (2100, "-", "orphan", "", -1),
        (1500, "-", "antisense", "", -1),  # inside A, other strand
        (4900, "+", "antisense", "", -1),
        (6099, "+", "antisense", "", -1),
    ],
)
def test_each_class_at_its_boundaries(pos, strand, classes, gene, utr):
    row = classify(LAYOUT, calls((pos, strand, 0.5))).iloc[0]
    assert (row["classes"], row["gene"], row["utr_length"]) == (classes, gene, utr)
    assert row["locus_tag"] == (f"{gene}_t" if gene else "")


def test_the_most_probable_tss_of_a_gene_is_primary_the_others_secondary():
    frame = calls((900, "+", 0.4), (950, "+", 0.8), (990, "+", 0.8), (6100, "-", 0.3), (6050, "-", 0.2))
    table = classify(LAYOUT, frame)
    # A: 950 and 990 tie at 0.8, the shorter UTR (990) wins; B: 6100 is the more probable
    assert table["classes"].tolist() == ["secondary", "secondary", "primary", "primary", "secondary"]
    assert table["gene"].tolist() == ["A", "A", "A", "B", "B"]
    assert table["utr_length"].tolist() == [100, 50, 10, 101, 51]


def test_a_tss_can_be_in_several_classes_and_names_each_gene():
    # C on '+' right after A: a TSS near A's end is internal to A, upstream of C and antisense to D on '-'
    layout = genes((1000, 2000, "+", "A"), (2100, 3000, "+", "C"), (1800, 1950, "-", "D"))
    row = classify(layout, calls((1900, "+", 0.5))).iloc[0]
    assert row["classes"] == "primary,internal,antisense"
    assert (row["gene"], row["utr_length"], row["internal_gene"], row["antisense_gene"]) == ("C", 200, "A", "D")
    assert row[["primary", "secondary", "internal", "antisense", "orphan"]].tolist() == [True, False, True, True, False]


def test_the_antisense_gene_is_the_one_whose_body_holds_the_tss():
    # E. coli's strongest call, TSS_1638406+: inside ynfQ (-) and 49 nt from cspI (-), whose flank reaches further
    layout = genes((1_255, 1_444, "-", "ynfQ"), (1_454, 1_667, "-", "cspI"))
    rows = classify(layout, calls((1_405, "+", 0.9), (1_450, "+", 0.8), (1_700, "+", 0.7)))
    assert rows["antisense_gene"].tolist() == ["ynfQ", "cspI", "cspI"]  # inside ynfQ; between the two; cspI's flank
    assert rows["classes"].tolist() == ["antisense"] * 3


def test_per_gene_table_lists_primary_and_secondary_calls_and_counts_the_rest():
    from genometracks.inference.gene_tss import gene_tss_summary, gene_tss_table

    # two genes share a name (RefSeq has such): rows, not names, tie calls to genes
    layout = genes((5000, 6000, "-", "dup"), (1000, 2000, "+", "dup"), (3000, 3500, "+", "lone"))
    frame = calls(
        (900, "+", 0.5),  # dup(+): 100 nt, secondary
        (960, "+", 0.9),  # dup(+): 40 nt, primary
        (800, "+", 0.4),  # dup(+): 200 nt, secondary
        (1500, "+", 0.3),  # inside dup(+)
        (1600, "-", 0.3),  # antisense to dup(+)
        (6010, "-", 0.7),  # dup(-), first base 5999: 11 nt, primary
    )
    table = gene_tss_table(classify(layout, frame), layout, {"c": L})
    columns = ["start", "strand", "gene", "primary_tss", "utr_length", "secondary_tss", "internal_calls", "antisense_calls"]
    assert table[columns].values.tolist() == [
        [1001, "+", "dup", "961", 40, "901,801", 1, 1],  # the nearest secondary first
        [3001, "+", "lone", "", -1, "", 0, 0],
        [5001, "-", "dup", "6011", 11, "", 0, 0],
    ]
    assert table["primary_probability"].tolist()[0] == 0.9 and np.isnan(table["primary_probability"].tolist()[1])
    assert gene_tss_summary(table) == {
        "genes": 3,
        "with_primary_tss": 2,
        "share_with_primary_tss": 0.6667,
        "with_secondary_tss": 1,
        "median_utr_length": 25.5,
        "by_upstream_gap": {  # dup(+) and dup(-) head their directons on a linear contig; lone is 1,000 nt behind dup(+)
            "directon head": {"genes": 2, "share_with_primary_tss": 1.0},
            "gap >= 100": {"genes": 1, "share_with_primary_tss": 0.0},
            "gap 40-99": {"genes": 0, "share_with_primary_tss": None},
            "gap < 40": {"genes": 0, "share_with_primary_tss": None},
        },
    }
    assert table[["upstream_gene", "upstream_gap"]].values.tolist() == [["", -1], ["dup", 1000], ["", -1]]


@pytest.mark.parametrize("circular", [False, True])
def test_upstream_neighbours_on_each_strand_across_the_origin_and_overlapping(circular):
    from genometracks.inference.gene_tss import upstream_neighbours

    # + a [100, 1000), + b [1030, 2000) 30 nt behind a; - c [3000, 4000) and - d [3996, 5000): on '-' upstream is to
    # the right, so d is c's upstream neighbour, 4 nt of overlap; + e [9000, 9900); - f [9950, 10_100) across the origin
    layout = genes(
        (1030, 2000, "+", "b"),
        (100, 1000, "+", "a"),
        (3000, 4000, "-", "c"),
        (3996, 5000, "-", "d"),
        (9000, 9900, "+", "e"),
        (9950, 10_100, "-", "f"),
    )
    row, gap = upstream_neighbours(layout, {"c": L}, frozenset({"c"}) if circular else frozenset())
    names = [layout.name[r] if r >= 0 else "" for r in row]
    # b behind a (30 nt); a: the gene before it is f across the origin, on '-': a heads its directon either way;
    # c: d upstream with -4 (overlap); d: the next gene, e, is on '+': head; e: d is before it on '-': head;
    # f: the next gene is a, across the origin, on '+': head
    assert dict(zip(layout.name, zip(names, gap.tolist(), strict=True), strict=True)) == {
        "b": ("a", 30),
        "a": ("", -1),
        "c": ("d", -4),
        "d": ("", -1),
        "e": ("", -1),
        "f": ("", -1),
    }
    # a second '+' gene across the origin of a circular contig: g [9950, 10_050) has h [200, 500) 150 nt behind it
    ring = genes((9950, 10_050, "+", "g"), (200, 500, "+", "h"))
    row, gap = upstream_neighbours(ring, {"c": L}, frozenset({"c"}) if circular else frozenset())
    # g has h before it, 9,450 nt back; h has g before it only across the origin of the circular contig: 150 nt
    assert (row.tolist(), gap.tolist()) == (([1, 0], [9_450, 150]) if circular else ([1, -1], [9_450, -1]))


def test_the_nearest_downstream_gene_is_the_tss_gene():
    layout = genes((1000, 1100, "+", "short"), (1150, 2000, "+", "next"))
    row = classify(layout, calls((900, "+", 0.5))).iloc[0]
    assert (row["gene"], row["utr_length"], row["classes"]) == ("short", 100, "primary")


def test_distances_run_across_the_origin_of_a_circular_contig_only():
    layout = genes((50, 500, "+", "first"), (9900, 10_100, "-", "wraps"))  # 'wraps' crosses the origin, first base 99
    frame = calls((9950, "+", 0.5), (300, "-", 0.5), (20, "+", 0.5), (9000, "+", 0.5))
    circular = classify(layout, frame, circular=True)
    # 9950 '+' is 100 nt upstream of 'first' across the origin and inside 'wraps' on the other strand, but 20 '+'
    # is nearer (30 nt) at the same probability: 'first''s primary, 9950 its secondary; 300 '-' is 201 nt upstream of
    # 'wraps'' first base (99) and inside 'first' on the other strand; 9000 is 1,050 nt from 'first': orphan
    assert circular["classes"].tolist() == ["secondary,antisense", "primary,antisense", "primary,antisense", "orphan"]
    assert circular["gene"].tolist() == ["first", "wraps", "first", ""]
    assert circular["utr_length"].tolist() == [100, 201, 30, -1]
    linear = classify(genes((50, 500, "+", "first")), frame.iloc[:1])
    assert linear["classes"].tolist() == ["orphan"]  # a linear contig does not wrap


def mirrored(layout: GeneSet, frame: pd.DataFrame) -> tuple[GeneSet, pd.DataFrame]:
    """The same layout on the reverse complement: [s, e) → [L - e, L - s), p → L - 1 - p, strands swapped."""
    flip = {"+": "-", "-": "+"}
    flipped = GeneSet(
        layout.chrom,
        L - layout.end,
        L - layout.start,
        np.array([flip[s] for s in layout.strand], dtype="<U1"),
        layout.name,
        layout.locus_tag,
    )
    return flipped, frame.assign(pos=L - 1 - frame["pos"], strand=frame["strand"].map(flip))


@pytest.mark.parametrize("circular", [False, True])
def test_a_genome_and_its_reverse_complement_get_the_same_classes(circular):
    rng = np.random.default_rng(3)
    starts = rng.integers(0, L - 1500, 40)
    layout = genes(*[(int(s), int(s + rng.integers(100, 1500)), str(rng.choice(["+", "-"])), f"g{i}") for i, s in enumerate(starts)])
    frame = calls(*[(int(p), str(rng.choice(["+", "-"])), float(rng.random())) for p in rng.choice(L, 300, replace=False)])
    forward = classify(layout, frame, circular=circular)
    reverse = classify(*mirrored(layout, frame), circular=circular)
    columns = ["classes", "gene", "utr_length", "internal_gene", "antisense_gene"]
    # (where two genes cover a TSS, the internal or antisense gene named may differ between the two directions)
    assert forward["classes"].tolist() == reverse["classes"].tolist()
    assert forward["utr_length"].tolist() == reverse["utr_length"].tolist()
    assert forward["gene"].tolist() == reverse["gene"].tolist()
    assert forward[["primary", "secondary", "internal", "antisense", "orphan"]].any().all(), forward[columns]  # every class met


def test_covering_agrees_with_the_definition():
    rng = np.random.default_rng(0)
    lo = rng.integers(0, 1000, 200)
    hi = lo + rng.integers(1, 80, 200)
    queries = np.arange(-5, 1100)
    found = covering(lo, hi, queries)
    inside = (lo[None, :] <= queries[:, None]) & (queries[:, None] < hi[None, :])
    assert np.array_equal(found >= 0, inside.any(axis=1))
    hit = found >= 0
    assert np.all((lo[found[hit]] <= queries[hit]) & (queries[hit] < hi[found[hit]]))
    assert np.array_equal(covering(lo[:0], hi[:0], queries), np.full(queries.size, -1))


def test_rules_refuse_negative_distances():
    with pytest.raises(ValueError, match="must be >= 0 nt"):
        ContextRules(max_utr=-1)


GFF = """##gff-version 3
#!processor NCBI annotwriter
##sequence-region U00096.3 1 10000
U00096.3\tRefSeq\tregion\t1\t10000\t.\t+\t.\tID=U00096.3:1..10000
U00096.3\tRefSeq\tgene\t1001\t2000\t.\t+\t.\tID=gene-b0001;Name=thrL;locus_tag=b0001
U00096.3\tRefSeq\tCDS\t1001\t2000\t.\t+\t0\tID=cds-1;Parent=gene-b0001;product=thr%3B leader
U00096.3\tRefSeq\tgene\t5001\t6000\t.\t-\t.\tID=gene-b0002;gene=yaaX;locus_tag=b0002
U00096.3\tRefSeq\tpseudogene\t7001\t7100\t.\t+\t.\tID=gene-b0003;locus_tag=b0003
U00096.3\tRefSeq\tgene\t9901\t10100\t.\t-\t.\tID=gene-wrap;Name=ori%3Bgene
##FASTA
>U00096.3
ACGT
"""


def test_read_genes_takes_gene_rows_on_the_genome_names():
    layout = read_genes_text(GFF, circular=True)  # U00096.3 is NC_000913.3's GenBank name; CDS rows left out
    assert layout.chrom.tolist() == ["NC_000913.3"] * 4
    assert layout.start.tolist() == [1000, 5000, 7000, 9900] and layout.end.tolist() == [2000, 6000, 7100, 10100]
    assert layout.strand.tolist() == ["+", "-", "+", "-"]
    assert layout.name.tolist() == ["thrL", "yaaX", "b0003", "ori;gene"]  # Name, else gene, else locus_tag; percent-decoded
    assert layout.locus_tag.tolist() == ["b0001", "b0002", "b0003", ""]
    assert layout.five_prime(np.full(4, 10_000)).tolist() == [1000, 5999, 7000, 99]


def read_genes_text(text: str, circular: bool = False, contig: str = "NC_000913.3", gz: bool = False) -> GeneSet:
    """read_genes of `text` written to a temporary file, on a genome of one 10,000-nt contig."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp())
    path = folder / ("a.gff.gz" if gz else "a.gff")
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    try:
        return read_genes(path, {contig: 10_000}, frozenset({contig}) if circular else frozenset())
    finally:
        shutil.rmtree(folder)


def test_read_genes_uses_cds_and_rna_rows_where_a_file_has_no_genes():
    # Prokka's GFF3: CDS, rRNA, tRNA and tmRNA rows without gene rows; a repeat_region is no gene
    text = (
        "##gff-version 3\n"
        "c\tProkka\tCDS\t11\t40\t.\t-\t0\tID=P_1;locus_tag=P_00001;product=x\n"
        "c\tbarrnap:0.9\trRNA\t301\t1842\t.\t+\t.\tID=P_2;locus_tag=P_00002;product=16S ribosomal RNA\n"
        "c\tAragorn:1.2\ttRNA\t2001\t2076\t.\t+\t.\tID=P_3;gene=tRNA-Ile;locus_tag=P_00003\n"
        "c\tAragorn:1.2\ttmRNA\t3001\t3363\t.\t-\t.\tID=P_4;gene=ssrA;locus_tag=P_00004\n"
        "c\tminced\trepeat_region\t5001\t5200\t.\t.\t.\tID=CRISPR1\n"
    )
    layout = read_genes_text(text, contig="c", gz=True)
    assert layout.start.tolist() == [10, 300, 2000, 3000] and layout.end.tolist() == [40, 1842, 2076, 3363]
    assert layout.name.tolist() == ["P_00001", "P_00002", "tRNA-Ile", "ssrA"]
    # a call 50 nt upstream of the 16S rRNA gene is that gene's primary TSS, not an orphan
    assert classify(layout, calls((250, "+", 0.9)))[["classes", "gene", "utr_length"]].values.tolist() == [["primary", "P_00002", 50]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("c\tx\tgene\t50\t40\t.\t+\t.\tID=g\n", r"line 2: start 50 / end 40 \(GFF is 1-based"),
        ("c\tx\tgene\t5\t40\t.\t*\t.\tID=g\n", r"line 2: strand '\*'"),
        ("c\tx\tgene\t9990\t10020\t.\t+\t.\tID=g\n", r"line 2: gene c:9990-10020 ends past c \(10,000 nt; 1 records do\)"),
        ("chrX\tx\tgene\t5\t40\t.\t+\t.\tID=g\n", r"line 2: unknown contig 'chrX'"),
        ("c\tx\tmRNA\t5\t40\t.\t+\t.\tID=g\n", r"no gene, pseudogene, CDS or RNA gene rows \(types: \['mRNA'\]\)"),
        ("c\tx\tgene\t5\t40\n", r"line 2: 5 columns, need at least 9"),
    ],
)
def test_a_bad_annotation_is_one_line_naming_the_line_and_the_fix(text, message):
    with pytest.raises(AnnotationError, match=message):
        read_genes_text("##gff-version 3\n" + text, contig="c")


def test_gff3_escapes_what_the_specification_reserves():
    assert escape_seqid("contig 1|x>") == "contig%201|x%3E"
    assert escape_value("a;b=c&d,e%\tf") == "a%3Bb%3Dc%26d%2Ce%25%09f"
    assert attribute_column([("ID", "x"), ("tss_class", ["primary", "internal"]), ("gene", ""), ("sigma", None)]) == (
        "ID=x;tss_class=primary,internal"
    )
    assert attribute_column([]) == "."


def test_gff3_reads_back_at_the_same_positions_with_unique_ids(tmp_path):
    sizes = {"chr one": 500, "p2": 300}
    frame = pd.DataFrame(
        {
            "chrom": ["p2", "chr one", "chr one", "p2"],
            "pos": [10, 0, 499, 10],
            "strand": ["-", "+", "-", "+"],
            "name": ["TSS_11-", "TSS_1+", "TSS_500-", "TSS_11+"],
            "score": [0.5, 0.25, np.nan, 0.125],
            "tss_class": [["antisense"], ["primary", "internal"], ["orphan"], ["primary"]],
        }
    )
    path = write_point_gff3(tmp_path / "calls.gff3", frame, sizes, "TSS", "genometracks", ["tss_class"])
    lines = path.read_text().splitlines()
    assert lines[:3] == ["##gff-version 3.1.26", "##sequence-region chr%20one 1 500", "##sequence-region p2 1 300"]
    assert lines[3].split("\t") == [
        "chr%20one",
        "genometracks",
        "TSS",
        "1",
        "1",
        "0.25",
        "+",
        ".",
        "ID=chr one:TSS_1+;Name=TSS_1+;tss_class=primary,internal",
    ]
    assert lines[4].split("\t")[3:7] == ["500", "500", ".", "-"]
    ids = [line.split("\t")[8].split(";")[0] for line in lines[3:]]
    assert len(set(ids)) == 4  # TSS_11 on p2, both strands: IDs are contig:name
    back = read_tss_gff(path)
    assert list(zip(back.chrom, back.pos.tolist(), back.strand.tolist(), strict=True)) == [
        ("chr%20one", 0, "+"),
        ("chr%20one", 499, "-"),
        ("p2", 10, "+"),
        ("p2", 10, "-"),
    ]  # 0-based +1 again (the seqid as written: our reader does not decode it)
    validate_with_genometools(path)


def validate_with_genometools(path) -> None:
    """GenomeTools' `gt gff3validator` with Sequence Ontology type checks (scripts/install.sh --test installs it)."""
    gt = shutil.which("gt")
    if gt is None:
        pytest.skip("GenomeTools is not installed: `apt-get install -y genometools` (scripts/install.sh --test installs it)")
    result = subprocess.run([gt, "gff3validator", "-typecheck", "so", str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and "input is valid GFF3" in result.stdout, result.stderr


def two_gene_genome(tmp_path, seed: int) -> tuple:
    """(FASTA, GFF3) of contig 'c' (L nt, random): geneA at 1001-2000 on +, geneB at 5001-6000 on - (GFF3's 1-based)."""
    rng = np.random.default_rng(seed)
    fasta = tmp_path / "g.fa"
    fasta.write_text(">c\n" + "".join(rng.choice(list("ACGT"), L)) + "\n")
    gff = tmp_path / "g.gff3"
    gff.write_text(
        "##gff-version 3\n"
        "c\tx\tgene\t1001\t2000\t.\t+\t.\tID=A;Name=geneA;locus_tag=tA\n"
        "c\tx\tgene\t5001\t6000\t.\t-\t.\tID=B;Name=geneB;locus_tag=tB\n"
    )
    return fasta, gff


def test_peaks_and_export_write_the_context_table_plot_and_gff3(tmp_path):
    """The peaks stage on a custom genome with a GFF3 and TSS labels, then export: every call's classes,
    the labels' beside them, and a GFF3 that GenomeTools accepts and our TSS reader reads back."""
    from genometracks.browser.calls_gff3 import write_calls_gff3
    from genometracks.formats.bigwig import write_bigwig
    from genometracks.inference.peaks import peaks_command
    from genometracks.io.rundir import RunDir
    from tests.conftest import compose

    fasta, gff = two_gene_genome(tmp_path, seed=5)
    tss = tmp_path / "tss.bed"
    tss.write_text("c\t950\t951\tk1\t0\t+\nc\t6049\t6050\tk2\t0\t-\nc\t8000\t8001\tk3\t0\t+\n")
    run = tmp_path / "run"
    signal = {s: {"c": np.full(L, 0.01, np.float32)} for s in "+-"}
    for pos, strand in ((950, "+"), (1500, "+"), (6049, "-"), (1500, "-"), (8000, "+")):
        signal[strand]["c"][pos] = 0.9 if pos != 1500 else 0.6
    for strand, word in (("+", "plus"), ("-", "minus")):
        write_bigwig(run / "tracks" / f"tss.{word}.bw", {"c": L}, signal[strand])
    cfg = compose(
        "data=custom",
        f"data.fasta={fasta}",
        f"data.tss={tss}",
        f"data.annotation={gff}",
        "predict.peaks.threshold=0.5",
        f"run_dir={run}",
    )
    summary = peaks_command(cfg)
    assert summary["gene_context"]["calls"] == 5
    table = pd.read_csv(run / "tracks" / "tss_context.tsv", sep="\t", keep_default_na=False)
    assert table[
        ["position", "strand", "classes", "gene", "locus_tag", "utr_length", "internal_gene", "antisense_gene"]
    ].values.tolist() == [
        [951, "+", "primary", "geneA", "tA", 50, "", ""],
        [1501, "+", "internal", "", "", -1, "geneA", ""],
        [1501, "-", "antisense", "", "", -1, "", "geneA"],
        [6050, "-", "primary", "geneB", "tB", 50, "", ""],
        [8001, "+", "orphan", "", "", -1, "", ""],
    ]
    assert table["probability"].tolist() == pytest.approx([0.9, 0.6, 0.6, 0.9, 0.9])
    saved = json.loads((run / "tracks" / "tss_context.json").read_text())
    both_heads = {
        "genes": 2,
        "with_primary_tss": 2,
        "share_with_primary_tss": 1.0,
        "with_secondary_tss": 0,
        "median_utr_length": 50.0,
        "by_upstream_gap": {
            "directon head": {"genes": 2, "share_with_primary_tss": 1.0},
            "gap >= 100": {"genes": 0, "share_with_primary_tss": None},
            "gap 40-99": {"genes": 0, "share_with_primary_tss": None},
            "gap < 40": {"genes": 0, "share_with_primary_tss": None},
        },
    }
    assert saved["calls"] == {
        "primary": 2,
        "secondary": 0,
        "internal": 1,
        "antisense": 1,
        "orphan": 1,
        "calls": 5,
        "median_primary_utr": 50,
    }
    assert saved["reference"] == {
        "per_gene": both_heads,  # the labels sit where the calls do at both genes
        "labels": "custom",
        "primary": 2,
        "secondary": 0,
        "internal": 0,
        "antisense": 0,
        "orphan": 1,
        "calls": 3,
        "median_primary_utr": 50,
    }
    assert (run / "plots" / "tss_context.png").stat().st_size > 10_000
    # per gene: its primary call, 5'UTR and the calls inside it on either strand
    per_gene = pd.read_csv(run / "tracks" / "gene_tss.tsv", sep="\t", keep_default_na=False)
    assert per_gene.values.tolist() == [
        ["c", 1001, 2000, "+", "geneA", "tA", 951, 0.9, 50, "", 1, 1, "", -1],
        ["c", 5001, 6000, "-", "geneB", "tB", 6050, 0.9, 50, "", 0, 0, "", -1],
    ]
    assert saved["per_gene"] == both_heads
    from genometracks.report.build import build_report

    page = build_report(run, snapshot=False, compare=False)[1].read_text()  # the Markdown report
    section = page.split("TSS calls in gene context")[1]
    assert "2 of the 2 genes (100 %) have a primary call (median 5'UTR 50 nt), 0 a secondary one" in section
    # the calls' bigBed carries the context after BED6, for a browser's click; the plain BED stays BED6
    import pyBigWig

    with pyBigWig.open(str(run / "tracks" / "tss_peaks.bb")) as bb:
        assert [rest.split("\t")[3:] for _, _, rest in bb.entries("c", 0, L)] == [
            ["primary", "geneA", "50"],
            ["internal", ".", "-1"],
            ["antisense", ".", "-1"],
            ["primary", "geneB", "50"],
            ["orphan", ".", "-1"],
        ]
        assert "tss_class" in bb.SQL().decode()
    assert {len(line.split("\t")) for line in (run / "tracks" / "tss_peaks.bed").read_text().splitlines()} == {6}
    path = write_calls_gff3(RunDir(run), {"c": L})
    rows = [line.split("\t") for line in path.read_text().splitlines() if not line.startswith("#")]
    assert rows[0] == [
        "c",
        "genometracks",
        "TSS",
        "951",
        "951",
        "0.9",
        "+",
        ".",
        "ID=c:TSS_951+;Name=TSS_951+;tss_class=primary;gene=geneA;locus_tag=tA;utr_length=50",
    ]
    assert rows[2][8] == "ID=c:TSS_1501-;Name=TSS_1501-;tss_class=antisense;antisense_gene=geneA"
    back = read_tss_gff(path)
    assert back.pos.tolist() == [950, 1500, 1500, 6049, 8000]
    validate_with_genometools(path)
    # without an annotation the context files go (they would describe other calls), and the GFF3 has no classes
    cfg.data.annotation = None
    assert peaks_command(cfg)["gene_context"] == {}
    assert not (run / "tracks" / "tss_context.tsv").exists() and not (run / "plots" / "tss_context.png").exists()
    assert not (run / "tracks" / "gene_tss.tsv").exists()
    assert "tss_class" not in write_calls_gff3(RunDir(run), {"c": L}).read_text()
    with pyBigWig.open(str(run / "tracks" / "tss_peaks.bb")) as bb:
        assert "tss_class" not in bb.SQL().decode()  # BED6 again


@needs_ecoli
def test_thomason_primary_tsss_are_classified_primary_against_the_refseq_genes():
    """Thomason et al. 2015's dRNA-seq set holds primary TSSs only (PROVENANCE.md): against RefSeq's genes
    nearly all must come out primary (2,657 of 2,670), and Cappable-seq's genome-wide set far fewer."""
    from genometracks.genome.sequence import Genome
    from genometracks.labels.annotations import load_tss_set

    genome = Genome.open(ECOLI / "genome" / "NC_000913.3.fa", circular=["NC_000913.3"])
    sizes, circular = genome.chrom_sizes(), frozenset({"NC_000913.3"})
    layout = read_genes(ECOLI / "refseq_annotation" / "NC_000913.3.gff.gz", sizes, circular)
    assert len(layout) == 4639  # 4,494 gene + 145 pseudogene rows

    def shares(name: str) -> pd.Series:
        sites = load_tss_set(name, genome, ECOLI)
        frame = pd.DataFrame({"chrom": sites.chrom, "pos": sites.pos, "strand": sites.strand, "name": sites.name, "probability": 0.0})
        return classify_calls(frame, layout, sizes, circular)[["primary", "internal", "antisense", "orphan"]].mean()

    drna, cappable = shares("drnaseq"), shares("cappable_seq")
    assert drna["primary"] >= 0.99 and drna["orphan"] <= 0.001
    assert cappable["primary"] < 0.25 and cappable["internal"] > 0.4  # a whole-transcriptome set: mostly not at gene starts


@needs_ecoli
def test_context_support_counts_calls_on_known_tsss_as_confirmed(tmp_path, capsys):
    """scripts/context_support.py on hand-made calls in the test region: two on curated + TSSs (one 5 nt off, still
    within the window) are confirmed; one on the other strand of a + TSS and one 6 nt off a TSS are not."""
    import importlib.util
    from pathlib import Path

    from genometracks.genome.sequence import Genome
    from genometracks.labels.annotations import load_tss_set

    spec = importlib.util.spec_from_file_location("context_support", Path(__file__).parents[1] / "scripts" / "context_support.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    genome = Genome.open(ECOLI / "genome" / "NC_000913.3.fa", circular=["NC_000913.3"])
    curated = load_tss_set("curated", genome, ECOLI)
    inside = np.flatnonzero((curated.pos >= script.START) & (curated.pos < script.END) & (curated.strand == "+"))
    plus, minus = (np.sort(curated.pos[curated.strand == s]) for s in "+-")
    candidates = curated.pos[inside]
    lonely = candidates[~script.near(candidates + 6, plus, 5)][0]  # 6 nt off a + TSS, no other within 5
    one_strand = candidates[~script.near(candidates, minus, 5)][0]  # no - TSS within 5 nt of this + TSS
    rows = [(int(candidates[0]), "+", "primary"), (int(candidates[1]) + 5, "+", "primary")]
    rows += [(int(one_strand), "-", "antisense"), (int(lonely) + 6, "+", "internal")]
    table = pd.DataFrame(
        {
            "chrom": "NC_000913.3",
            "position": [p + 1 for p, _, _ in rows],
            "strand": [s for _, s, _ in rows],
            "classes": [c for *_, c in rows],
        }
    )
    (tmp_path / "tracks").mkdir()
    table.to_csv(tmp_path / "tracks" / "tss_context.tsv", sep="\t", index=False)
    script.main(str(tmp_path), 5)
    lines = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    assert lines["primary"][1:3] == ["2", "100.0 %"]
    assert lines["antisense"][2] == "0.0 %" and lines["internal"][2] == "0.0 %"  # the other strand; 6 nt off
    assert lines["all"][1:3] == ["4", "50.0 %"]
