"""One motif per attention head, read from the sampled queries (`heads.HeadSamples`).

A head's motif: at the offset o* of its highest mean attention, the `top_n` samples with the
highest attention there among the top-output samples (see `head_motifs` for the other rankings)
give their conv-width k-mers centred on the key (key j reads j-c..j+c, c = conv_width // 2) on
the query's strand → position frequency matrix, matched with Tomtom against reference motifs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genometracks.genome.sequence import N_TOKEN, Genome
from genometracks.interpret.heads import SAMPLE_TOP, HeadSamples, InterpretError, Key, head_id, mean_rows
from genometracks.interpret.matching import Match, TomtomTable, best_matches, match_label
from genometracks.interpret.motifs import Motif, pfm_from_kmers

RANKINGS = ("top_attention", "attention", "output")


def window_tokens(genome: Genome, keys: list[Key], slot: np.ndarray, first: np.ndarray, width: int) -> np.ndarray:
    """uint8 [n, width]: tokens of strand-local [first, first + width) on keys[slot] (5'→3' on that
    strand); wraps on circular contigs, N outside a linear contig."""
    out = np.full((len(slot), width), N_TOKEN, dtype=np.uint8)
    for s in np.unique(slot):
        contig, strand = keys[int(s)]
        tokens = genome.tokens(contig, strand)
        rows = np.flatnonzero(slot == s)
        pos = np.asarray(first)[rows, None] + np.arange(width)[None, :]
        if genome.contigs[contig].circular:
            out[rows] = tokens[pos % tokens.size]
        else:
            inside = (pos >= 0) & (pos < tokens.size)
            out[rows] = np.where(inside, tokens[np.clip(pos, 0, tokens.size - 1)], N_TOKEN)
    return out


@dataclass
class HeadMotif:
    """A head's motif at its offset of highest mean attention (offset: upstream, 0..W-1)."""

    layer: int
    head: int
    offset: int
    offset_from_tss: int
    mean_attention: float
    motif: Motif
    information: float
    match: Match | None

    @property
    def id(self) -> str:
        return head_id(self.layer, self.head)


@dataclass(frozen=True)
class MotifRanking:
    """The samples a head's motif is chosen from (`pool`, sample indices ascending) and what ranks them
    (`rank_by`, see `head_motifs`); `precise` [len(pool), n_layer, n_head, W]: the pool's float32
    attention when it is the SAMPLE_TOP set (`HeadSamples.top_attention`), else None."""

    pool: np.ndarray
    rank_by: str
    precise: np.ndarray | None

    @classmethod
    def of(cls, samples: HeadSamples, rank_by: str, top_n: int) -> MotifRanking:
        if rank_by not in RANKINGS:
            raise InterpretError(f"interpret.motif_rank={rank_by!r}; use one of {RANKINGS}")
        pool = np.flatnonzero(samples.group & SAMPLE_TOP) if rank_by == "top_attention" else np.arange(0)
        if pool.size < top_n:  # too few top-output samples (or another ranking): every sample
            return cls(np.arange(len(samples.output)), rank_by, None)
        return cls(pool, rank_by, samples.top_attention)

    def scores(self, samples: HeadSamples, layer: int, head: int, offset: int) -> np.ndarray:
        """float64 [len(pool)]: the pool's scores for the head at `offset` (higher ranks first)."""
        if self.rank_by == "output":
            return samples.output[self.pool].astype(np.float64)
        if self.precise is not None:
            return self.precise[:, layer, head, offset].astype(np.float64)
        return samples.attention[self.pool, layer, head, offset].astype(np.float64)


def head_kmers(samples: HeadSamples, genome: Genome, rows: np.ndarray, offset: int, conv_width: int) -> np.ndarray:
    """uint8 [len(rows), conv_width]: the k-mer each sample's key at upstream `offset` reads (centred
    on the key, on the query's strand)."""
    first = samples.local[rows] - offset - conv_width // 2
    return window_tokens(genome, samples.keys, samples.slot[rows], first, conv_width)


def head_motifs(
    samples: HeadSamples,
    genome: Genome,
    conv_width: int,
    top_n: int = 50,
    refs: list[Motif] | None = None,
    rank_by: str = "top_attention",
    min_information: float = 0.0,
) -> tuple[list[HeadMotif], TomtomTable]:
    """(One HeadMotif per head, layer-major order; the Tomtom table of all heads x `refs`). Each head's
    `match` is its reference of smallest Tomtom p-value (None without refs); q-values are
    Benjamini-Hochberg over the informative heads (>= min_information bits) x references, NaN for the
    others (genometracks.interpret.matching: a flat head's p-values are not valid). The top_n samples
    are those with the highest attention at the head's offset among the SAMPLE_TOP samples
    (rank_by='top_attention': what the head reads where the model calls a TSS, ranked in float32 by
    `samples.top_attention` where present; all samples when fewer than top_n are flagged), among all
    samples ('attention', float16), or those with the highest model output ('output', the same samples
    for every head). Ties go to the first sample in genome order (a stable sort)."""
    ranking = MotifRanking.of(samples, rank_by, top_n)
    n_layer, n_head, _ = samples.shape
    mean = mean_rows(samples.attention)  # [Ly, H, W]
    out = []
    for layer in range(n_layer):
        for head in range(n_head):
            o = int(np.argmax(mean[layer, head]))
            top = ranking.pool[np.argsort(-ranking.scores(samples, layer, head, o), kind="stable")[:top_n]]
            kmers = head_kmers(samples, genome, top, o, conv_width)
            rel = samples.shift - o
            motif = pfm_from_kmers(kmers, name=head_id(layer, head), source="attention head")
            motif.alt_name = f"tss{rel:+d}"
            motif.meta.update(layer=layer, head=head, offset=o, offset_from_tss=rel)
            out.append(HeadMotif(layer, head, o, rel, float(mean[layer, head, o]), motif, motif.information_content()[1], None))
    found, table = best_matches([m.motif for m in out], refs or [], [m.information >= min_information for m in out])
    for m, best in zip(out, found):
        m.match = best
    return out, table


def head_table(motifs: list[HeadMotif], min_information: float, match_qvalue: float = 0.05, stability: list | None = None):
    """heads.tsv rows: layer, head, head_id, offset, offset_from_tss, mean_attention, consensus,
    information (bits), informative (>= min_information), best_match (the nearest reference of an
    informative head whose Tomtom q-value <= match_qvalue, else '.'), nearest_motif (smallest Tomtom
    p-value), match_p_value, match_e_value, match_q_value (Benjamini-Hochberg over the informative
    heads x references; NaN for the others), match_offset, match_overlap, match_orientation; then,
    from `stability` (one `head_stability.HeadStability` per motif; NaN without it): information_low,
    information_high, match_support, match_p_95."""
    import pandas as pd

    rows = []
    for i, m in enumerate(motifs):
        steady = stability[i] if stability is not None else None
        nearest = match_label(m.match) or "."
        significant = m.match is not None and m.match.q_value <= match_qvalue and m.information >= min_information
        found = m.match
        rows.append(
            {
                "layer": m.layer,
                "head": m.head,
                "head_id": m.id,
                "offset": m.offset,
                "offset_from_tss": m.offset_from_tss,
                "mean_attention": m.mean_attention,
                "consensus": m.motif.consensus(),
                "information": m.information,
                "informative": m.information >= min_information,
                "best_match": nearest if significant else ".",
                "nearest_motif": nearest,
                "match_p_value": found.p_value if found else np.nan,
                "match_e_value": found.e_value if found else np.nan,
                "match_q_value": found.q_value if found else np.nan,
                "match_offset": found.offset if found else np.nan,
                "match_overlap": found.overlap if found else np.nan,
                "match_orientation": found.orientation if found else ".",
                "information_low": steady.information_low if steady else np.nan,
                "information_high": steady.information_high if steady else np.nan,
                "match_support": steady.match_support if steady else np.nan,
                "match_p_95": steady.match_p_95 if steady else np.nan,
            }
        )
    return pd.DataFrame(rows)
