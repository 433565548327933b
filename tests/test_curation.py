"""Curated TSS set (support, majority vote, priority tie-break) and the overlap report."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from genometracks.genome.intervals import SiteSet
from genometracks.labels.curation import CurationError, curate, overlap_report, write_overlap_report
from tests.conftest import ECOLI, needs_ecoli


def sites(*records) -> SiteSet:
    """records: (pos, strand) or (chrom, pos, strand)."""
    rows = [r if len(r) == 3 else ("c", *r) for r in records]
    return SiteSet(np.array([r[0] for r in rows], object), [r[1] for r in rows], [r[2] for r in rows])


def as_tuples(s: SiteSet) -> list[tuple]:
    return list(zip(s.chrom.tolist(), s.pos.tolist(), s.strand.tolist()))


def test_majority_vote_support_and_min_support():
    sets = {"A": sites((100, "+"), (500, "+")), "B": sites((102, "+"), (900, "-")), "C": sites((102, "+"), (903, "-"))}
    out = curate(sets, ["A", "B", "C"])
    assert as_tuples(out) == [("c", 102, "+"), ("c", 900, "-")]  # 102 has 2 votes against 1
    assert list(out.meta["support"]) == [3, 2]
    assert list(out.name) == ["A,B,C", "B,C"]  # 500 (A only) is left out
    assert len(curate(sets, ["A", "B", "C"], min_support=3)) == 1


def test_tie_goes_to_priority():
    sets = {"old": sites((100, "-")), "new": sites((104, "-"))}
    assert curate(sets, ["new", "old"]).pos.tolist() == [104]
    assert curate(sets, ["old", "new"]).pos.tolist() == [100]


def test_reports_across_the_origin_of_a_circular_contig_are_one_tss():
    # 998 and 1 are 3 nt apart on a 1,000-nt circle; on a linear contig they are 997 apart
    sets = {"A": sites((998, "+"), (500, "+"), ("lin", 998, "+")), "B": sites((1, "+"), (503, "+"), ("lin", 1, "+"))}
    assert as_tuples(curate(sets, ["A", "B"])) == [("c", 500, "+")]
    out = curate(sets, ["A", "B"], circular={"c": 1000})
    assert as_tuples(out) == [("c", 500, "+"), ("c", 998, "+")]  # the tie goes to A, the first in priority
    assert list(out.meta["support"]) == [2, 2] and list(out.name) == ["A,B", "A,B"]
    assert as_tuples(curate(sets, ["B", "A"], circular={"c": 1000})) == [("c", 1, "+"), ("c", 503, "+")]
    # nothing near the origin: the same TSSs as without the circle
    far = {"A": sites((100, "+"), (400, "-")), "B": sites((102, "+"), (405, "-"))}
    assert as_tuples(curate(far, ["A", "B"], circular={"c": 1000})) == as_tuples(curate(far, ["A", "B"]))


def test_window_strand_and_contig_separate_tss():
    sets = {"A": sites((100, "+"), ("c", 300, "+"), ("d", 700, "+")), "B": sites((106, "+"), ("c", 300, "-"), ("e", 700, "+"))}
    assert len(curate(sets, ["A", "B"])) == 0  # 6 nt apart, other strand, other contig
    assert curate(sets, ["A", "B"], window=6).pos.tolist() == [100]


def test_chain_yields_separate_tss():
    # A:100 .. B:104 .. A:108, C:108  → 108 wins (2 votes), supported by A, B, C; 100 then stands alone
    sets = {"A": sites((100, "+"), (108, "+")), "B": sites((104, "+")), "C": sites((108, "+"))}
    out = curate(sets, ["A", "B", "C"])
    assert out.pos.tolist() == [108] and out.meta["support"].tolist() == [3]
    # A:100, B:100 | C:105 | D:110, E:110: 100 and 110 tie on votes, priority picks 110 first
    sets = {k: sites((p, "+")) for k, p in zip("ABCDE", [100, 100, 105, 110, 110])}
    out = curate(sets, ["D", "A", "B", "C", "E"])
    assert out.pos.tolist() == [100, 110] and out.meta["support"].tolist() == [2, 3]


def test_duplicates_within_a_set_count_once_and_add_all_of():
    sets = {"A": sites((100, "+"), (100, "+"), (400, "+"), (800, "-")), "B": sites((101, "+"))}
    out = curate(sets, ["A", "B"])
    assert out.pos.tolist() == [100] and out.meta["support"].tolist() == [2]
    assert len(curate({"A": sites((1, "+"), (1, "+"))}, ["A"])) == 0  # one set twice is not two sets
    out = curate(sets, ["A", "B"], add_all_of="A")
    assert as_tuples(out) == [("c", 100, "+"), ("c", 400, "+"), ("c", 800, "-")]
    assert out.meta["added"] == 2 and out.name.tolist() == ["A,B", "A", "A"]


def test_curation_errors():
    with pytest.raises(CurationError, match="'B' is empty"):
        curate({"A": sites((1, "+")), "B": sites()}, ["A", "B"])
    with pytest.raises(CurationError, match=r"\['B'\] are not in the priority list"):
        curate({"A": sites((1, "+")), "B": sites((2, "+"))}, ["A"])
    with pytest.raises(CurationError, match="add_all_of='Z'"):
        curate({"A": sites((1, "+"))}, ["A"], add_all_of="Z")


def reference_curate(sets: dict, priority: list, window: int = 5, min_support: int = 2) -> list[tuple]:
    """Plain-Python statement of the rules, for comparison on small random inputs."""
    rank = {n: priority.index(n) for n in sets}
    records = sorted({(c, s, p, n) for n, ss in sets.items() for c, p, s in as_tuples(ss)})
    out = []
    while records:
        clusters, current = [], [records[0]]
        for r in records[1:]:
            same = r[:2] == current[-1][:2] and r[2] - current[-1][2] <= window
            if same:
                current.append(r)
            else:
                clusters.append(current)
                current = [r]
        clusters.append(current)
        consumed = set()
        for cl in clusters:
            positions = {r[2] for r in cl}

            def key(p):
                at = [r for r in cl if r[2] == p]  # noqa: B023 (used within this iteration)
                return (-len(at), min(rank[r[3]] for r in at), p)

            win = min(positions, key=key)
            near = [r for r in cl if abs(r[2] - win) <= window]
            consumed.update(near)
            if len({r[3] for r in near}) >= min_support:
                out.append((cl[0][0], win, cl[0][1]))
        records = [r for r in records if r not in consumed]
    return sorted(out)


@pytest.mark.parametrize("seed", range(6))
def test_curate_matches_reference_on_random_sets(seed):
    rng = np.random.default_rng(seed)
    sets = {}
    for name in "ABCD":
        n = int(rng.integers(5, 60))
        sets[name] = sites(
            *[(str(rng.choice(["c1", "c2"])), int(p), str(s)) for p, s in zip(rng.integers(0, 300, n), rng.choice(["+", "-"], n))]
        )
    priority = list(rng.permutation(list("ABCD")))
    out = curate(sets, priority)
    assert sorted(as_tuples(out)) == reference_curate(sets, priority)


def test_overlap_report_counts_and_strand_aware_shifts():
    sets = {"A": sites((100, "+"), (200, "-"), (500, "+")), "B": sites((102, "+"), (198, "-"), (505, "-"))}
    table, shifts = overlap_report(sets, window=5)
    row = table.set_index(["set_a", "set_b"])
    assert row.loc[("A", "B"), "shared"] == 2 and row.loc[("A", "A"), "shared"] == 3
    assert row.loc[("A", "B"), "fraction"] == pytest.approx(2 / 3)
    expected = np.zeros(11, int)
    expected[5 + 2] = 2  # B is 2 nt downstream of A on both strands
    assert shifts[("A", "B")].tolist() == expected.tolist() and ("B", "A") not in shifts


def test_write_overlap_report_reads_back(tmp_path):
    sets = {"A": sites((100, "+"), (200, "-")), "B": sites((101, "+")), "C": sites((199, "-"), (50, "+"))}
    paths = write_overlap_report(sets, tmp_path / "report")
    table = pd.read_csv(paths["overlap"], sep="\t")
    assert len(table) == 9
    assert table.query("set_a == 'A' and set_b == 'C'")["shared"].item() == 1
    shifts = pd.read_csv(paths["shifts"], sep="\t")
    assert shifts.query("set_a == 'A' and set_b == 'B' and count > 0")["shift"].tolist() == [1]
    assert shifts.query("set_a == 'A' and set_b == 'C' and count > 0")["shift"].tolist() == [1]
    image = matplotlib.image.imread(paths["png"])
    assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["overlap.png", "overlap.tsv", "shifts.tsv"]


@needs_ecoli
@pytest.mark.slow
def test_curated_set_on_shared_data():
    from genometracks.genome.sequence import Genome
    from genometracks.labels.annotations import load_tss_set

    genome = Genome.open(ECOLI / "genome" / "NC_000913.3.fa")
    out = load_tss_set("curated", genome, ECOLI)
    assert out.meta["support"].min() >= 2
    assert 3000 < len(out) < 8000
    assert set(out.meta["liftover"]["sets"]) == {"cappable_seq", "drnaseq", "cho2014", "regulondb_strong"}
    strict = load_tss_set(
        "curated", genome, ECOLI, curation={"priority": ["cappable_seq", "drnaseq"], "window": 5, "min_support": 2, "add_all_of": None}
    )
    assert set(strict.name) == {"cappable_seq,drnaseq"} and len(strict) < len(out)
    tokens = genome.tokens("NC_000913.3")[out.pos]
    tokens = np.where(out.strand == "+", tokens, 3 - tokens)
    assert np.isin(tokens, [0, 2]).mean() >= 0.75
