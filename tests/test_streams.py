"""Labels, splits and SegmentStreams on hand-made genomes: one circular contig, one linear.

Expected values are computed here from the plain strings (Python slicing, reverse complement by
str.translate), not with the code under test.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from genometracks.data.streams import (
    SegmentStreams,
    StreamError,
    build_labels,
    make_splits,
    positions_per_split,
    shift_along,
    spread_labels,
    stack_labels,
    to_forward,
    to_forward_tracks,
    to_local,
)
from genometracks.genome.intervals import Interval, SiteSet
from genometracks.genome.sequence import Genome
from genometracks.io.run_config import group_defaults
from tests.conftest import ECOLI, needs_ecoli

_rng = np.random.default_rng(7)
CIRC = "".join(_rng.choice(list("ACGT"), 997))
LIN = "".join(_rng.choice(list("ACGT"), 613))
SEQS = {"circ": CIRC, "lin": LIN}
CODE = {c: i for i, c in enumerate("ACGTN")}
# the TSS paper's E. coli K-12 split, as conf/data/ecoli_k12.yaml declares it
ECOLI_K12_SPLITS = OmegaConf.to_container(group_defaults("data", "ecoli_k12").splits)
SPLIT_CFG = {"test": [["circ", 300, 500], ["lin", 100, 250]], "validation": [["circ", 500, 650]]}
# by hand: test 2*(200+150); validation 2*150; train 2*((997-350) + (613-150))
EXPECTED_POSITIONS = {"test": 700, "validation": 300, "train": 2220}


def strand_seq(name: str, strand: str) -> str:
    s = SEQS[name]
    return s if strand == "+" else s[::-1].translate(str.maketrans("ACGT", "TGCA"))


def expected_tokens(name: str, strand: str, start: int, width: int) -> list[int]:
    s, n = strand_seq(name, strand), len(SEQS[name])
    if name == "circ":
        return [CODE[s[p % n]] for p in range(start, start + width)]
    return [CODE[s[p]] if 0 <= p < n else 4 for p in range(start, start + width)]


@pytest.fixture(scope="module")
def genome() -> Genome:
    return Genome.from_sequences(SEQS, circular=["circ"])


@pytest.fixture(scope="module")
def splits(genome):
    return make_splits(genome, SPLIT_CFG)


def is_padding(batch: dict, b: int) -> bool:
    """A row of a stream that ran out: reset, nothing scored, all tokens N."""
    return bool(batch["reset"][b]) and not batch["mask"][b].any() and bool((batch["tokens"][b] == 4).all())


def coverage(name: str, strand: str, intervals: list[Interval]) -> np.ndarray:
    """0/1 strand-local coverage of forward intervals, built by reversing a forward array."""
    cov = np.zeros(len(SEQS[name]), dtype=np.int64)
    for iv in intervals:
        if iv.chrom == name:
            cov[iv.start : iv.end] = 1
    return cov if strand == "+" else cov[::-1]


def count_scored(streams: SegmentStreams) -> tuple[dict, int]:
    counts = {(c, s): np.zeros(len(SEQS[c]), dtype=np.int64) for c in SEQS for s in "+-"}
    n_batches = 0
    for batch in streams:
        n_batches += 1
        b, j = np.nonzero(batch["mask"].numpy())
        pos = batch["start"].numpy()[b] + j
        for row, p in zip(b, pos):
            name = ["circ", "lin"][int(batch["contig"][row])]
            strand = "+-"[int(batch["strand"][row])]
            if name == "lin":
                assert 0 <= p < len(LIN)
            counts[(name, strand)][p % len(SEQS[name])] += 1
    return counts, n_batches


def test_splits_by_hand(genome, splits):
    assert [(iv.chrom, iv.start, iv.end) for iv in splits["train"]] == [
        ("circ", 0, 300),
        ("circ", 650, 997),
        ("lin", 0, 100),
        ("lin", 250, 613),
    ]
    assert positions_per_split(splits) == EXPECTED_POSITIONS
    default = make_splits(genome, None)  # 70/20/10 along each contig: 997 → 697, 897; 613 → 429, 551
    assert [(iv.chrom, iv.start, iv.end) for name in ("train", "validation", "test") for iv in default[name]] == [
        ("circ", 0, 697),
        ("lin", 0, 429),
        ("circ", 697, 897),
        ("lin", 429, 551),
        ("circ", 897, 997),
        ("lin", 551, 613),
    ]
    assert make_splits(genome, {}) == default


def test_coordinates():
    assert to_forward(10, "-", 0) == 9 and to_forward(10, "+", 3) == 3 and to_local(10, "-", 7) == 2
    assert to_forward(10, np.array(["+", "-"]), np.array([2, 2])).tolist() == [2, 7]
    assert to_forward(np.array([10, 20]), np.array([1, 1]), np.array([0, 0])).tolist() == [9, 19]
    with pytest.raises(StreamError, match="strand"):
        to_forward(10, "x", 1)


def test_labels_by_hand(genome):
    sites = SiteSet(
        ["circ", "circ", "circ", "lin", "lin", "lin", "lin"], [990, 5, 400, 600, 605, 3, 0], ["+", "-", "+", "+", "-", "-", "+"]
    )
    labels = build_labels(genome, sites, shift=20)
    got = {k: np.flatnonzero(v).tolist() for k, v in labels.items()}
    # circ '+': 990+20 wraps to 13, 400 → 420; circ '-': forward 5 = local 991 → 1011 wraps to 14;
    # lin '+': 600+20 >= 613 is dropped, 0 → 20; lin '-': forward 605 = local 7 → 27, forward 3 = local 609 dropped
    assert got == {("circ", "+"): [13, 420], ("circ", "-"): [14], ("lin", "+"): [20], ("lin", "-"): [27]}
    assert all(v.dtype == np.uint8 for v in labels.values())


@pytest.mark.parametrize(
    "by, linear, circular",
    [
        (2, [0, 0, 1, 2, 3], [4, 5, 1, 2, 3]),
        (-2, [3, 4, 5, 0, 0], [3, 4, 5, 1, 2]),
        (0, [1, 2, 3, 4, 5], [1, 2, 3, 4, 5]),
        (7, [0, 0, 0, 0, 0], [4, 5, 1, 2, 3]),
        (-5, [0, 0, 0, 0, 0], [1, 2, 3, 4, 5]),
    ],
)
def test_shift_along_by_hand(by, linear, circular):
    """The one shift of strand-local arrays (label spread; predict moving outputs back to the TSS)."""
    x = np.arange(1, 6)
    assert shift_along(x, by, circular=False).tolist() == linear
    assert shift_along(x, by, circular=True).tolist() == circular
    assert x.tolist() == [1, 2, 3, 4, 5]  # a copy, the input untouched


def test_spread_labels_by_hand(genome):
    """Soft targets decay**d within `width` nt; they wrap over a circular origin, stop at a linear end,
    and where two TSSs' spreads meet the nearer (larger) target wins."""
    sites = SiteSet(["circ", "circ", "circ", "lin", "lin"], [0, 100, 102, 0, 612], ["+", "+", "+", "+", "+"])
    labels = build_labels(genome, sites, shift=0)
    soft = spread_labels(labels, genome, width=2, decay=0.5)
    circ, lin = soft[("circ", "+")], soft[("lin", "+")]
    assert circ.dtype == np.float32 and circ.shape == (997,)
    expect = np.zeros(997, np.float32)
    expect[[995, 996, 0, 1, 2]] = [0.25, 0.5, 1, 0.5, 0.25]  # over the origin of the circular contig
    expect[[98, 99, 100, 101, 102, 103, 104]] = [0.25, 0.5, 1, 0.5, 1, 0.5, 0.25]
    np.testing.assert_array_equal(circ, expect)
    expect = np.zeros(613, np.float32)
    expect[[0, 1, 2, 610, 611, 612]] = [1, 0.5, 0.25, 0.25, 0.5, 1]  # nothing past either linear end
    np.testing.assert_array_equal(lin, expect)
    assert not soft[("circ", "-")].any() and not soft[("lin", "-")].any()
    np.testing.assert_array_equal(spread_labels(labels, genome, width=0)[("circ", "+")], labels[("circ", "+")])
    with pytest.raises(StreamError, match="decay"):
        spread_labels(labels, genome, width=1, decay=0.0)
    with pytest.raises(StreamError, match="non-negative integer"):
        spread_labels(labels, genome, width=-1)


def test_overfit_trains_and_validates_on_the_same_first_batches_every_epoch(genome):
    """debug=overfit: the datamodule (not Lightning, which cannot re-make our loaders) yields the first N
    training batches each epoch, unrotated although the seed rotates the cuts otherwise, and validates on them."""
    from genometracks.data.datamodule import TSSDataModule

    sites = SiteSet(["circ", "circ", "lin"], [50, 700, 40], ["+", "-", "+"])
    kw = dict(sites=sites, splits=SPLIT_CFG, n_streams=2, seg_len=100, lookahead=4, burn_in=30, seed=7)
    normal, overfit = TSSDataModule(genome, **kw), TSSDataModule(genome, overfit_batches=2, **kw)
    for dm in (normal, overfit):
        dm.setup("fit")

    def tokens(loader):
        return [b["tokens"].clone() for b in loader]

    first = tokens(overfit.train_dataloader())
    assert len(first) == len(overfit.train_dataloader()) == 2 < len(normal.train_dataloader())
    for got, want in zip(first, tokens(normal.train_dataloader())[:2]):  # the normal epoch 0's first batches
        assert torch.equal(got, want)
    overfit.trainer = normal.trainer = type("T", (), {"current_epoch": 1, "world_size": 1})()  # epoch 1 rotates the cuts
    assert not all(torch.equal(a, b) for a, b in zip(tokens(normal.train_dataloader())[:2], first))
    for again in (tokens(overfit.train_dataloader()), tokens(overfit.val_dataloader())):
        assert len(again) == 2 and all(torch.equal(a, b) for a, b in zip(again, first))


def test_overfit_validates_its_training_batches_against_the_exact_labels(genome):
    """debug=overfit with task.target_spread: validation reads the training batches' tokens but scores
    the 0/1 labels (the spread targets 0.25, 0.5 counted every neighbour of a TSS as a positive)."""
    from genometracks.data.datamodule import TSSDataModule

    chrom, pos, strand = [], [], []
    for name, contig in genome.contigs.items():  # TSSs every 25 nt on both contigs and strands: every batch holds some
        every = np.arange(0, contig.length, 25)
        chrom += [name] * 2 * every.size
        pos += [*every, *every]
        strand += ["+"] * every.size + ["-"] * every.size
    sites = SiteSet(chrom, pos, strand)
    kw = dict(sites=sites, splits=SPLIT_CFG, n_streams=2, seg_len=100, lookahead=4, burn_in=30, seed=7, shift=20)
    dm = TSSDataModule(genome, overfit_batches=2, target_spread=2, spread_decay=0.5, **kw)
    dm.setup("fit")
    train, val = list(dm.train_dataloader()), list(dm.val_dataloader())
    assert len(train) == len(val) == 2
    for t, v in zip(train, val):
        assert torch.equal(t["tokens"], v["tokens"]) and torch.equal(t["mask"], v["mask"])
        assert set(np.unique(t["labels"][t["mask"]].numpy())) > {0.0, 1.0}  # spread targets in training
        assert set(np.unique(v["labels"][v["mask"]].numpy())) <= {0.0, 1.0}
        assert torch.equal(v["labels"] == 1, t["labels"] == 1)  # the same TSSs


def test_datamodule_spreads_training_targets_only(genome):
    """target_spread changes what training learns from, never what validation, test or predict score."""
    from genometracks.data.datamodule import TSSDataModule

    sites = SiteSet(["circ", "circ", "lin"], [50, 700, 40], ["+", "-", "+"])
    kw = dict(sites=sites, splits=SPLIT_CFG, n_streams=2, seg_len=100, lookahead=0, burn_in=0, shift=20)
    plain = TSSDataModule(genome, **kw)
    spread = TSSDataModule(genome, target_spread=1, spread_decay=0.25, **kw)
    for dm in (plain, spread):
        dm.setup("fit")

    def scored(loader):
        return np.concatenate([b["labels"][b["mask"]].numpy() for b in loader])

    hard, soft = scored(plain.train_dataloader()), scored(spread.train_dataloader())
    # 3 training TSSs, none within 1 nt of a split edge: each gains two neighbours at 0.25
    assert hard.sum() == 3 and sorted(set(hard.tolist())) == [0.0, 1.0]
    assert soft.sum() == pytest.approx(3 * (1 + 2 * 0.25)) and (soft == 0.25).sum() == 6 and (soft == 1).sum() == 3
    for stage in ("val_dataloader", "test_dataloader", "predict_dataloader"):
        np.testing.assert_array_equal(scored(getattr(spread, stage)()), scored(getattr(plain, stage)()))


def test_stacked_label_sets_travel_as_labels_and_aux_labels(genome, splits):
    """Several label sets (primary first) stream side by side: every batch's `labels` [B, L] is set 0
    and `aux_labels` [B, L, 2] sets 1 and 2 at the same positions, on both strands."""
    sets = [
        SiteSet(["circ", "lin"], [10, 30], ["+", "-"]),
        SiteSet(["circ", "circ"], [10, 400], ["+", "-"]),
        SiteSet(["lin"], [300], ["+"]),
    ]
    built = [build_labels(genome, s, shift=20) for s in sets]
    stacked = stack_labels(built)
    assert stacked[("circ", "+")].shape == (997, 3) and stacked[("circ", "+")].dtype == np.uint8
    single = SegmentStreams(genome, built[0], splits["train"], n_streams=3, seg_len=64, lookahead=4)
    multi = SegmentStreams(genome, stacked, splits["train"], n_streams=3, seg_len=64, lookahead=4)
    seen = {k: {} for k in range(3)}
    for t in range(len(multi)):
        a, b = single.batch(t), multi.batch(t)
        assert "aux_labels" not in a and b["aux_labels"].shape == (3, 64, 2)
        torch.testing.assert_close(b["labels"], a["labels"])
        torch.testing.assert_close(b["tokens"], a["tokens"])
        for k in range(3):
            values = b["labels"] if k == 0 else b["aux_labels"][..., k - 1]
            multi.scatter(values, b, seen[k])
    for k in range(3):  # each set's labels come back where build_labels put them
        for key, arr in seen[k].items():
            scored = ~np.isnan(arr)
            np.testing.assert_array_equal(arr[scored], built[k][key][scored])
    assert sum(np.nansum(v) for v in seen[2].values()) == 1  # lin:300 + (output 320) lies in the training split
    soft = spread_labels(stacked, genome, width=1, decay=0.5)  # each set spreads on its own
    for k in range(3):
        np.testing.assert_array_equal(soft[("circ", "+")][:, k], spread_labels(built[k], genome, 1, 0.5)[("circ", "+")])
    with pytest.raises(StreamError, match="same genome"):
        stack_labels([built[0], {("circ", "+"): built[1][("circ", "+")]}])
    with pytest.raises(StreamError, match="stack_labels"):
        SegmentStreams(genome, {**stacked, ("lin", "+"): built[0][("lin", "+")]}, splits["train"], n_streams=2, seg_len=64)


@pytest.mark.parametrize("lookahead", [0, 18])
@pytest.mark.parametrize("seg_len", [100, 512])
@pytest.mark.parametrize("n_streams", [1, 3, 10])
def test_every_position_exactly_once(genome, splits, n_streams, seg_len, lookahead):
    for name, regions in splits.items():
        streams = SegmentStreams(genome, None, regions, n_streams, seg_len, lookahead, burn_in=130)
        counts, n_batches = count_scored(streams)
        assert n_batches == len(streams)
        for (c, s), got in counts.items():
            np.testing.assert_array_equal(got, coverage(c, s, regions), err_msg=f"{name} {c}{s}")
        assert sum(int(v.sum()) for v in counts.values()) == EXPECTED_POSITIONS[name] == streams.total


@pytest.mark.parametrize("burn_in", [0, 130, 1200])
def test_tokens_burn_in_lookahead_and_continuity(genome, splits, burn_in):
    L, H = 100, 18
    seen_wrap = seen_past_end = False
    for regions in splits.regions.values():
        streams = SegmentStreams(genome, None, regions, 3, L, H, burn_in=burn_in)
        chunk_first, prev = {}, {}
        for t, batch in enumerate(streams):
            assert batch["tokens"].dtype == torch.int64 and batch["tokens"].shape == (3, L + H)
            assert batch["labels"].dtype == torch.float32 and batch["mask"].dtype == torch.bool
            assert t > 0 or batch["reset"].all()
            for b in range(3):
                mask = batch["mask"][b].numpy()
                start = int(batch["start"][b])
                name, strand = ["circ", "lin"][int(batch["contig"][b])], "+-"[int(batch["strand"][b])]
                if is_padding(batch, b):
                    continue
                assert batch["tokens"][b].tolist() == expected_tokens(name, strand, start, L + H)
                n = len(SEQS[name])
                seen_wrap |= name == "circ" and (start < 0 or start + L + H > n)
                seen_past_end |= name == "lin" and start + L + H > n
                if batch["reset"][b]:
                    chunk_first[b] = start
                else:  # memory carries on: the row continues the previous one
                    assert (start, name, strand) == (prev[b][0] + L, prev[b][1], prev[b][2])
                prev[b] = (start, name, strand)
                for p in start + np.flatnonzero(mask):  # full upstream context before every scored position
                    need = burn_in if name == "circ" else min(burn_in, p)
                    assert p - chunk_first[b] >= need
    assert seen_wrap and seen_past_end


def test_first_chunk_burn_in_is_upstream_sequence(genome):
    """A test chunk starting at circ '+' 300 with burn-in 350 reads circ[947:997] + circ[0:300] first."""
    streams = SegmentStreams(genome, None, [Interval("circ", 300, 500, "+")], 1, 400, 0, burn_in=350)
    batch = next(iter(streams))
    assert int(batch["start"][0]) == -50
    assert batch["tokens"][0, :350].tolist() == [CODE[c] for c in CIRC[947:] + CIRC[:300]]
    assert np.flatnonzero(batch["mask"][0].numpy()).tolist() == list(range(350, 400))
    lin = SegmentStreams(genome, None, [Interval("lin", 100, 250, "+")], 1, 400, 0, burn_in=350)
    batch = next(iter(lin))  # linear: burn-in truncated at the contig start
    assert int(batch["start"][0]) == 0
    assert batch["tokens"][0, :250].tolist() == [CODE[c] for c in LIN[:250]]
    assert batch["tokens"][0, 250:].tolist() == [CODE[c] for c in LIN[250:400]]  # continuing sequence


def test_labels_follow_annotation_shifted_by_20(genome, splits):
    sites = SiteSet(
        ["circ", "circ", "circ", "lin", "lin", "lin", "lin"], [990, 5, 400, 600, 605, 3, 0], ["+", "-", "+", "+", "-", "-", "+"]
    )
    annotated = {
        ("circ", "+"): {990, 400},
        ("circ", "-"): {996 - 5},
        ("lin", "+"): {600, 0},
        ("lin", "-"): {612 - 605, 612 - 3},
    }  # strand-local TSS positions, by hand
    labels = build_labels(genome, sites, 20)
    checked = 0
    for regions in splits.regions.values():
        for batch in SegmentStreams(genome, labels, regions, 3, 100, 18, burn_in=40):
            for b in range(3):
                name, strand = ["circ", "lin"][int(batch["contig"][b])], "+-"[int(batch["strand"][b])]
                n = len(SEQS[name])
                if is_padding(batch, b):
                    assert not batch["labels"][b].any()
                    continue
                for j in range(100):
                    p = int(batch["start"][b]) + j
                    if name == "lin" and not 0 <= p < n:
                        assert batch["labels"][b, j] == 0
                        continue
                    src = (p - 20) % n if name == "circ" else p - 20
                    assert batch["labels"][b, j] == float(src in annotated[(name, strand)])
                    checked += int(batch["mask"][b, j] and src in annotated[(name, strand)])
    assert checked == 5  # 7 TSSs, each scored once except lin "+" 600 and lin "-" 3 (no output position)


def test_split_counts_are_the_positives_each_split_scores(genome, splits):
    # a split streams the outputs that label the TSSs inside it (labelled_outputs): a TSS within `shift` nt
    # of a split's edge is scored in its own split, though its output lies in the neighbour's region:
    # circ+490 -> output 510 (test), circ-505 -> 485 (validation), lin+240 -> 260 (test), circ+990 -> 13
    # over the origin (train); lin+600 and lin-5 have no output on the linear contig. Before session 20 the
    # splits streamed their own coordinates as outputs, and the first three were scored in the neighbour
    # (a '-' TSS of the test region's first 20 nt was a training label).
    from genometracks.data.dataset import Dataset, split_positive_counts
    from genometracks.data.streams import labelled_outputs

    sites = SiteSet(["circ", "circ", "lin", "circ", "lin", "lin"], [490, 505, 240, 990, 600, 5], ["+", "-", "+", "+", "+", "-"])
    labels = build_labels(genome, sites, 20)
    scored = {}
    for name, regions in splits.items():
        per_strand = {"+": 0, "-": 0}
        for batch in SegmentStreams(genome, labels, labelled_outputs(genome, regions, 20), 3, 100, 18, burn_in=40):
            for b in range(3):
                per_strand["+-"[int(batch["strand"][b])]] += int((batch["labels"][b] * batch["mask"][b]).sum())
        scored[name] = per_strand
    assert scored == {"train": {"+": 1, "-": 0}, "validation": {"+": 0, "-": 1}, "test": {"+": 2, "-": 0}}
    dataset = Dataset(genome, sites, "hand", splits, 20, genome.path)
    assert split_positive_counts(dataset, sites) == scored


def test_reverse_strand_maps_to_forward(genome, splits):
    for regions in splits.regions.values():
        streams = SegmentStreams(genome, None, regions, 3, 100, 0, burn_in=20)
        local, bases = {}, {}
        for batch in streams:
            pos = batch["start"][:, None] + torch.arange(100)[None, :]
            streams.scatter(pos.double(), batch, local)
            streams.scatter(batch["tokens"][:, :100].float(), batch, bases)
        tracks, base_tracks = to_forward_tracks(local), SegmentStreams.to_forward_tracks(bases)
        for iv in regions:
            n = len(SEQS[iv.chrom])
            f = np.arange(iv.start, iv.end)
            minus = tracks[iv.chrom]["-"][f]
            assert np.array_equal(minus % n, n - 1 - f)  # local index n-1-f sits at forward f
            assert base_tracks[iv.chrom]["-"][f].tolist() == [CODE["TGCA"["ACGT".index(SEQS[iv.chrom][x])]] for x in f]
            assert base_tracks[iv.chrom]["+"][f].tolist() == [CODE[SEQS[iv.chrom][x]] for x in f]


def test_tiny_reverse_strand_example():
    g = Genome.from_sequences({"t": "AACCGGTTAC"})  # reverse complement: GTAACCGGTT
    labels = build_labels(g, SiteSet(["t"], [9], ["-"]), shift=2)  # local 0 → output local 2 → forward 7
    assert np.flatnonzero(labels[("t", "-")]).tolist() == [2] and to_forward(10, "-", 2) == 7
    streams = SegmentStreams(g, labels, [Interval("t", 0, 10, "-")], 1, 4, 2)
    batches = list(streams)
    assert ["".join("ACGTN"[i] for i in b["tokens"][0].tolist()) for b in batches] == ["GTAACC", "CCGGTT", "TTNNNN"]
    assert [b["labels"][0].tolist() for b in batches] == [[0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert batches[2]["mask"][0].tolist() == [True, True, False, False]
    out = {}
    for b in batches:
        streams.scatter(b["labels"], b, out)
    assert np.flatnonzero(to_forward_tracks(out)["t"]["-"] == 1).tolist() == [7]
    assert np.isnan(to_forward_tracks(out)["t"]["+"]).all()


def test_circular_training_run_wraps_over_origin(genome, splits):
    streams = SegmentStreams(genome, None, [iv for iv in splits["train"] if iv.chrom == "circ"], 1, 100, 0)
    batches = list(streams)
    plus = [b for b in batches if b["strand"][0] == 0 and b["mask"][0].any()]
    assert sum(bool(b["reset"][0]) for b in plus) == 1  # one run: 650..996 then 0..299 on '+'
    assert int(plus[0]["start"][0]) == 650 and int(plus[-1]["start"][0]) + 99 >= 997 + 299


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_ranks_disjoint_and_complete(genome, splits, world_size):
    for _name, regions in splits.items():
        total = {k: np.zeros(len(SEQS[k[0]]), np.int64) for k in ((c, s) for c in SEQS for s in "+-")}
        lengths = set()
        for rank in range(world_size):
            streams = SegmentStreams(genome, None, regions, 2, 100, 18, burn_in=50, rank=rank, world_size=world_size)
            counts, n_batches = count_scored(streams)
            lengths.add(n_batches)
            assert sum(int(v.sum()) for v in counts.values()) > 0
            for k in total:
                total[k] += counts[k]
        assert len(lengths) == 1  # every rank yields the same number of batches
        for (c, s), got in total.items():
            np.testing.assert_array_equal(got, coverage(c, s, regions))


def test_seeded_rotation_keeps_exactly_once(genome, splits):
    streams = SegmentStreams(genome, None, splits["train"], 3, 100, 18, burn_in=130, seed=5)
    n, offsets = len(streams), set()
    for epoch in range(4):
        streams.set_epoch(epoch)
        offsets.add(streams.offset)
        counts, n_batches = count_scored(streams)
        assert n_batches == n
        for (c, s), got in counts.items():
            np.testing.assert_array_equal(got, coverage(c, s, splits["train"]))
    assert len(offsets) > 1


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"test": [["chrX", 0, 10]]}, "contig 'chrX' is not in"),
        ({"test": [["lin", 600, 700]]}, r"outside lin \(length 613\)"),
        ({"test": [["lin", 50, 50]]}, "outside lin"),
        ({"test": [["lin", 0, 100]], "validation": [["lin", 90, 120]]}, "overlap"),
        ({"testing": [["lin", 0, 10]]}, "unknown split name"),
        ({"test": ["lin:0-10"]}, r"not a \[contig, start, end\]"),
        ({"test": [["lin", 0.5, 10]]}, "not integers"),
    ],
)
def test_bad_splits(genome, cfg, match):
    with pytest.raises(StreamError, match=match):
        make_splits(genome, cfg)


def test_bad_labels_and_streams(genome, splits):
    with pytest.raises(StreamError, match="record 1 is on contig 'chr9'"):
        build_labels(genome, SiteSet(["lin", "chr9"], [1, 2], ["+", "+"], source="t.bed"))
    with pytest.raises(StreamError, match=r"record 0 \(lin:613 \+\) lies outside"):
        build_labels(genome, SiteSet(["lin"], [613], ["+"]))
    with pytest.raises(StreamError, match="shift"):
        build_labels(genome, SiteSet(["lin"], [1], ["+"]), shift=-1)
    regions = splits["test"]
    for kwargs, match in [
        ({"n_streams": 0}, "n_streams"),
        ({"seg_len": 0}, "seg_len"),
        ({"lookahead": -1}, "lookahead"),
        ({"burn_in": -5}, "burn_in"),
        ({"rank": 2, "world_size": 2}, "rank=2"),
    ]:
        args = {"n_streams": 2, "seg_len": 100} | kwargs
        with pytest.raises(StreamError, match=match):
            SegmentStreams(genome, None, regions, **args)
    with pytest.raises(StreamError, match="empty"):
        SegmentStreams(genome, None, [], 2, 100)
    with pytest.raises(StreamError, match="overlap"):
        SegmentStreams(genome, None, [Interval("lin", 0, 100), Interval("lin", 50, 60, "-")], 2, 100)
    with pytest.raises(StreamError, match="contig 'chrZ'"):
        SegmentStreams(genome, None, [Interval("chrZ", 0, 10)], 2, 100)
    with pytest.raises(StreamError, match="ends past the contig"):
        SegmentStreams(genome, None, [Interval("lin", 0, 700)], 2, 100)
    with pytest.raises(StreamError, match="shape"):
        SegmentStreams(genome, {("lin", "+"): np.zeros(5, np.uint8)}, regions, 2, 100)
    streams = SegmentStreams(genome, None, regions, 2, 100)
    with pytest.raises(StreamError, match=r"values have shape \(2, 99\)"):
        streams.scatter(np.zeros((2, 99)), next(iter(streams)), {})


def test_datamodule(genome, splits):
    from genometracks.data.datamodule import TSSDataModule
    from genometracks.data.datamodule import TSSDataModule as reexported

    assert reexported is TSSDataModule
    sites = SiteSet(["circ", "lin"], [10, 20], ["+", "-"])
    dm = TSSDataModule(genome, sites=sites, splits=SPLIT_CFG, n_streams=2, seg_len=100, lookahead=4, burn_in=30, eval_streams=3)
    assert dm.labels is None  # cheap to construct: nothing built yet
    dm.setup("fit")
    assert positions_per_split(dm.splits) == EXPECTED_POSITIONS
    train, val = dm.train_dataloader(), dm.val_dataloader()
    batches = list(train)
    assert len(batches) == len(train) and batches[0]["tokens"].shape == (2, 104)
    assert next(iter(val))["tokens"].shape == (3, 104)
    # the outputs that label the split's TSSs: lin's train regions touch both ends of the linear contig, where
    # 20 outputs per strand would label TSSs off the contig (labelled_outputs); circ's wrap
    assert sum(int(b["mask"].sum()) for b in batches) == EXPECTED_POSITIONS["train"] - 2 * 20
    assert sum(int(b["mask"].sum()) for b in dm.predict_dataloader()) == 2 * (997 + 613)
    dm.skip_train_batches = 3  # mid-epoch resume
    assert len(list(dm.train_dataloader())) == len(batches) - 3
    # under DDP the rank and world size come from the trainer
    ranks = []
    for rank in range(2):
        ddp = TSSDataModule(genome, sites=sites, splits=SPLIT_CFG, n_streams=2, seg_len=100)
        ddp.trainer = SimpleNamespace(world_size=2, global_rank=rank, current_epoch=0, fit_loop=SimpleNamespace(restarting=False))
        ddp.setup("fit")
        ranks.append(sum(int(b["mask"].sum()) for b in ddp.test_dataloader()))
    assert ranks[0] > 0 and ranks[1] > 0 and sum(ranks) == EXPECTED_POSITIONS["test"]


@needs_ecoli
def test_ecoli_paper_splits():
    genome = Genome.open(ECOLI / "genome" / "NC_000913.3.fa", circular=["NC_000913.3"])
    splits = make_splits(genome, ECOLI_K12_SPLITS)
    n = 4_641_652
    assert positions_per_split(splits) == {"train": 2 * (n - 928_330 - 464_165), "validation": 2 * 464_165, "test": 1_856_660}
    assert [(iv.start, iv.end) for iv in splits["train"]] == [(0, 2_738_785), (4_131_280, n)]
    streams = SegmentStreams(genome, None, splits["test"], 16, 512, 0)
    counts = np.zeros(2 * n, np.int64)
    for batch in streams:
        b, j = np.nonzero(batch["mask"].numpy())
        np.add.at(counts, batch["strand"].numpy()[b] * n + (batch["start"].numpy()[b] + j) % n, 1)
    assert counts.max() == 1 and counts.sum() == 1_856_660
    assert counts[2_738_785:3_667_115].all() and counts[n + n - 3_667_115 : n + n - 2_738_785].all()


def test_datamodule_in_a_lightning_fit_and_mid_epoch_resume(genome, tmp_path):
    """Real Trainer: each epoch scores every training position once (cuts rotate with `seed`), and a
    run resumed from a mid-epoch checkpoint continues with exactly the batches not yet trained on."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from genometracks.data.datamodule import TSSDataModule

    class Counter(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: dict[int, list[int]] = {}

        def training_step(self, batch, batch_idx):
            self.seen.setdefault(self.current_epoch, []).append(int(batch["mask"].sum()))
            return (self.w * batch["labels"].sum()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    quiet = dict(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )
    make = lambda seed: TSSDataModule(
        genome,
        splits=SPLIT_CFG,
        n_streams=2,
        seg_len=64,
        lookahead=4,  # noqa: E731
        burn_in=40,
        seed=seed,
    )
    dm, model = make(1), Counter()
    pl.Trainer(max_epochs=3, enable_checkpointing=False, **quiet).fit(model, dm)
    assert [sum(model.seen[e]) for e in range(3)] == [EXPECTED_POSITIONS["train"] - 2 * 20] * 3  # see test_datamodule
    assert len({len(model.seen[e]) for e in range(3)}) == 1 and dm.streams("train").offset != 0

    dm, ckpt = make(None), ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=7, save_top_k=-1, filename="{step}")
    pl.Trainer(max_steps=10, callbacks=[ckpt], **quiet).fit(Counter(), dm)
    full = [int(b["mask"].sum()) for b in dm.streams("train")]
    resumed = Counter()
    pl.Trainer(
        max_epochs=1, callbacks=[ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=7, save_top_k=-1, filename="{step}")], **quiet
    ).fit(resumed, make(None), ckpt_path=str(tmp_path / "step=7.ckpt"))
    assert resumed.seen[0] == full[7:]
