"""TSS readers, aliases and validation on hand-made files with known answers; shared-data counts."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest

from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import Genome
from genometracks.labels import annotations as A
from genometracks.labels.annotations import AnnotationError
from tests.conftest import ECOLI, needs_ecoli


@pytest.fixture
def genome() -> Genome:
    return Genome.from_sequences({"NC_000913.3": "ACGT" * 25})  # 100 nt, one contig


def write(path, text: str):
    path.write_text(text)
    return path


# ---------------------------------------------------------------- readers: coordinates and strands
def test_bed_plus_minus_zero_length_unsorted_duplicates_aliases(tmp_path, genome):
    bed = write(
        tmp_path / "t.bed",
        "track name=x\n"
        "U00096.3\t50\t51\tb\t3\t-\n"  # '-' : +1 = end - 1 = 50
        "chr\t10\t11\ta\t.\t+\n"  # '+' : +1 = start = 10
        "NC_000913.3\t20\t30\tc\t0\t-\n"  # 10-nt '-' interval: +1 = 29
        "NC_000913.3\t40\t40\tz\t0\t-\n"  # zero-length: the nucleotide at 40
        "gi|545778205|gb|U00096.3|\t10\t11\tdup\t0\t+\n",
    )
    raw = A.read_bed(bed)
    assert raw.meta["zero_length"] == 1
    assert list(raw.meta["line"]) == [2, 3, 4, 5, 6]
    sites = A.load_tss_file(bed, genome)
    assert list(sites.pos) == [10, 29, 40, 50]
    assert list(sites.strand) == ["+", "-", "-", "-"]
    assert set(sites.chrom) == {"NC_000913.3"}
    assert sites.meta["duplicates"] == 1
    assert list(sites.name) == ["a", "c", "z", "b"]  # the first of the duplicates is kept
    assert sites.meta["wider_than_1nt"] == 1  # the 10-nt record (its 5' end taken), and one warning says so


def test_records_wider_than_a_base_are_reported_and_one_past_the_contig_refused(tmp_path, genome, caplog):
    # promoter regions (-60..+20) given as a TSS file: each 5' end is taken, and the user is told
    wide = write(tmp_path / "prom.bed", "NC_000913.3\t10\t91\tp1\t0\t+\nNC_000913.3\t5\t86\tp2\t0\t-\nNC_000913.3\t3\t4\tt\t0\t+\n")
    with caplog.at_level("WARNING", logger="genometracks.labels.annotations"):
        sites = A.load_tss_file(wide, genome)
    assert list(sites.pos) == [3, 10, 85] and sites.meta["wider_than_1nt"] == 2
    (message,) = [r.getMessage() for r in caplog.records]
    assert "prom.bed: 2 of 3 records span more than 1 nt" in message and "give a file of 1-nt TSS records" in message
    # a '+' record whose +1 fits but whose end runs past the 100-nt contig: another assembly
    past = write(tmp_path / "past.bed", "NC_000913.3\t3\t4\tt\t0\t+\nNC_000913.3\t95\t105\tx\t0\t+\n")
    with pytest.raises(AnnotationError, match=r"past\.bed, line 2: the record ends at 105 .*past the end of NC_000913.3 \(length 100\)"):
        A.load_tss_file(past, genome)
    gff = write(tmp_path / "past.gff", "NC_000913.3\ts\tTSS\t99\t101\t.\t+\t.\tID=a\n")
    with pytest.raises(AnnotationError, match=r"past\.gff, line 1: the record ends at 101"):
        A.load_tss_file(gff, genome)


def test_gff3_and_gtf_one_based_gz(tmp_path, genome):
    text = (
        "##gff-version 3\n"
        "U00096.3\tsrc\tTSS\t10\t10\t2.5\t+\t.\tID=t1;Name=first\n"
        "U00096.3\tsrc\tgene\t5\t60\t.\t+\t.\tID=g1\n"
        "U00096.3\tsrc\tTSS\t20\t25\t.\t-\t.\tID=t2\n"
        "##FASTA\n>x\nACGT\n"
    )
    gff = write(tmp_path / "t.gff3", text)
    gz = tmp_path / "t.gff3.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    for path in (gff, gz):
        sites = A.read_gff(path, feature="TSS")
        assert list(sites.pos) == [9, 24]  # '+': start-1; '-': end-1
        assert list(sites.name) == ["first", "t2"]
        assert list(sites.score) == [2.5, 0.0]
    gtf = write(tmp_path / "t.gtf", 'chr\tx\tTSS\t7\t7\t.\t-\t.\tgene_id "b0001"; gene_id "thrL";\n')
    sites = A.load_tss_file(gtf, genome)
    assert (sites.pos[0], sites.strand[0], sites.name[0]) == (6, "-", "b0001")


def test_promoterset_confidence_position0_sigma_merge(tmp_path, genome):
    rows = [
        "# RegulonDB",
        "# (1) id",
        "ECK1\tpA\tforward\t11\tSigma70\tseq\t[ev]\tStrong",
        "ECK2\tpB\treverse\t31\tSigma38\tseq\t[ev]\tWeak",
        "ECK3\tpC\treverse\t41\t\tseq\t[ev]\tConfirmed",
        "ECK4\tpD\tforward\t0\tSigma32\tseq\t[ev]\tStrong",
        "ECK5\tpA2\tforward\t11\tSigma38\tseq\t[ev]\tStrong",
    ]
    path = write(tmp_path / "PromoterSet.txt", "\n".join(rows) + "\n")
    raw = A.read_promoterset(path)
    assert raw.meta["no_position"] == 1
    assert list(raw.pos) == [10, 40, 10] and list(raw.strand) == ["+", "-", "+"]
    assert list(raw.meta["sigma"]) == ["Sigma70", "", "Sigma38"]
    sites = A.validate_sites(raw, genome, path)
    assert list(sites.pos) == [10, 40] and sites.meta["duplicates"] == 1
    assert list(sites.meta["sigma"]) == ["Sigma70, Sigma38", ""]
    assert len(A.read_promoterset(path, confidence=None)) == 4


def test_ecocyc_tus_cho_sendseq_pseudogenes(tmp_path):
    tus = write(
        tmp_path / "tus.tsv",
        '# Database: EcoCyc\n"id"\t"common_name"\t"genes"\t"left_end_pos"\t'
        '"right_end_pos"\t"direction"\t"evidence"\n'
        '"TU-1"\t"spy"\t["G1"]\t11\t60\t"+"\t["EV"]\n"TU-2"\t""\t["G2"]\t21\t70\t"-"\t[]\n'
        # drawn from start codons: TU-3 starts on G3's (protein) 5' end, TU-4 on G4's ('-': its right end)
        '"TU-3"\t"abc"\t["G3"]\t101\t160\t"+"\t[]\n"TU-4"\t"def"\t["G4"]\t121\t170\t"-"\t[]\n'
        # a tRNA gene's 5' end is processed (TU-5 dropped); an sRNA gene's is its TSS (TU-6 kept)
        '"TU-5"\t"thrW"\t["G5"]\t201\t276\t"+"\t[]\n"TU-6"\t"ryhB"\t["G6"]\t301\t395\t"-"\t[]\n',
    )
    write(
        tmp_path / "genes.tsv",
        '# Database: EcoCyc\n"id"\t"symbol"\t"synonyms"\t"left_end_pos"\t"right_end_pos"\t"direction"\t"rna_ids"\n'
        '"G1"\t"spy"\t[]\t31\t60\t"+"\t["G1_RNA"]\n"G2"\t"x"\t[]\t21\t50\t"-"\t["G2_RNA"]\n'
        '"G3"\t"abc"\t[]\t101\t160\t"+"\t["G3_RNA"]\n"G4"\t"def"\t[]\t130\t170\t"-"\t["G4_RNA"]\n'
        '"G5"\t"thrW"\t[]\t201\t276\t"+"\t["thrW-tRNA"]\n"G6"\t"ryhB"\t[]\t301\t395\t"-"\t["SRAI-RNA"]\n'
        '"G7"\t"nowhere"\tnull\tnull\tnull\t"+"\t[]\n',
    )
    sites = A.read_ecocyc_tus(tus)
    assert list(sites.pos) == [10, 69, 394] and list(sites.name) == ["spy", "TU-2", "ryhB"]
    assert sites.meta["at_gene_start"] == 3
    cho = write(
        tmp_path / "TSS_seq.csv",
        "TSS_position,TSS_reads,strand,conditions,sequence\n148,2869,+,EG," + "A" * 50 + "G\n77,5,-,S," + "C" * 50 + "A\n",
    )
    sites = A.read_cho2014(cho)
    assert list(sites.pos) == [147, 76] and list(sites.score) == [2869, 5]
    assert list(sites.meta["flank_plus1"]) == [50, 50] and sites.meta["flank"][0].endswith("G")
    assert set(sites.chrom) == {"NC_000913.2"}
    tts = write(
        tmp_path / "tts.csv",
        "TTS_serial_number,TTS_position,TTS_strand, ∆G (kcal/mol),"
        "intrinsic_TTS,TTS_type_rho_dependent\n,308,+,-15.9,,\n,5076,-,-20,intrinsic_TTS,\n"
        ",9229,+,-21,,rho-dependent\n",
    )
    sites = A.read_sendseq_tts(tts)
    assert list(sites.pos) == [307, 5075, 9228]
    assert list(sites.name) == ["undefined", "intrinsic", "rho-dependent"]
    assert list(sites.score) == [-15.9, -20.0, -21.0]
    gff = write(
        tmp_path / "a.gff",
        "NC_000913.3\tRefSeq\tpseudogene\t101\t200\t.\t-\t.\tID=gene-b0218;Name=yafU\n"
        "NC_000913.3\tRefSeq\tgene\t1\t50\t.\t+\t.\tID=gene-b1\n"
        "NC_000913.3\tRefSeq\tpseudogene\t301\t400\t.\t+\t.\tID=gene-b4503;Name=yafF\n",
    )
    sites = A.read_pseudogene_starts(gff)
    assert list(sites.pos) == [199, 300] and list(sites.name) == ["yafU", "yafF"]


def test_sites_to_bed_lines_sorted_bed6():
    sites = SiteSet(["c2", "c1", "c1"], [5, 9, 3], ["+", "-", "+"], [7.6, 2000, -1], ["x y", "", "z"])
    assert A.sites_to_bed_lines(sites) == ["c1\t3\t4\tz\t0\t+", "c1\t9\t10\t.\t1000\t-", "c2\t5\t6\tx_y\t8\t+"]


# ---------------------------------------------------------------- chromosome aliases
def test_normalise_chrom_aliases():
    names = np.array(["U00096.3", "chromosome", "gi|545778205|gb|U00096.3|", "NC_000913.3"])
    assert list(A.normalise_chrom(names, ["NC_000913.3"], "f")) == ["NC_000913.3"] * 4
    assert list(A.normalise_chrom(np.array(["NC_000913.3"]), ["U00096.3"], "f")) == ["U00096.3"]
    with pytest.raises(AnnotationError, match="old assembly NC_000913.2; lift it onto NC_000913.3"):
        A.normalise_chrom(np.array(["gi|48994873|gb|U00096.2|"]), ["NC_000913.3"], "f")
    with pytest.raises(AnnotationError, match="unknown contig 'chr'"):  # ambiguous with two contigs
        A.normalise_chrom(np.array(["chr"]), ["c1", "c2"], "f")


# ---------------------------------------------------------------- bad input: one clear error each
def test_error_unknown_contig_names_file_line_and_fix(tmp_path, genome):
    bed = write(tmp_path / "u.bed", "NC_000913.3\t1\t2\ta\t0\t+\nplasmidX\t1\t2\tb\t0\t+\n")
    with pytest.raises(AnnotationError, match=r"u\.bed, line 2: unknown contig 'plasmidX'.*rename"):
        A.load_tss_file(bed, genome)


def test_chr_prefix_spellings_match_on_a_multi_contig_genome(tmp_path):
    two = Genome.from_sequences({"chr1": "ACGT" * 10, "chr2": "ACGT" * 10})
    bed = write(tmp_path / "ens.bed", "1\t3\t4\ta\t0\t+\n2\t5\t6\tb\t0\t-\nchr2\t7\t8\tc\t0\t+\n")
    sites = A.load_tss_file(bed, two)
    assert list(sites.chrom) == ["chr1", "chr2", "chr2"] and list(sites.pos) == [3, 5, 7]
    plain = Genome.from_sequences({"1": "ACGT" * 10, "2": "ACGT" * 10})
    assert list(A.load_tss_file(write(tmp_path / "ucsc.bed", "chr1\t3\t4\ta\t0\t+\n"), plain).chrom) == ["1"]
    # a name of no contig: the nearest one is suggested, and no edit of the installed source
    with pytest.raises(
        AnnotationError, match=r"typo\.bed, line 1: unknown contig 'chr11'.*rename it in the file.*did you mean 'chr1'"
    ) as err:
        A.load_tss_file(write(tmp_path / "typo.bed", "chr11\t3\t4\ta\t0\t+\n"), two)
    assert "CHROM_ALIASES" not in str(err.value)


def test_an_accession_without_its_version_matches_its_one_contig():
    # 'NZ_CP000001' in a TSS file against 'NZ_CP000001.1' in the FASTA was refused, and the suggestion
    # named the plasmid NZ_CP000002.1
    contigs = ["NZ_CP000001.1", "NZ_CP000002.1"]
    assert list(A.normalise_chrom(np.array(["NZ_CP000001", "NZ_CP000002.1"]), contigs, "f")) == contigs
    assert list(A.normalise_chrom(np.array(["X.1"]), ["X", "Y"], "f")) == ["X"]  # the reverse too
    with pytest.raises(AnnotationError, match="unknown contig 'NZ_CP000001.2'"):  # another version: another assembly
        A.normalise_chrom(np.array(["NZ_CP000001.2"]), contigs, "f")
    with pytest.raises(AnnotationError, match="unknown contig 'X'"):  # two versions in the genome: ambiguous
        A.normalise_chrom(np.array(["X"]), ["X.1", "X.2"], "f")


def test_error_coordinate_past_contig_end(tmp_path, genome):
    gff = write(
        tmp_path / "p.gff", "NC_000913.3\ts\tTSS\t100\t100\t.\t+\t.\tID=a\nNC_000913.3\ts\tTSS\t101\t101\t.\t+\t.\tID=b\n"
    )  # 1-based 101 = 0-based 100 = past end
    with pytest.raises(AnnotationError, match=r"p\.gff, line 2: position 100 .*outside NC_000913.3 \(length 100\)"):
        A.load_tss_file(gff, genome)


@pytest.mark.parametrize("strand", [".", "x", "1"])
def test_error_bad_strand(tmp_path, genome, strand):
    bed = write(tmp_path / "s.bed", f"chr\t1\t2\ta\t0\t+\nchr\t5\t6\tb\t0\t{strand}\n")
    with pytest.raises(AnnotationError, match=r"s\.bed, line 2: strand '" + re.escape(strand) + "' is not"):
        A.read_bed(bed)


def test_error_empty_set(tmp_path, genome):
    empty = write(tmp_path / "e.bed", "# nothing here\n\n")
    with pytest.raises(AnnotationError, match=r"e\.bed: no records"):
        A.load_tss_file(empty, genome)
    only_weak = write(tmp_path / "w.txt", "ECK2\tpB\treverse\t31\tSigma38\tseq\t[ev]\tWeak\n")
    with pytest.raises(AnnotationError, match="no rows with confidence"):
        A.read_promoterset(only_weak)
    nothing = SiteSet(np.array([], object), np.array([], int), np.array([], "<U1"))
    with pytest.raises(AnnotationError, match="no TSS records left"):
        A.validate_sites(nothing, genome, "mem")


def test_unreadable_files_name_the_file_and_the_fix(tmp_path, genome):
    fake = write(tmp_path / "t.bed.gz", "NC_000913.3\t3\t4\ta\t0\t+\n")  # named .gz, not compressed
    with pytest.raises(AnnotationError, match=r"t\.bed\.gz: not gzip-compressed although named \.gz; rename it"):
        A.load_tss_file(fake, genome)
    latin = tmp_path / "l.bed"
    latin.write_bytes("NC_000913.3\t3\t4\tcaf\u00e9\t0\t+\n".encode("latin-1"))
    with pytest.raises(AnnotationError, match=r"l\.bed: not UTF-8 text \(byte 0xe9 at offset 19\); save it as UTF-8"):
        A.load_tss_file(latin, genome)
    header = write(tmp_path / "h.bed", "chrom\tstart\tend\tname\tscore\tstrand\nNC_000913.3\t3\t4\ta\t0\t+\n")
    with pytest.raises(AnnotationError, match=r"h\.bed, line 1: start 'start' is not an integer \(a header line\? remove it"):
        A.load_tss_file(header, genome)
    old_mac = write(tmp_path / "m.bed", "NC_000913.3\t3\t4\ta\t0\t+\rNC_000913.3\t9\t10\tb\t0\t-\r")  # CR-only line ends
    assert list(A.load_tss_file(old_mac, genome).pos) == [3, 9]


def test_error_malformed_records(tmp_path, genome):
    with pytest.raises(AnnotationError, match=r"line 1: start 9 / end 5"):
        A.read_bed(write(tmp_path / "n.bed", "chr\t9\t5\ta\t0\t+\n"))
    with pytest.raises(AnnotationError, match=r"line 1: start 'ten' is not an integer"):
        A.read_bed(write(tmp_path / "i.bed", "chr\tten\t11\ta\t0\t+\n"))
    with pytest.raises(AnnotationError, match=r"line 1: 3 columns, need at least 6"):
        A.read_bed(write(tmp_path / "c.bed", "chr\t9\t10\n"))
    with pytest.raises(AnnotationError, match="no 'TSS' rows"):
        A.read_gff(write(tmp_path / "g.gff", "chr\ts\tgene\t1\t5\t.\t+\t.\tID=a\n"), feature="TSS")
    annotation = write(tmp_path / "genes.gff3", "chr\ts\tgene\t1\t5\t.\t+\t.\tID=a\nchr\ts\tCDS\t1\t5\t.\t+\t0\tID=b\n")
    with pytest.raises(AnnotationError, match=r"genes.gff3: no TSS rows .*its types are \['CDS', 'gene'\]"):
        A.load_tss_file(annotation, genome)  # a genome annotation is not a TSS list
    so_terms = write(tmp_path / "so.gff3", "chr\ts\ttranscription_start_site\t3\t3\t.\t+\t.\tID=a\nchr\ts\tgene\t1\t5\t.\t+\t.\tID=g\n")
    assert list(A.load_tss_file(so_terms, genome).pos) == [2]  # the SO term too; the gene row left out
    with pytest.raises(AnnotationError, match=r"x.txt: cannot tell the TSS file.s format from its name; give it one of the suffixes .bed"):
        A.load_tss_file(write(tmp_path / "x.txt", "chr\t1\t2\ta\t0\t+\n"), genome)
    with pytest.raises(AnnotationError, match="unknown TSS set 'nope'.*or your own BED/GFF with data=custom data.tss=PATH"):
        A.load_tss_set("nope", genome, tmp_path)
    with pytest.raises(AnnotationError, match="unknown TSS set 'ecocycc' \\(did you mean 'ecocyc'\\?\\)"):
        A.load_tss_set("ecocycc", genome, tmp_path)


# ---------------------------------------------------------------- shared data (skip if absent)
@pytest.fixture(scope="module")
def ecoli():
    return Genome.open(ECOLI / "genome" / "NC_000913.3.fa")


def purine_fraction(genome: Genome, sites: SiteSet) -> float:
    tokens = genome.tokens(sites.chrom[0])[sites.pos]
    tokens = np.where(sites.strand == "+", tokens, 3 - tokens)  # complement on '-'
    return float(np.isin(tokens, [0, 2]).mean())


@needs_ecoli
def test_cappable_seq_lifted_count_and_purine(ecoli):
    sites = A.load_tss_set("cappable_seq", ecoli, ECOLI)
    report = sites.meta["liftover"]
    assert report["lifted"] + report["dropped"] == 16359
    assert abs(len(sites) - 16300) < 0.03 * 16300
    assert purine_fraction(ecoli, sites) >= 0.75
    unlifted = A.read_gff(ECOLI / A.TSS_FILES["cappable_seq"], "TSS")
    unlifted.chrom[:] = "NC_000913.3"
    assert purine_fraction(ecoli, unlifted) < 0.6  # the check can fail: no liftover gives ~51%


@needs_ecoli
@pytest.mark.slow
def test_drnaseq_and_cho_lifted_purine(ecoli):
    drna = A.load_tss_set("drnaseq", ecoli, ECOLI)
    assert drna.meta["liftover"]["lifted"] + drna.meta["liftover"]["dropped"] == 2672
    assert purine_fraction(ecoli, drna) >= 0.72
    cho = A.load_tss_set("cho2014", ecoli, ECOLI)
    assert cho.meta["liftover"]["by_sequence"] >= 4700  # flank found in NC_000913.3
    assert cho.meta["liftover"]["sequence_disagrees"] == 0  # sequence and gene anchors agree
    assert purine_fraction(ecoli, cho) >= 0.75


@needs_ecoli
def test_regulondb_strong_count(ecoli):
    raw = A.read_promoterset(ECOLI / A.TSS_FILES["regulondb_strong"])
    assert len(raw) + raw.meta["no_position"] == 6657  # Strong 6,619 + Confirmed 38 (PROVENANCE)
    sites = A.load_tss_set("regulondb_strong", ecoli, ECOLI)
    assert len(sites) + sites.meta["duplicates"] == len(raw)
    assert abs(len(sites) - 6532) <= 50  # 6,657 rows: 20 without a position, 105 same-TSS duplicates
    ecocyc = A.load_tss_set("ecocyc", ecoli, ECOLI)
    assert len(ecocyc) + ecocyc.meta["duplicates"] + ecocyc.meta["at_gene_start"] == 3766
    # TUs drawn from a start codon are left out: 40 % of the TU ends were RefSeq CDS starts, now < 4 %
    cds = set()
    with gzip.open(ECOLI / "refseq_annotation" / "NC_000913.3.gff.gz", "rt") as handle:
        for line in handle:
            f = line.split("\t")
            if len(f) > 8 and f[2] == "CDS":
                cds.add((f[6], int(f[3]) - 1 if f[6] == "+" else int(f[4]) - 1))
    at_cds = sum((s, int(p)) in cds for s, p in zip(ecocyc.strand, ecocyc.pos))
    assert ecocyc.meta["at_gene_start"] > 1400 and at_cds / len(ecocyc) < 0.04


def test_assembler_names_with_a_bar_keep_their_contig(tmp_path):
    """'tig00000001|arrow' was read as its last part, 'arrow', and every contig of an assembly then shared
    it: a TSS on a contig the genome lacks moved silently onto the last one."""
    asm = Genome.from_sequences({"tig00000001|arrow": "ACGT" * 10, "tig00000002|arrow": "ACGT" * 10})
    ok = write(tmp_path / "ok.bed", "tig00000001|arrow\t3\t4\ta\t0\t+\ntig00000002|arrow\t5\t6\tb\t0\t-\n")
    assert list(A.load_tss_file(ok, asm).chrom) == ["tig00000001|arrow", "tig00000002|arrow"]
    bad = write(tmp_path / "bad.bed", "tig00000001|arrow\t3\t4\ta\t0\t+\ntig00000007|arrow\t5\t6\tb\t0\t+\n")
    with pytest.raises(AnnotationError, match=r"bad\.bed, line 2: unknown contig 'tig00000007\|arrow'"):
        A.load_tss_file(bad, asm)
    assert A.canonical_chrom("tig00000001|arrow") == "tig00000001|arrow"
    assert A.canonical_chrom("gi|545778205|gb|U00096.3|") == "NC_000913.3"  # NCBI identifiers still resolve


def test_a_gff_may_mix_both_tss_type_names(tmp_path):
    two = Genome.from_sequences({"chrA": "ACGT" * 50, "chrB": "ACGT" * 50})
    gff = write(
        tmp_path / "mixed.gff3",
        "##gff-version 3\nchrA\tsrc\tTSS\t11\t11\t.\t+\t.\tID=t1\n"
        "chrA\tsrc\ttranscription_start_site\t101\t101\t.\t-\t.\tID=t2\n"
        "chrB\tsrc\ttranscription_start_site\t51\t51\t.\t+\t.\tID=t3\nchrB\tsrc\tgene\t60\t90\t.\t+\t.\tID=g1\n",
    )
    sites = A.load_tss_file(gff, two)
    assert list(zip(sites.chrom, sites.pos.tolist(), sites.strand)) == [("chrA", 10, "+"), ("chrA", 100, "-"), ("chrB", 50, "+")]


def test_a_byte_order_mark_and_an_unnamed_gzip_are_read(tmp_path, genome):
    """A spreadsheet's 'UTF-8' export starts with a BOM (it was read as part of the contig name); a gzip
    file not named .gz was 'not UTF-8 text'."""
    bom = tmp_path / "bom.bed"
    bom.write_bytes(b"\xef\xbb\xbfNC_000913.3\t10\t11\tt1\t0\t+\n")
    assert list(A.load_tss_file(bom, genome).pos) == [10]
    gff = tmp_path / "bom.gff3"
    gff.write_bytes(b"\xef\xbb\xbfNC_000913.3\tsrc\tTSS\t11\t11\t.\t+\t.\tID=t1\n")
    assert list(A.load_tss_file(gff, genome).pos) == [10]
    hidden = tmp_path / "tss.bed"
    hidden.write_bytes(gzip.compress(b"NC_000913.3\t20\t21\tt1\t0\t-\n"))
    assert list(A.load_tss_file(hidden, genome).pos) == [20]
