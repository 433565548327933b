"""UCSC .2bit writer/reader: hand-checked bytes, N and mask blocks, and an independent reader (py2bit)."""

from __future__ import annotations

import struct

import pytest

from genometracks.formats.twobit import TwoBitError, read_twobit, read_twobit_sizes, write_twobit
from genometracks.genome.sequence import Genome
from genometracks.io.paths import shared_data

SEQS = {
    "chr1": "NNACGTacgtNNnnTTGCAA",  # N at the start, mask over N, length % 4 == 0
    "p": "A",  # one base
    "c3": "acgtnACGTNacgtnGGN",
}  # N at the end, alternating mask


def test_exact_bytes_of_tiny_file(tmp_path):
    write_twobit(tmp_path / "t.2bit", {"a": "ACGTT"})
    # header: signature, version 0, 1 sequence, reserved; index: len 1, 'a', offset 16 + 1 + 1 + 4 = 22
    header = struct.pack("<IIII", 0x1A412743, 0, 1, 0) + b"\x01a" + struct.pack("<I", 22)
    # record: dnaSize 5, no N blocks, no mask blocks, reserved; A=10 C=01 G=11 T=00 → 0b10011100, T + pad → 0
    record = struct.pack("<IIII", 5, 0, 0, 0) + bytes([0b10011100, 0b00000000])
    assert (tmp_path / "t.2bit").read_bytes() == header + record


def test_blocks_written_by_hand(tmp_path):
    write_twobit(tmp_path / "t.2bit", {"s": "NNAcgN"})
    data = (tmp_path / "t.2bit").read_bytes()[16 + 1 + 1 + 4 :]
    size, n_count, n_start0, n_start1, n_size0, n_size1, m_count, m_start, m_size, reserved = struct.unpack_from("<10I", data)
    assert (size, n_count, n_start0, n_start1, n_size0, n_size1) == (6, 2, 0, 5, 2, 1)
    assert (m_count, m_start, m_size, reserved) == (1, 3, 2, 0)


def test_round_trip_with_n_and_mask(tmp_path):
    path = write_twobit(tmp_path / "g.2bit", SEQS)
    assert read_twobit(path) == SEQS
    assert read_twobit_sizes(path) == {name: len(seq) for name, seq in SEQS.items()}


def test_genome_and_fasta_inputs(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text("".join(f">{n} some description\n{s[:7]}\n{s[7:]}\n" if len(s) > 7 else f">{n}\n{s}\n" for n, s in SEQS.items()))
    assert read_twobit(write_twobit(tmp_path / "f.2bit", fasta)) == SEQS  # case kept from the FASTA
    genome = Genome.from_sequences(SEQS)
    assert read_twobit(write_twobit(tmp_path / "g.2bit", genome)) == {n: s.upper() for n, s in SEQS.items()}


def test_independent_reader_py2bit(tmp_path):
    py2bit = pytest.importorskip("py2bit", reason="py2bit (independent .2bit reader) not installed")
    path = write_twobit(tmp_path / "g.2bit", SEQS)
    handle = py2bit.open(str(path), True)
    assert handle.chroms() == {name: len(seq) for name, seq in SEQS.items()}
    for name, seq in SEQS.items():
        # py2bit shows hard-masked (N) bases upper case even inside a soft-masked block
        expected = "".join("N" if ch in "Nn" else ch for ch in seq)
        assert handle.sequence(name) == expected
    assert handle.hardMaskedBlocks("chr1") == [(0, 2), (10, 14)]
    assert handle.softMaskedBlocks("chr1") == [(6, 10), (12, 14)]
    assert handle.hardMaskedBlocks("c3") == [(4, 5), (9, 10), (14, 15), (17, 18)]
    handle.close()


def test_big_endian_file_read(tmp_path):
    data = (
        struct.pack(">IIII", 0x1A412743, 0, 1, 0)
        + b"\x01a"
        + struct.pack(">I", 22)
        + struct.pack(">6I", 5, 1, 4, 1, 0, 0)
        + bytes([0b10011100, 0])
    )  # N block at 4, size 1
    (tmp_path / "be.2bit").write_bytes(data)
    assert read_twobit(tmp_path / "be.2bit") == {"a": "ACGTN"}


def test_bad_inputs(tmp_path):
    (tmp_path / "bad.2bit").write_bytes(b"\0" * 32)
    with pytest.raises(TwoBitError, match="bad signature"):
        read_twobit(tmp_path / "bad.2bit")
    with pytest.raises(TwoBitError, match="character '1' at 0-based offset 2"):
        write_twobit(tmp_path / "x.2bit", {"a": "AC1T"})
    with pytest.raises(TwoBitError, match="without whitespace"):
        write_twobit(tmp_path / "x.2bit", {"a b": "ACGT"})
    with pytest.raises(TwoBitError, match=r"contig 'xxxxxxxxxx.*\.\.\.\(300 bytes\)': .*rename the FASTA record \(writing x.2bit\)"):
        write_twobit(tmp_path / "x.2bit", {"x" * 300: "ACGT"})
    assert not (tmp_path / "x.2bit").exists()


@pytest.mark.skipif(not (shared_data() / "ecoli_k12").exists(), reason="shared E. coli data not present")
def test_ecoli_round_trip(tmp_path):
    genome = Genome.open(shared_data() / "ecoli_k12" / "genome" / "NC_000913.3.fa")
    path = write_twobit(tmp_path / "ecoli.2bit", genome)
    assert read_twobit_sizes(path) == {"NC_000913.3": 4641652}
    assert read_twobit(path)["NC_000913.3"] == genome.sequence("NC_000913.3", 0, 4641652)
    assert path.stat().st_size == 16 + 1 + 11 + 4 + 16 + 4641652 // 4  # no N, no mask blocks
