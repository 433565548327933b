"""`data summary`'s purine share at the TSS: a check of the TSS file's coordinate base, on a genome
whose answer is known by hand."""

from __future__ import annotations

import logging

import numpy as np

from genometracks.data.summary import purine_shares, warn_if_off_by_one
from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import Genome


def _genome_with_starts(n: int = 200) -> tuple[Genome, SiteSet]:
    """TSSs every 20 nt: '+' ones read C|A|C (-1, +1, +2), '-' ones read (on their strand) C|G|T."""
    seq = np.array(list("T" * (20 * n + 40)))
    plus = np.arange(20, 20 * n, 40)
    minus = plus + 20
    seq[plus - 1], seq[plus], seq[plus + 1] = "C", "A", "C"
    # '-' strand reads the reverse complement: -1 is forward p+1, +2 is forward p-1
    seq[minus + 1], seq[minus], seq[minus - 1] = "G", "C", "A"  # strand letters C, G, T
    genome = Genome.from_sequences({"c": "".join(seq)})
    pos = np.concatenate([plus, minus])
    strand = np.array(["+"] * plus.size + ["-"] * minus.size)
    return genome, SiteSet(np.array(["c"] * pos.size, dtype=object), pos, strand)


def test_purine_shares_read_each_tss_on_its_own_strand():
    genome, sites = _genome_with_starts()
    assert purine_shares(genome, sites) == {"-1": 0.0, "+1": 1.0, "+2": 0.0}
    one_based = SiteSet(sites.chrom, sites.pos + np.where(sites.strand == "+", 1, -1), sites.strand)  # one base downstream
    assert purine_shares(genome, one_based)["+1"] == 0.0


def test_a_tss_file_off_by_one_is_warned_about_once(caplog):
    caplog.set_level(logging.WARNING)
    warn_if_off_by_one({"-1": 0.81, "+1": 0.345, "+2": 0.30}, 500, "mine", None)
    assert len(caplog.records) == 1 and "34 % of TSSs start on a purine (A/G) at +1 but 81 % at -1" in caplog.text
    caplog.clear()
    warn_if_off_by_one({"-1": 0.29, "+1": 0.81, "+2": 0.41}, 500, "cappable_seq", None)  # E. coli's sets: fine
    warn_if_off_by_one({"-1": 0.9, "+1": 0.3, "+2": 0.3}, 50, "few", None)  # too few to say
    assert not caplog.records
