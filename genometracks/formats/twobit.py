"""UCSC .2bit writer and reader (the format of `faToTwoBit`), vectorised with numpy.

Layout (all integers little-endian u32 when we write; a reader accepts either byte order):
header = signature 0x1A412743, version (0; 1 = 64-bit record offsets), sequence count, reserved 0;
index = per sequence: name length u8, name, record offset (u32, or u64 in version 1);
record = dnaSize, nBlockCount, nBlockStarts[], nBlockSizes[], maskBlockCount, maskBlockStarts[],
maskBlockSizes[], reserved 0, packed bases (4 per byte, first base in the high bits, T=0 C=1 A=2 G=3).
N runs are stored as N blocks (their packed bases are T); lower-case runs as mask blocks.
Block starts are 0-based.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from genometracks.genome.sequence import Genome, GenomeError, read_fasta_letters
from genometracks.io.atomic import atomic_path

SIGNATURE = 0x1A412743
_LETTERS = np.frombuffer(b"TCAG", dtype=np.uint8)
_TOKEN_TO_CODE = np.array([2, 1, 3, 0, 0], dtype=np.uint8)  # genome tokens A,C,G,T,N → 2bit codes


class TwoBitError(ValueError):
    """Bad .2bit input or output; the message names the file and the sequence."""


def _code_table() -> np.ndarray:
    table = np.full(256, 255, dtype=np.uint8)  # 255 = not a letter
    for byte in range(ord("A"), ord("Z") + 1):
        table[byte] = table[byte + 32] = 0  # any other letter: N (stored as T in an N block)
    for code, letter in enumerate("TCAG"):
        table[ord(letter)] = table[ord(letter.lower())] = code
    table[ord("-")] = table[ord(".")] = 0  # gap characters, read as N (as the genome reader does)
    return table


_CODES = _code_table()


def _runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of True in a bool array [n]: (starts u32 [r], sizes u32 [r]), 0-based."""
    edges = np.diff(np.concatenate([[0], flags.view(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return starts.astype("<u4"), (ends - starts).astype("<u4")


def _pack(codes: np.ndarray) -> bytes:
    """2-bit codes [n] → packed bytes [ceil(n/4)], first base in the two high bits."""
    padded = np.zeros(-(-codes.size // 4) * 4, dtype=np.uint8)
    padded[: codes.size] = codes
    quads = padded.reshape(-1, 4)
    return ((quads[:, 0] << 6) | (quads[:, 1] << 4) | (quads[:, 2] << 2) | quads[:, 3]).tobytes()


def _encode_record(name: str, letters: np.ndarray | None, tokens: np.ndarray | None) -> bytes:
    """One sequence record from ASCII letters (case kept) or genome tokens (upper case)."""
    masked: np.ndarray
    if letters is not None:
        codes = _CODES[letters]
        bad = np.flatnonzero(codes == 255)
        if bad.size:
            raise TwoBitError(
                f"sequence {name!r}: character {chr(letters[bad[0]])!r} at 0-based offset "
                f"{int(bad[0])} is not a letter; 2bit holds nucleotide letters only"
            )
        upper = letters & 0xDF
        is_n = ~np.isin(upper, np.frombuffer(b"ACGT", dtype=np.uint8))
        masked = letters >= ord("a")
    else:
        assert tokens is not None, "_encode_record needs letters or tokens"
        codes = _TOKEN_TO_CODE[tokens]
        is_n = tokens == 4
        masked = np.zeros(tokens.size, dtype=bool)
    n_starts, n_sizes = _runs(is_n)
    m_starts, m_sizes = _runs(masked)
    head = struct.pack("<II", codes.size, n_starts.size) + n_starts.tobytes() + n_sizes.tobytes()
    head += struct.pack("<I", m_starts.size) + m_starts.tobytes() + m_sizes.tobytes() + struct.pack("<I", 0)
    return head + _pack(codes)


def write_twobit(path: str | Path, sequences: Genome | Mapping[str, str] | str | Path) -> Path:
    """Write a .2bit from a Genome (upper case, N blocks), {name: letters} (lower case → mask blocks),
    or a FASTA path (read with its case). The file appears atomically at `path`."""
    path = Path(path)
    records: list[tuple[str, bytes]] = []
    if isinstance(sequences, Genome):
        for name in sequences.contigs:
            records.append((name, _encode_record(name, None, sequences.tokens(name))))
    else:
        letters: Mapping[str, str | bytes]
        if isinstance(sequences, (str, Path)):
            try:
                letters = read_fasta_letters(Path(sequences))
            except GenomeError as err:
                raise TwoBitError(str(err)) from None
        else:
            letters = sequences
        for name, seq in letters.items():
            raw = seq.encode("ascii", "replace") if isinstance(seq, str) else bytes(seq)
            try:
                records.append((name, _encode_record(name, np.frombuffer(raw, dtype=np.uint8), None)))
            except TwoBitError as err:
                raise TwoBitError(f"{path}: {err}") from None
    if not records:
        raise TwoBitError(f"{path}: no sequences to write")
    names = [name.encode() for name, _ in records]
    for raw_name in names:
        if not 0 < len(raw_name) < 256 or any(ch in raw_name for ch in b" \t\n\r"):
            shown = raw_name.decode(errors="replace")
            shown = shown if len(shown) <= 60 else f"{shown[:40]}...({len(raw_name)} bytes)"
            raise TwoBitError(
                f"contig {shown!r}: a .2bit (UCSC's genome format) takes names of 1-255 bytes without whitespace; "
                f"rename the FASTA record (writing {path.name})"
            )
    offset = 16 + sum(1 + len(n) + 4 for n in names)
    index = b""
    for raw_name, (_, record) in zip(names, records):
        index += struct.pack("<B", len(raw_name)) + raw_name + struct.pack("<I", offset)
        offset += len(record)
    if offset >= 2**32:
        raise TwoBitError(f"{path}: genome too large for a version-0 .2bit (4 GiB)")
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(struct.pack("<IIII", SIGNATURE, 0, len(records), 0) + index)
        for _, record in records:
            out.write(record)
    return path


class _Reader:
    """Header and index of a .2bit file held in memory."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise TwoBitError(f"{path}: .2bit file not found")
        self.path, self.data = path, path.read_bytes()
        if len(self.data) < 16:
            raise TwoBitError(f"{path}: too short to be a .2bit file")
        for order in "<>":
            if struct.unpack_from(order + "I", self.data)[0] == SIGNATURE:
                self.order = order
                break
        else:
            raise TwoBitError(f"{path}: bad signature; not a .2bit file")
        version, count, _ = struct.unpack_from(self.order + "III", self.data, 4)
        if version not in (0, 1):
            raise TwoBitError(f"{path}: unsupported .2bit version {version}")
        self.index: dict[str, int] = {}
        pos = 16
        try:
            for _ in range(count):
                size = self.data[pos]
                name = self.data[pos + 1 : pos + 1 + size].decode()
                fmt = "Q" if version == 1 else "I"
                (self.index[name],) = struct.unpack_from(self.order + fmt, self.data, pos + 1 + size)
                pos += 1 + size + struct.calcsize(fmt)
        except (IndexError, struct.error) as err:
            raise TwoBitError(f"{path}: index truncated ({err})") from None

    def _u32s(self, pos: int, count: int) -> np.ndarray:
        return np.frombuffer(self.data, dtype=self.order + "u4", count=count, offset=pos).astype(np.int64)

    def size(self, name: str) -> int:
        return int(struct.unpack_from(self.order + "I", self.data, self.index[name])[0])

    def sequence(self, name: str) -> str:
        try:
            return self._sequence(name)
        except (ValueError, struct.error) as err:
            raise TwoBitError(f"{self.path}: record {name!r} is truncated or corrupt ({err})") from None

    def _sequence(self, name: str) -> str:
        pos = self.index[name]
        size, n_count = struct.unpack_from(self.order + "II", self.data, pos)
        n_starts, n_sizes = self._u32s(pos + 8, n_count), self._u32s(pos + 8 + 4 * n_count, n_count)
        pos += 8 + 8 * n_count
        (m_count,) = struct.unpack_from(self.order + "I", self.data, pos)
        m_starts, m_sizes = self._u32s(pos + 4, m_count), self._u32s(pos + 4 + 4 * m_count, m_count)
        pos += 4 + 8 * m_count + 4
        packed = np.frombuffer(self.data, dtype=np.uint8, count=-(-size // 4), offset=pos)
        codes = np.stack([(packed >> 6) & 3, (packed >> 4) & 3, (packed >> 2) & 3, packed & 3], 1).ravel()
        letters = _LETTERS[codes[:size]]
        letters[_cover(n_starts, n_sizes, size)] = ord("N")
        letters[_cover(m_starts, m_sizes, size)] |= 0x20  # lower case
        return letters.tobytes().decode("ascii")


def _cover(starts: np.ndarray, sizes: np.ndarray, n: int) -> np.ndarray:
    """bool [n]: True inside any of the blocks [start, start + size)."""
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, np.minimum(starts, n), 1)
    np.add.at(delta, np.minimum(starts + sizes, n), -1)
    return np.cumsum(delta[:n]) > 0


def read_twobit(path: str | Path) -> dict[str, str]:
    """All sequences of a .2bit: {name: letters}, N blocks as 'N', masked blocks in lower case."""
    reader = _Reader(Path(path))
    return {name: reader.sequence(name) for name in reader.index}


def read_twobit_sizes(path: str | Path) -> dict[str, int]:
    """Sequence name → length (nt), without decoding the bases."""
    reader = _Reader(Path(path))
    try:
        return {name: reader.size(name) for name in reader.index}
    except struct.error as err:
        raise TwoBitError(f"{path}: record offsets point past the end of the file ({err})") from None
