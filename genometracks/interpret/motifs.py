"""DNA motifs: the `Motif` type (letter probabilities [K, 4] over A, C, G, T), information
content, k-mer → PFM, MEME minimal-format reader/writer, RSAT-style TRANSFAC reader, and the
sigma70 -35/-10 boxes split out of the DPInteract rpoD windows.

Columns are motif positions 5'→3'; letters are in the order A, C, G, T (tokens 0..3 of
`genometracks.genome`; token 4 = N is never counted).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from genometracks.io.atomic import write_text_atomic
from genometracks.io.paths import shared_data

LETTERS = "ACGT"
UNIFORM = np.full(4, 0.25)
SMALL_SAMPLE_CONSTANT = 3.0 / (2.0 * np.log(2.0))  # (s - 1) / (2 ln 2) for s = 4 letters


class MotifError(ValueError):
    """Bad motif input; the message names the file, the record/line and the fix."""


def normalise_rows(matrix: np.ndarray, where: str) -> np.ndarray:
    """Counts or probabilities [K, 4] → probabilities (rows sum to 1); raises on bad values."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != 4:
        raise MotifError(f"{where}: expected a [K, 4] matrix over A, C, G, T, got shape {m.shape}")
    if not np.isfinite(m).all() or (m < 0).any():
        raise MotifError(f"{where}: matrix has negative or non-finite entries; give counts or probabilities")
    totals = m.sum(axis=1, keepdims=True)
    empty = np.flatnonzero(totals[:, 0] <= 0)
    if empty.size:
        raise MotifError(f"{where}: column {int(empty[0]) + 1} has no counts; remove it or add a pseudocount")
    return m / totals


def column_information(probabilities: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
    """Information per column in bits [K]: relative entropy Σ p log2(p / q) to `background` q
    (uniform by default, which gives 2 - H(column)); 0·log 0 = 0."""
    p = normalise_rows(probabilities, "information content")
    q = UNIFORM if background is None else np.asarray(background, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p / q), 0.0)
    return terms.sum(axis=1)


def information_matrix(counts_or_probs: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
    """Logo heights in bits [K, 4]: p[k, a] · IC[k] (letter share of its column's information)."""
    p = normalise_rows(counts_or_probs, "logo matrix")
    return p * column_information(p, background)[:, None]


@dataclass(eq=False)
class Motif:
    """A position probability matrix (compared by identity: it holds arrays).

    probabilities: float64 [K, 4] (A, C, G, T), rows sum to 1 (counts are normalised on entry).
    nsites: number of sites it was built from (0 = unknown). source: database or file it came from.
    """

    name: str
    probabilities: np.ndarray
    nsites: float = 0.0
    source: str = ""
    alt_name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.probabilities = normalise_rows(self.probabilities, f"motif {self.name!r} ({self.source})")

    @property
    def width(self) -> int:
        return int(self.probabilities.shape[0])

    @property
    def pfm(self) -> np.ndarray:
        """Alias of `probabilities` [K, 4]."""
        return self.probabilities

    @property
    def counts(self) -> np.ndarray:
        """Expected counts [K, 4] = probabilities · nsites."""
        return self.probabilities * self.nsites

    def consensus(self) -> str:
        """Most probable letter per column (ties → first in A, C, G, T order)."""
        return "".join(LETTERS[i] for i in self.probabilities.argmax(axis=1))

    def information_content(self, background: np.ndarray | None = None, small_sample_correction: bool = False) -> tuple[np.ndarray, float]:
        """(bits per column [K], total bits).

        Plain relative entropy to `background` (uniform: 2 - H). With `small_sample_correction`
        and nsites > 0, Schneider et al.'s approximate correction e(n) = 3 / (2 ln2 · n) is
        subtracted per column and the result clipped at 0 (a column built from few sites looks
        more informative than it is). Pseudocounts are the builder's business
        (`pfm_from_kmers(pseudocount=...)`): they are already inside `probabilities`.
        """
        ic = column_information(self.probabilities, background)
        if small_sample_correction and self.nsites > 0:
            ic = np.clip(ic - SMALL_SAMPLE_CONSTANT / self.nsites, 0.0, None)
        return ic, float(ic.sum())

    def reverse_complement(self) -> Motif:
        """The motif read on the other strand: columns reversed, A↔T, C↔G."""
        return replace(self, probabilities=self.probabilities[::-1, ::-1].copy(), meta=dict(self.meta))

    def trim_bounds(self, min_ic: float) -> tuple[int, int]:
        """[start, end) of the span from the first to the last column with IC >= min_ic bits."""
        keep = np.flatnonzero(self.information_content()[0] >= min_ic)
        if keep.size == 0:
            raise MotifError(f"motif {self.name!r}: no column reaches {min_ic} bits; lower min_ic or skip this motif as uninformative")
        return int(keep[0]), int(keep[-1]) + 1

    def trim(self, min_ic: float) -> Motif:
        """Drop flanking columns below `min_ic` bits; meta['trim_offset'] = columns cut on the left."""
        start, end = self.trim_bounds(min_ic)
        meta = dict(self.meta, trim_offset=self.meta.get("trim_offset", 0) + start)
        return replace(self, probabilities=self.probabilities[start:end].copy(), meta=meta)


def pfm_from_kmers(
    kmers: np.ndarray, pseudocount: float = 0.0, name: str = "kmers", weights: np.ndarray | None = None, source: str = ""
) -> Motif:
    """Motif from aligned k-mers: tokens [n, K] (A,C,G,T = 0..3; N = 4 is ignored).

    probabilities[k, a] = (count[k, a] + pseudocount) / (Σ_a count[k, a] + 4 · pseudocount);
    `weights` [n] (optional) weight each k-mer. A column with no A/C/G/T and no pseudocount
    is uniform. nsites = total weight of the k-mers.
    """
    tokens = np.asarray(kmers)
    if tokens.ndim != 2 or tokens.shape[1] == 0:
        raise MotifError(f"pfm_from_kmers: expected tokens [n, K], got shape {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() > 4):
        raise MotifError("pfm_from_kmers: tokens must be 0..4 (A, C, G, T, N)")
    n, k = tokens.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or (w < 0).any():
        raise MotifError(f"pfm_from_kmers: weights must be non-negative with shape ({n},)")
    index = (np.arange(k)[None, :] * 5 + tokens.astype(np.int64)).ravel()
    counts = np.bincount(index, weights=np.repeat(w, k), minlength=5 * k).reshape(k, 5)[:, :4]
    counts = counts + pseudocount
    counts[counts.sum(axis=1) <= 0] = 1.0  # empty column → uniform
    return Motif(name, counts, nsites=float(w.sum()), source=source)


# ----------------------------------------------------------------------------- MEME minimal format

_KEYVAL = re.compile(r"(\w+)\s*=\s*(\S+)")


def _parse_numbers(line: str, expected: int, where: str) -> list[float]:
    try:
        values = [float(x) for x in line.split()]
    except ValueError:
        values = []
    if len(values) != expected:
        raise MotifError(f"{where}: expected {expected} numbers, got {line.strip()!r}; fix the matrix row or the w= value")
    return values


def _number(info: dict[str, str], key: str, kind: type, where: str):
    """info[key] as int or float; a MotifError naming the line, the key and the value otherwise."""
    try:
        return kind(info[key])
    except ValueError:
        raise MotifError(f"{where}: {key}={info[key]!r} is not a number; fix the matrix header") from None


def read_meme(path: str | Path) -> list[Motif]:
    """Motifs of a MEME (minimal or full text) file; only letter-probability blocks are read.

    The alphabet must be ACGT (DNA). Each motif's `meta['background']` is the file's
    background letter frequencies (uniform when the file has none).
    """
    path = Path(path)
    if not path.is_file():
        raise MotifError(f"{path}: MEME file not found")
    lines = path.read_text().splitlines()
    if not any(line.startswith("MEME version") for line in lines):
        raise MotifError(f"{path}: no 'MEME version' line; is this a MEME motif file?")
    background = UNIFORM.copy()
    motifs: list[Motif] = []
    name = alt = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("ALPHABET="):
            letters = line.split("=", 1)[-1].strip()
            if letters.upper() not in ("ACGT", "DNA"):
                raise MotifError(f"{path} line {i + 1}: alphabet {letters!r} is not DNA (ACGT)")
        elif line.startswith("ALPHABET"):  # MEME 5's block form: ALPHABET "name" ... letter lines ... END ALPHABET
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("END ALPHABET")), None)
            if end is None:
                raise MotifError(f"{path} line {i + 1}: ALPHABET block without 'END ALPHABET'")
            # core symbols: a line 'A "Adenine" CC0000 ~ T "Thymine" 008000' declares A and its complement T;
            # lines with '=' ('N "Any base" = ACGT') define aliases of them
            body = [ln.strip() for ln in lines[i + 1 : end] if ln.strip() and not ln.strip().startswith("#")]
            core = {part.split()[0][0].upper() for ln in body if "=" not in ln for part in ln.split("~") if part.split()}
            if core != set(LETTERS):
                raise MotifError(f"{path} line {i + 1}: alphabet block with letters {sorted(core)} is not DNA (ACGT)")
            i = end
        elif line.startswith("Background letter frequencies"):
            fields = lines[i + 1].split() if i + 1 < len(lines) else []
            freqs = dict(zip(fields[::2], fields[1::2]))
            try:
                background = np.array([float(freqs[a]) for a in LETTERS])
            except (KeyError, ValueError):
                raise MotifError(f"{path} line {i + 2}: background needs 'A p C p G p T p'") from None
            background = background / background.sum()
            i += 1
        elif line.startswith("MOTIF"):
            parts = line.split()
            if len(parts) < 2:
                raise MotifError(f"{path} line {i + 1}: MOTIF line without an identifier")
            name, alt = parts[1], (parts[2] if len(parts) > 2 else "")
        elif line.startswith("letter-probability matrix"):
            where = f"{path} line {i + 1}"
            if name is None:
                raise MotifError(f"{where}: matrix before any MOTIF line")
            info = dict(_KEYVAL.findall(line.split(":", 1)[-1]))
            if info.get("alength", "4") != "4":
                raise MotifError(f"{where}: alength={info['alength']}, expected 4 (DNA)")
            width = _number(info, "w", int, where) if "w" in info else None
            rows: list[list[float]] = []
            while width is None or len(rows) < width:
                i += 1
                if i >= len(lines):
                    if width is None:
                        break
                    raise MotifError(f"{where}: file ended after {len(rows)} of w={width} rows")
                text = lines[i].strip()
                if not text:
                    if width is None and rows:
                        break
                    continue
                if width is None and not re.match(r"^[-+.\deE\s]+$", text):
                    i -= 1
                    break
                rows.append(_parse_numbers(text, 4, f"{path} line {i + 1} (motif {name})"))
            following = next((t.strip() for t in lines[i + 1 :] if t.strip()), "")
            if width is not None and re.match(r"^[-+.\deE]+(\s+[-+.\deE]+){3}$", following):
                raise MotifError(f"{where}: motif {name} has more matrix rows than w={width}; fix w= or the matrix")
            matrix = np.array(rows)
            if matrix.size == 0 or np.abs(matrix.sum(axis=1) - 1).max() > 0.02:
                raise MotifError(f"{where}: motif {name} rows must be probabilities summing to 1")
            motifs.append(
                Motif(
                    name,
                    matrix,
                    nsites=_number(info, "nsites", float, where) if "nsites" in info else 0.0,
                    source=path.name,
                    alt_name=alt or "",
                    meta={"background": background.copy()},
                )
            )
            name = None
        i += 1
    return motifs


def _token(text: str, what: str) -> str:
    if not text or re.search(r"\s", text):
        raise MotifError(f"write_meme: {what} {text!r} must be one word without spaces; rename it")
    return text


def write_meme(motifs: Sequence[Motif], path: str | Path, background: np.ndarray | None = None) -> Path:
    """Write MEME version 4 minimal format (atomic). `background` [4] defaults to uniform.

    nsites <= 0 is written as 20, MEME's own default when a file gives none; a fraction of a site as 1.
    No E= is written: these motifs (head words, kernels, optimised inputs, patterns) have no E-value,
    and 'E= 0' would claim the strongest significance there is.
    """
    path = Path(path)
    bg = UNIFORM if background is None else np.asarray(background, dtype=np.float64)
    if bg.shape != (4,) or (bg <= 0).any():
        raise MotifError(f"write_meme {path}: background must be 4 positive frequencies (A, C, G, T)")
    bg = bg / bg.sum()
    out = [
        "MEME version 4",
        "",
        "ALPHABET= ACGT",
        "",
        "strands: + -",
        "",
        "Background letter frequencies",
        " ".join(f"{a} {f:.6f}" for a, f in zip(LETTERS, bg)),
        "",
    ]
    for m in motifs:
        head = f"MOTIF {_token(m.name, 'motif name')}" + (f" {_token(m.alt_name, 'alt name')}" if m.alt_name else "")
        nsites = max(1, int(round(m.nsites))) if m.nsites > 0 else 20
        out += [head, "", f"letter-probability matrix: alength= 4 w= {m.width} nsites= {nsites}"]
        out += [" " + "  ".join(f"{v:.6f}" for v in row) for row in m.probabilities]
        out.append("")
    write_text_atomic(path, "\n".join(out) + "\n")
    return path


def read_transfac(path: str | Path) -> list[Motif]:
    """Count matrices of a TRANSFAC file (AC/ID/P0 rows, records ended by '//').

    Letter order is taken from the P0 header. name = ID (else AC); alt_name = the `CC  ac:`
    field when it is a single word different from the name (PRODORIC: the TF name), else AC
    when it differs from ID. nsites = the largest row total (count matrices).
    """
    path = Path(path)
    if not path.is_file():
        raise MotifError(f"{path}: TRANSFAC file not found")
    motifs: list[Motif] = []
    record: dict = {}
    rows: list[list[float]] = []
    order: list[int] | None = None
    in_matrix = False
    start = 1
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.rstrip()
        tag, rest = line[:2], line[2:].strip()
        if tag == "//":
            if rows:
                motifs.append(_transfac_motif(path, start, record, rows, order))
            record, rows, order, in_matrix, start = {}, [], None, False, lineno + 1
        elif tag in ("AC", "ID") and tag not in record:
            record[tag] = rest
        elif tag == "CC" and rest.startswith("ac:"):
            record["cc_ac"] = rest[3:].strip()
        elif tag in ("P0", "PO"):
            letters = [x.upper() for x in rest.split()]
            if sorted(letters) != list(LETTERS):
                raise MotifError(f"{path} line {lineno}: P0 header {rest!r} must list A, C, G, T")
            order, in_matrix = [letters.index(a) for a in LETTERS], True
        elif in_matrix and line[:1].isdigit():
            fields = line.split()
            rows.append(_parse_numbers(" ".join(fields[1:5]), 4, f"{path} line {lineno}"))
        elif in_matrix and line.strip():
            in_matrix = False  # any other line ends the matrix block
    if rows:
        motifs.append(_transfac_motif(path, start, record, rows, order))
    if not motifs:
        raise MotifError(f"{path}: no TRANSFAC matrices (P0 header + numbered rows) found")
    return motifs


def _transfac_motif(path: Path, start: int, record: dict, rows: list, order: list[int] | None) -> Motif:
    name = record.get("ID") or record.get("AC")
    if not name:
        raise MotifError(f"{path} record starting at line {start}: no ID or AC line; add one")
    counts = np.array(rows)[:, order if order is not None else slice(None)]
    cc_ac = record.get("cc_ac", "")
    if cc_ac and "=" not in cc_ac and " " not in cc_ac and cc_ac != name:
        alt = cc_ac
    else:
        alt = record.get("AC", "") if record.get("AC", name) != name else ""
    totals = counts.sum(axis=1)
    try:
        return Motif(name, counts, nsites=float(totals.max()), source=path.name, alt_name=alt)
    except MotifError as err:
        raise MotifError(f"{path} record {name!r} (line {start}): {err}") from None


# ----------------------------------------------------------------------------- reference set

SIGMA70_WINDOWS = re.compile(r"^rpoD1[5-9]$")


def sigma70_boxes(dpinteract_motifs: Sequence[Motif], box_width: int = 6) -> list[Motif]:
    """[sigma70_-35, sigma70_-10]: first / last `box_width` columns of the DPInteract rpoD15..rpoD19
    windows (the number is the spacer length), averaged with weights nsites."""
    windows = [m for m in dpinteract_motifs if SIGMA70_WINDOWS.match(m.name)]
    if not windows:
        raise MotifError("sigma70_boxes: no rpoD15..rpoD19 motifs given; pass the DPInteract motifs (dpinteract_sigma70_rpoD_excerpt.meme)")
    weights = np.array([max(m.nsites, 1.0) for m in windows])
    names = ",".join(m.name for m in windows)
    boxes = []
    for box, cut in (("sigma70_-35", slice(0, box_width)), ("sigma70_-10", slice(-box_width, None))):
        stack = np.stack([m.probabilities[cut] for m in windows])
        mean = np.tensordot(weights / weights.sum(), stack, axes=1)
        boxes.append(Motif(box, mean, nsites=float(weights.sum()), source=f"DPInteract {names}", alt_name=box.replace("sigma70_", "box")))
    return boxes


def load_reference_motifs(shared_motif_dir: str | Path | None = None) -> list[Motif]:
    """Every *.meme and *.tf file of the folder (sorted by file name) plus the sigma70 boxes
    split from any rpoD15..19 windows among them. Default folder: shared_data()/ecoli_k12/motifs."""
    if shared_motif_dir is None:
        shared_motif_dir = shared_data() / "ecoli_k12" / "motifs"
    folder = Path(shared_motif_dir)
    if not folder.is_dir():
        raise MotifError(f"{folder}: motif folder not found; set GENOMETRACKS_DATA or pass the folder")
    motifs: list[Motif] = []
    for file in sorted(folder.iterdir()):
        if file.suffix == ".meme":
            motifs += read_meme(file)
        elif file.suffix in (".tf", ".transfac"):
            motifs += read_transfac(file)
    if not motifs:
        raise MotifError(f"{folder}: no *.meme or *.tf motif files")
    if any(SIGMA70_WINDOWS.match(m.name) for m in motifs):
        motifs += sigma70_boxes(motifs)
    return motifs
