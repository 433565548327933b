"""Genome encoding, reverse complement, FASTA reading (plain, bgzip, hostile inputs)."""

import hashlib

import numpy as np
import pysam
import pytest

from genometracks.genome.sequence import Genome, GenomeError, decode, encode, reverse_complement
from tests.conftest import ECOLI, needs_ecoli


def test_encode_letters_case_and_iupac():
    assert encode("ACGTN").tolist() == [0, 1, 2, 3, 4]
    assert encode("acgtn").tolist() == [0, 1, 2, 3, 4]
    assert encode("RYKMSWBDHV").tolist() == [4] * 10
    assert encode("AXxU-.T").tolist() == [0, 4, 4, 4, 4, 4, 3]  # RepeatMasker's X, U, gap characters
    with pytest.raises(GenomeError, match="not a nucleotide") as err:
        encode("AC1T")
    assert "protein" not in str(err.value)
    with pytest.raises(GenomeError, match=r"'I' at offset 3 is not a nucleotide letter \(it looks like a protein sequence"):
        encode("MKRISTTITTTITITTGNGAG", where="p.faa record 'sp|P0A7Z4|'")  # E. coli RpoA's first residues


def test_reverse_complement_tokens():
    tokens = encode("AACGTN")
    assert decode(reverse_complement(tokens)) == "NACGTT"
    assert decode(reverse_complement(reverse_complement(tokens))) == "AACGTN"


def _write(path, text, mode="w"):
    with open(path, mode) as handle:
        handle.write(text)
    return path


def test_fasta_multi_contig_strands_and_sizes(tmp_path):
    fa = _write(tmp_path / "g.fa", ">c1 desc\nACGTACGTAC\nGG\n>c2\nttttNNRYaa\n")
    g = Genome.open(fa, circular=["c1"])
    assert g.chrom_sizes() == {"c1": 12, "c2": 10}
    assert g.contigs["c1"].circular and not g.contigs["c2"].circular
    assert decode(g.tokens("c2")) == "TTTTNNNNAA"
    assert decode(g.tokens("c1", "-")) == "CCGTACGTACGT"
    assert g.sequence("c1", 2, 6) == "GTAC" and g.sequence("c1", 2, 6, "-") == "GTAC"
    assert g.sequence("c1", 0, 3, "-") == "CGT"
    assert not (tmp_path / "g.fa.fai").exists()  # the user's folder is left untouched


def test_a_fasta_replaced_with_an_older_mtime_is_not_read_with_its_old_index(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("GENOMETRACKS_CACHE", str(tmp_path / "cache"))
    fa = _write(tmp_path / "g.fa", ">chr\n" + "ACGT" * 30 + "\n>p1\n" + "A" * 60 + "\n")
    assert Genome.open(fa).chrom_sizes() == {"chr": 120, "p1": 60}
    # the same path rewritten (a bigger plasmid) with an older mtime, as `cp -p`, `tar x` or `rsync -a` leave it
    _write(fa, ">chr\n" + "ACGT" * 30 + "\n>p1\n" + "C" * 70 + "\n")
    os.utime(fa, (1.6e9, 1.6e9))
    g = Genome.open(fa)
    assert g.chrom_sizes() == {"chr": 120, "p1": 70} and decode(g.tokens("p1")) == "C" * 70


def test_a_stale_index_beside_the_fasta_is_not_used(tmp_path, monkeypatch, caplog):
    """A user's own .fai (samtools faidx) left from before the FASTA was rewritten with an older mtime:
    pyfaidx trusts it by its mtime, and two records of equal length swapped places read each other's
    sequence, silently."""
    import os

    monkeypatch.setenv("GENOMETRACKS_CACHE", str(tmp_path / "cache"))
    fa = _write(tmp_path / "g.fa", ">a desc\nAAAA\n>b\nCCCC\n")
    pysam.faidx(str(fa))
    fai = (tmp_path / "g.fa.fai").read_text()
    g = Genome.open(fa)
    assert {n: decode(g.tokens(n)) for n in g.contigs} == {"a": "AAAA", "b": "CCCC"}  # a good .fai beside it: used
    _write(fa, ">b desc\nAAAA\n>a\nCCCC\n")
    os.utime(fa, (1.6e9, 1.6e9))
    with caplog.at_level("WARNING", logger="genometracks.genome.sequence"):
        g = Genome.open(fa)
    assert {n: decode(g.tokens(n)) for n in g.contigs} == {"b": "AAAA", "a": "CCCC"} and list(g.contigs) == ["b", "a"]
    assert "g.fa.fai: record 'a' at byte 8 does not follow its header line '>a'" in caplog.text and "samtools faidx" in caplog.text
    assert (tmp_path / "g.fa.fai").read_text() == fai  # the user's file is left as it was
    # a record that would run past the end of the file
    _write(fa, ">a desc\nAA\n>b\nCC\n")
    os.utime(fa, (1.6e9, 1.6e9))
    (tmp_path / "g.fa.fai").write_text("a\t4\t8\t4\t5\nb\t40\t16\t4\t5\n")
    g = Genome.open(fa)
    assert g.chrom_sizes() == {"a": 2, "b": 2}


def test_spaces_at_line_ends_and_old_mac_line_ends_are_read(tmp_path, caplog):
    lines = ["ACGTACGTAC", "GGGGCCCCAA", "TTTT"]
    trailing = _write(tmp_path / "t.fa", ">c1\n" + "".join(line + " \n" for line in lines))  # even lengths: pyfaidx indexes it
    with caplog.at_level("WARNING", logger="genometracks.genome.sequence"):
        assert decode(Genome.open(trailing).tokens("c1")) == "".join(lines)
    assert "spaces or tabs inside the sequence lines" in caplog.text
    mac = _write(tmp_path / "m.fa", ">c1 desc\r" + "\r".join(lines) + "\r>c2\rAC\r")
    g = Genome.open(mac)
    assert g.chrom_sizes() == {"c1": 24, "c2": 2} and decode(g.tokens("c1")) == "".join(lines)


def test_bgzipped_fasta(tmp_path):
    fa = _write(tmp_path / "g.fa", ">c1\nACGTTGCA\n")
    pysam.tabix_compress(str(fa), str(tmp_path / "g.fa.gz"))
    g = Genome.open(tmp_path / "g.fa.gz")
    assert decode(g.tokens("c1")) == "ACGTTGCA"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.fa", "g.fa.gz"]  # no .fai or .gzi written beside it


def test_plain_gzip_fasta_is_one_line_naming_the_file_and_the_fix(tmp_path):
    import gzip

    plain = tmp_path / "g.fna.gz"
    plain.write_bytes(gzip.compress(b">c1\nACGT\n"))
    with pytest.raises(GenomeError, match=r"g.fna.gz: compressed with plain gzip.*bgzip") as err:
        Genome.open(plain)
    # the command works from any folder: full paths, the .bgz beside the original
    assert f"`gunzip -c {plain} | bgzip > {tmp_path / 'g.fna.bgz'}`" in str(err.value)


def test_an_unwritable_index_cache_names_the_setting_to_change(tmp_path, monkeypatch):
    fa = _write(tmp_path / "g.fa", ">c1\nACGT\n")
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("GENOMETRACKS_CACHE", str(blocker))
    with pytest.raises(GenomeError, match="cannot make the index cache .*set GENOMETRACKS_CACHE"):
        Genome.open(fa)


def test_windows_line_ends(tmp_path):
    fa = _write(tmp_path / "g.fa", ">c1\r\nACGT\r\nAC\r\n", mode="w")
    with open(fa, "wb") as h:
        h.write(b">c1\r\nACGT\r\nAC\r\n")
    assert decode(Genome.open(fa).tokens("c1")) == "ACGTAC"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("ACGT\n", "no FASTA records"),
        (">c1\nACGT\n>c1\nACGT\n", "unique"),
        (">c1\nACGT\n>c2\n>c3\nAC\n", "empty"),
    ],
)
def test_bad_fasta_gets_one_clear_error(tmp_path, text, message):
    fa = _write(tmp_path / "bad.fa", text)
    with pytest.raises(GenomeError, match=message) as err:
        Genome.open(fa)
    assert "bad.fa" in str(err.value)


def test_unknown_circular_contig_and_missing_file(tmp_path):
    fa = _write(tmp_path / "g.fa", ">c1\nACGT\n")
    with pytest.raises(GenomeError, match="circular"):
        Genome.open(fa, circular=["chrX"])
    with pytest.raises(GenomeError, match="not found"):
        Genome.open(tmp_path / "missing.fa")


@needs_ecoli
def test_ecoli_genome_encodes_whole():
    g = Genome.open(ECOLI / "genome" / "NC_000913.3.fa", circular=["NC_000913.3"])
    tokens = g.tokens("NC_000913.3")
    assert tokens.size == 4_641_652 and tokens.max() <= 3
    # PROVENANCE.md: md5 of the bare sequence
    assert hashlib.md5(decode(tokens).encode()).hexdigest() == "482a2b04485ec8c4b5f4eaba2c2002da"
    assert np.array_equal(reverse_complement(g.tokens("NC_000913.3", "-")), tokens)


def test_a_circular_contig_the_fasta_lacks_names_the_setting(tmp_path):
    from genometracks.genome.sequence import Genome, GenomeError

    fasta = tmp_path / "g.fa"
    fasta.write_text(">chrom\nACGTACGT\n>pX\nACGT\n")
    with pytest.raises(
        GenomeError,
        match=r"not in the FASTA: \['pX1'\]; available: \['chrom', 'pX'\]; list this genome's circular contigs in data.circular",
    ):
        Genome.open(fasta, circular=["pX1"])
    assert Genome.open(fasta, circular=["pX"]).contigs["pX"].circular


def test_circular_header_tags_mark_contigs_circular(tmp_path):
    """Unicycler-style `circular=true` and NCBI's `[topology=circular]` mark their record circular; other
    words (circular=false, [topology=linear], a bare 'circular' in a description) do not."""
    fasta = _write(
        tmp_path / "asm.fa",
        ">1 length=12 depth=1.00x circular=true\nACGTACGTACGT\n"
        ">2 length=8 depth=3.10x\nACGTACGT\n"
        ">p2 [organism=Escherichia coli] [topology=circular] [completeness=complete]\nACGTAC\n"
        ">lin circular=false\nACGT\n"
        ">desc a circular plasmid [topology=linear]\nACGT\n"
        ">gi|1|ref|NZ_CP1.1| Circular=Y\nACGTA\n",
    )
    genome = Genome.open(fasta)
    assert [name for name, contig in genome.contigs.items() if contig.circular] == ["1", "p2", "NZ_CP1.1"]
    listed = Genome.open(fasta, circular=["2"])  # a list adds to the tags
    assert [name for name, contig in listed.contigs.items() if contig.circular] == ["1", "2", "p2", "NZ_CP1.1"]
    untagged = Genome.open(fasta, circular=["2"], circular_tags=False)  # data.circular_tags=false: the list alone
    assert [name for name, contig in untagged.contigs.items() if contig.circular] == ["2"]


def test_circular_header_tags_in_bgzipped_and_windows_fasta(tmp_path):
    plain = tmp_path / "crlf.fa"
    plain.write_bytes(b">chrom circular=true\r\nACGTACGT\r\n>pl\r\nACGT\r\n")
    assert Genome.open(plain).contigs["chrom"].circular and not Genome.open(plain).contigs["pl"].circular
    text = tmp_path / "g.fa"
    _write(text, ">chrom\nACGTACGT\n>pl [topology=circular]\nACGT\n")
    pysam.tabix_compress(str(text), str(tmp_path / "g.fa.gz"))
    bgz = Genome.open(tmp_path / "g.fa.gz")
    assert bgz.contigs["pl"].circular and not bgz.contigs["chrom"].circular


def test_a_record_whose_last_line_is_longest_is_read_whole(tmp_path, caplog):
    """Valid FASTA, but pyfaidx's index reads such a record into the next header ('>' was refused as a
    letter); the reader falls back to reading the letters, plain and bgzipped."""
    a, b = "ACGT" * 75, "TTGCA" * 40
    fasta = _write(tmp_path / "uneven.fa", f">chrA\n{a[:70]}\n{a[70:]}\n>chrB\n{b}\n")
    pysam.tabix_compress(str(fasta), str(tmp_path / "uneven.fa.gz"))
    for path in (fasta, tmp_path / "uneven.fa.gz"):
        genome = Genome.open(path)
        assert decode(genome.tokens("chrA")) == a and decode(genome.tokens("chrB")) == b
    assert "last line longer" in caplog.text


def test_a_gzip_file_not_named_gz_is_named_as_such(tmp_path):
    import gzip

    hidden = tmp_path / "asm.fa"
    hidden.write_bytes(gzip.compress(b">c1\nACGTACGT\n"))
    with pytest.raises(GenomeError, match=r"asm\.fa: gzip-compressed although not named \.gz; rename it to asm\.fa\.gz"):
        Genome.open(hidden)


def test_a_header_that_is_not_utf8_names_the_record(tmp_path):
    fasta = tmp_path / "latin.fa"
    fasta.write_bytes(b">chrom\nACGT\n>contig\xe9 plasmid\nACGT\n")
    with pytest.raises(GenomeError, match=r"latin\.fa: record 2's header 'contigé plasmid' is not UTF-8 text \(byte 0xe9\)"):
        Genome.open(fasta)


def test_a_missing_genome_in_the_shared_data_folder_names_genometracks_data(tmp_path, monkeypatch):
    """From a wheel the shared folder is looked for beside site-packages; the message named only data.fasta."""
    monkeypatch.setenv("GENOMETRACKS_DATA", str(tmp_path))
    with pytest.raises(
        GenomeError,
        match="FASTA file not found; it lies in the shared data folder .*GENOMETRACKS_DATA.*ecoli_k12/, or set data.fasta",
    ):
        Genome.open(tmp_path / "ecoli_k12" / "genome" / "NC_000913.3.fa")
    with pytest.raises(GenomeError, match=r"elsewhere\.fa: FASTA file not found; set data\.fasta"):
        Genome.open(tmp_path.parent / "elsewhere.fa")
    # a label file of the shared folder: the same hint (it said only "check the path")
    from genometracks.labels.annotations import AnnotationError, _read_rows

    with pytest.raises(AnnotationError, match=r"TSS\.gtf: file not found; it lies in the shared data folder .*GENOMETRACKS_DATA"):
        _read_rows(tmp_path / "ecoli_k12" / "TSS.gtf")
    with pytest.raises(AnnotationError, match=r"mine\.bed: file not found; check the path$"):
        _read_rows(tmp_path.parent / "mine.bed")
