"""How far a head's motif depends on which promoters the test region happens to hold: the motif
rebuilt on bootstrap subsets of the samples it is chosen from.

A head's motif is the k-mer matrix of the `top_n` samples of its ranking pool (`heads.MotifRanking`:
the top-output samples, ranked by the head's attention at its offset). Each round keeps the distinct
samples of a bootstrap draw of the pool (len(pool) draws with replacement, seeded: about 63 % of it),
ranks them exactly as the motif does (ties to the earlier sample in genome order) and builds the matrix
from the same share of them (top_n / len(pool): 50 of 500, so ~32 of ~316). Per head, over the rounds:

- `information_low`, `information_high`: the 5th and 95th percentiles of the rounds' information (bits),
  each less the extra its fewer sites read from sampling alone (`same_sites_information`, Miller-Madow:
  up to 0.17 bits for a flat 7-mer of 32 sites against 50, none for a conserved one). Taking the top 50
  of each subset instead would reach deeper into the ranking than the motif does (planted genome: a
  10.8-bit head fell to 5.4-8.5 bits, the motif's own samples being about all the strong ones), and
  rounds of repeated draws would raise every round's bits (a flat 7-mer of 50 sites reads ~0.3 bits,
  with repeats 0.4-1.0);
- `match_support`: the share of rounds in which the match to the head's nearest reference would
  still be called at `interpret.match_qvalue` (Benjamini-Hochberg over the heads' family recomputed
  with the round's Tomtom p-values in place of the head's), NaN for heads outside the family (below
  `interpret.min_information`);
- `match_p_95`: the 95th percentile of the rounds' Tomtom p-value against that reference.

A head whose 50th and 51st samples are near-equal, or whose motif rests on a few promoters, shows it
here as a wide interval and a low support: its logo is then one draw among several.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genometracks.genome.sequence import Genome
from genometracks.interpret.fdr import bh_qvalues
from genometracks.interpret.head_motifs import HeadMotif, MotifRanking, head_kmers
from genometracks.interpret.heads import HeadSamples, InterpretError
from genometracks.interpret.matching import TomtomTable, compare
from genometracks.interpret.motifs import Motif, pfm_from_kmers

PERCENTILES = (5.0, 95.0)


@dataclass(frozen=True)
class HeadStability:
    """One head's motif over `rounds` bootstrap rounds (see the module docstring); NaN when rounds = 0."""

    rounds: int
    information_low: float
    information_high: float
    match_support: float
    match_p_95: float

    @classmethod
    def unmeasured(cls) -> HeadStability:
        return cls(0, np.nan, np.nan, np.nan, np.nan)


def bootstrap_subsets(pool_size: int, rounds: int, seed: int) -> list[np.ndarray]:
    """One int64 index array into the pool per round, ascending: the distinct samples of a bootstrap
    draw of `pool_size` with replacement (about 63 % of the pool; ascending, so a stable sort breaks
    ties towards the earlier sample, as the motif itself does)."""
    rng = np.random.default_rng(seed)
    return [np.unique(rng.integers(0, pool_size, size=pool_size)) for _ in range(rounds)]


def round_motifs(kmers: np.ndarray, scores: np.ndarray, subsets: list[np.ndarray], top_n: int, name: str) -> list[Motif]:
    """One motif per round: the k-mers [len(pool), K] of each subset's highest-scoring samples (scores
    [len(pool)], float64), as many as keep the motif's share of the pool (`top_n` of len(pool): about
    32 of a 316-sample subset for 50 of 500), so a round reads the same depth of the ranking."""
    motifs = []
    for i, rows in enumerate(subsets):
        keep = max(1, round(top_n * rows.size / scores.size))
        top = rows[np.argsort(-scores[rows], kind="stable")[:keep]]
        motifs.append(pfm_from_kmers(kmers[top], name=f"{name}_round{i}", source="bootstrap"))
    return motifs


def same_sites_information(motif: Motif, sites: float) -> float:
    """The motif's information (bits) less the extra its fewer sites read from sampling alone, by the
    Miller-Madow bias of each column's entropy, (letters seen - 1) / (2 ln2 · n) bits: summed over the
    columns, (letters seen - 1) / (2 ln2) · (1 / motif.nsites - 1 / sites). A conserved column (one
    letter) needs none; a flat one 3 / (2 ln2) · (...), Schneider et al.'s small-sample correction."""
    seen = (motif.probabilities > 0).sum(axis=1)
    extra = float((seen - 1).sum()) / (2.0 * np.log(2.0)) * (1.0 / motif.nsites - 1.0 / sites)
    return motif.information_content()[1] - extra


def head_stability(
    samples: HeadSamples,
    genome: Genome,
    motifs: Sequence[HeadMotif],
    tomtom: TomtomTable,
    conv_width: int,
    top_n: int,
    rounds: int,
    rank_by: str = "top_attention",
    match_qvalue: float = 0.05,
    seed: int = 0,
) -> list[HeadStability]:
    """One HeadStability per entry of `motifs`, as `head_motifs` made them from the same samples,
    `top_n` and `rank_by`, with `tomtom` its table (heads x references; the q-value family is the
    heads whose q is finite). Every head sees the same `rounds` resamples of the pool; rounds = 0:
    unmeasured. `match_support`: see `called_in_family`; NaN for heads outside the family."""
    if int(rounds) < 0:
        raise InterpretError(f"interpret.motif_bootstrap={rounds}: give a number of rounds >= 0 (0 turns it off)")
    if rounds == 0 or not motifs:
        return [HeadStability.unmeasured() for _ in motifs]
    ranking = MotifRanking.of(samples, rank_by, top_n)
    subsets = bootstrap_subsets(ranking.pool.size, int(rounds), seed)
    per_head, queries = [], []
    for m in motifs:
        kmers = head_kmers(samples, genome, ranking.pool, m.offset, conv_width)
        made = round_motifs(kmers, ranking.scores(samples, m.layer, m.head, m.offset), subsets, top_n, m.id)
        per_head.append(np.array([same_sites_information(r, m.motif.nsites) for r in made]))
        queries += made
    refs = list(tomtom.refs)
    table = compare(queries, refs) if refs else None
    out = []
    for i, (m, information) in enumerate(zip(motifs, per_head)):
        low, high = (float(x) for x in np.percentile(information, PERCENTILES))
        support = p_95 = np.nan
        if table is not None and m.match is not None:
            own = next(j for j, ref in enumerate(refs) if ref is m.match.ref)
            rows = table.p[i * rounds : (i + 1) * rounds]  # [rounds, refs]
            p_95 = float(np.percentile(rows[:, own], PERCENTILES[1]))
            if np.isfinite(m.match.q_value):
                support = float(np.mean(called_in_family(tomtom, i, own, rows, match_qvalue)))
        out.append(HeadStability(int(rounds), low, high, support, p_95))
    return out


def called_in_family(tomtom: TomtomTable, head: int, ref: int, rows: np.ndarray, match_qvalue: float) -> np.ndarray:
    """bool [rounds]: whether the pair (head, ref) is called at `match_qvalue` when the head's row of
    Tomtom p-values in the q-value family (the heads x references whose q is finite) is replaced by
    each round's row `rows` [rounds, refs] (Benjamini-Hochberg over the family, recomputed per round)."""
    family = np.where(np.isfinite(tomtom.q), tomtom.p, np.nan)
    called = np.zeros(len(rows), dtype=bool)
    for r, row in enumerate(rows):
        family[head] = row
        called[r] = bh_qvalues(family)[head, ref] <= match_qvalue
    return called


def head_logo_title(motif: HeadMotif, steady: HeadStability) -> str:
    """'L1H0 at -15 (4.5 bits)', and when measured a second line: the 90 % interval of the bits and
    the share of rounds in which the match stays significant."""
    title = f"{motif.id} at {motif.offset_from_tss:+d} ({motif.information:.1f} bits)"
    if steady.rounds == 0:
        return title
    extra = f"bootstrap {steady.information_low:.1f}-{steady.information_high:.1f} bits"
    if not np.isnan(steady.match_support):
        extra += f", match {100 * steady.match_support:.0f} %"
    return f"{title}\n{extra}"
