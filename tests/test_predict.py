"""Whole-genome prediction → bigWig, peak calls and export on hand-made genomes with known answers."""

import json

import numpy as np
import pyBigWig
import pytest
import torch

from genometracks.formats.bigwig import read_bigwig
from genometracks.genome.sequence import Genome
from genometracks.inference.peaks import call_peaks, peak_records
from genometracks.inference.predict import _tss_tracks, predict_genome, write_tracks
from genometracks.model import TransformerXL
from genometracks.training.task import calibration_offset


def test_shift_moves_outputs_back_to_the_tss_on_both_strands():
    # one circular and one linear contig of length 10; output k on a strand-local index i
    g = Genome.from_sequences({"circ": "ACGTACGTAC", "lin": "ACGTACGTAC"}, circular=["circ"])
    out = {(c, s): np.arange(10, dtype=np.float32) + (100 if s == "-" else 0) for c in ("circ", "lin") for s in "+-"}
    probs, logits = _tss_tracks(g, out, shift=3)
    # '+': value at x = output at x+3 (wraps on the circular contig)
    assert logits.values["circ"]["+"].tolist() == [3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    # '-': strand-local j = output at j+3, then forward x = 9 - j
    assert logits.values["circ"]["-"].tolist() == [102, 101, 100, 109, 108, 107, 106, 105, 104, 103]
    # linear: the last 3 strand-local positions have no output → probability 0, no logit (NaN)
    assert probs.values["lin"]["+"][7:].tolist() == [0, 0, 0]
    assert probs.values["lin"]["-"][:3].tolist() == [0, 0, 0]
    assert np.isnan(logits.values["lin"]["+"][7:]).all() and np.isnan(logits.values["lin"]["-"][:3]).all()
    assert not np.isnan(logits.values["lin"]["+"][:7]).any() and not np.isnan(logits.values["circ"]["-"]).any()
    assert probs.values["lin"]["+"][0] == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert logits.values["lin"]["-"][3] == 109  # x=3 → j=6 → output 6+3=9 on the - strand


def test_calibration_offset_for_weighted_loss():
    assert calibration_offset({"loss": "weighted", "pos_weight": 50.0}) == pytest.approx(-np.log(50.0))
    assert calibration_offset({"loss": "ce"}) == 0.0


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    seqs = {name: "".join(rng.choice(list("ACGT"), n)) for name, n in (("c1", 700), ("c2", 333))}
    genome = Genome.from_sequences(seqs, circular=["c1"])
    model = TransformerXL(n_layer=2, n_head=2, d_model=8, d_head=4, window=16).eval()
    return genome, model


@pytest.mark.slow
def test_prediction_covers_every_base_and_does_not_depend_on_streams(tiny):
    genome, model = tiny
    a, _ = predict_genome(model, genome, shift=5, seg_len=64, n_streams=3, progress=False)
    b, _ = predict_genome(model, genome, shift=5, seg_len=29, n_streams=1, progress=False)
    for contig, c in genome.contigs.items():
        for strand in "+-":
            assert a.values[contig][strand].shape == (c.length,)
            np.testing.assert_allclose(a.values[contig][strand], b.values[contig][strand], atol=1e-5)


def test_prediction_equals_the_model_on_the_whole_linear_strand(tiny):
    genome, model = tiny
    probs, logits = predict_genome(model, genome, shift=5, seg_len=50, n_streams=2, progress=False)
    tokens = torch.as_tensor(genome.tokens("c2", "-").astype(np.int64))[None]
    padded = torch.cat([tokens, torch.full((1, model.lookahead), 4)], dim=1)
    with torch.inference_mode():
        direct, _ = model(padded, model.init_memory(1), torch.ones(1, dtype=torch.bool))
    direct = direct[0].numpy()
    # forward x on '-' is strand-local j = n-1-x and holds the output at j + shift
    n = 333
    x = np.arange(5, n)
    np.testing.assert_allclose(logits.values["c2"]["-"][x], direct[n - 1 - x + 5], atol=1e-5)


def test_bigwigs_read_back_the_predicted_values(tiny, tmp_path):
    genome, model = tiny
    probs, _ = predict_genome(model, genome, shift=5, seg_len=64, n_streams=2, progress=False)
    paths = write_tracks(probs, genome.chrom_sizes(), tmp_path)
    for strand in "+-":
        for contig in genome.contigs:
            np.testing.assert_array_equal(read_bigwig(paths[strand], contig), probs.values[contig][strand])


def test_call_peaks_local_maxima_threshold_and_distance():
    values = np.array([0, 0.6, 0.2, 0.9, 0.1, 0.1, 0.7, 0.7, 0.1, 0.3], dtype=np.float32)
    assert call_peaks(values, 0.5, 1).tolist() == [1, 3, 6]  # a plateau counts once (left middle)
    assert call_peaks(values, 0.5, 3).tolist() == [3, 6]  # 1 is within 3 nt of the higher 3
    assert call_peaks(values, 0.95, 1).tolist() == []
    edge = np.array([0.9, 0.1, 0.8], dtype=np.float32)
    assert call_peaks(edge, 0.5, 1).tolist() == [0, 2]


def test_circular_peaks_see_across_the_origin():
    values = np.full(100, 0.1, dtype=np.float32)
    values[99], values[0] = 0.9, 0.5  # a peak at the last base, its shoulder at the first
    assert call_peaks(values, 0.3, 1).tolist() == [0, 99]  # linear: the ends have no neighbour beyond
    assert call_peaks(values, 0.3, 1, circular=True).tolist() == [99]
    values[:] = 0.1
    values[2], values[97] = 0.6, 0.8  # 5 nt apart across the origin
    assert call_peaks(values, 0.3, 10).tolist() == [2, 97]
    assert call_peaks(values, 0.3, 10, circular=True).tolist() == [97]
    values[:] = 0.1
    values[[99, 0, 1]] = 0.7  # a plateau across the origin counts once, at its middle
    assert call_peaks(values, 0.3, 1, circular=True).tolist() == [0]
    # chains: 88 (1.0) removes 95 (0.5), so 95 cannot remove 2 (0.4)
    values[:] = 0.1
    values[[88, 95, 2]] = [1.0, 0.5, 0.4]
    assert call_peaks(values, 0.3, 8, circular=True).tolist() == [2, 88]
    # min_distance beyond half the circle: every two peaks are too close, the highest stays
    small = np.array([0.6, 0.1, 0.9, 0.1, 0.7, 0.1], dtype=np.float32)
    assert call_peaks(small, 0.3, 4, circular=True).tolist() == [2]
    assert call_peaks(small, 0.3, 3, circular=True).tolist() == [2]  # 0 and 4 are 2 nt from 2
    assert call_peaks(small, 0.3, 2, circular=True).tolist() == [0, 2, 4]  # 2 nt apart every way round
    # equal heights across the origin: the copies of the circle decided alike (3 and 9, 4 apart, were kept)
    ties = np.array([0, 1, 0, 1, 0, 0, 0, 1, 0, 1.0])
    assert call_peaks(ties, 0.5, 5, circular=True).tolist() == [1]
    tied = np.random.default_rng(1).integers(0, 3, size=(2000, 30)).astype(np.float64)
    for row in tied:
        kept = call_peaks(row, 0.5, 6, circular=True)
        gaps = np.diff(np.concatenate([kept, kept[:1] + 30])) if kept.size > 1 else np.array([30])
        assert gaps.min() >= 6, (row.tolist(), kept.tolist())
    # a circle's peaks turn with it
    rng = np.random.default_rng(0)
    track = rng.random(500).astype(np.float32)
    expected = call_peaks(track, 0.5, 7, circular=True)
    for turn in (1, 250, 499):
        got = call_peaks(np.roll(track, turn), 0.5, 7, circular=True)
        assert got.tolist() == sorted(((expected + turn) % 500).tolist())


@pytest.mark.parametrize("circular", [False, True])
def test_ties_are_called_as_mirror_images_on_the_two_strands(circular):
    # a '+' track and its mirror image on '-' (a genome and its reverse complement) must give mirrored
    # calls: an even plateau's base 5'-ward of its middle, and of equal maxima within min_distance the
    # 5'-most on the strand (scipy alone takes the forward-left base and breaks equal heights by an
    # unstable sort: 42 of 48 calls of a palindromic genome had no mirror before)
    n = 40
    cases = []
    v = np.full(n, 0.1)
    v[[8, 9]] = 0.9  # a 2-nt plateau
    cases.append((v, 1, [8], [9]))
    v = np.full(n, 0.1)
    v[[6, 10]] = 0.9  # equal maxima 4 nt apart
    cases.append((v, 10, [6], [10]))
    v = np.full(n, 0.1)
    v[[6, 7, 8, 9]] = 0.9  # even plateau of 4: the 5'-ward of its two middle bases
    cases.append((v, 1, [7], [8]))
    for track, distance, plus, minus in cases:
        assert call_peaks(track, 0.5, distance, circular, "+").tolist() == plus
        assert call_peaks(track, 0.5, distance, circular, "-").tolist() == minus
    # many tied pairs (scipy's unstable sort broke them either way): every '-' call mirrors a '+' call
    rng = np.random.default_rng(0)
    track = np.full(5000, 0.1)
    starts = np.arange(20, 4900, 90)
    track[starts] = track[starts + rng.integers(2, 8, starts.size)] = 0.8
    plus = call_peaks(track, 0.5, 10, circular, "+")
    minus = call_peaks(track[::-1].copy(), 0.5, 10, circular, "-")
    assert plus.size == starts.size and np.array_equal(plus, starts)  # the 5'-most of each pair on '+'
    assert np.array_equal(np.sort(track.size - 1 - minus), plus)
    # distinct heights are untouched by the tie rule: the higher wins on both strands
    track[starts + 1] = 0.85
    assert np.array_equal(call_peaks(track, 0.5, 10, circular, "+"), starts + 1)
    assert np.array_equal(call_peaks(track, 0.5, 10, circular, "-"), starts + 1)


def test_peak_records_call_a_palindrome_as_mirror_images():
    # a palindromic genome's '-' track is the mirror image of its '+' track: so are its calls
    rng = np.random.default_rng(1)
    plus = np.round(rng.random(3000), 1)  # coarse values: many ties
    tracks = {"+": {"c": plus}, "-": {"c": plus[::-1].copy()}}
    records = peak_records(tracks, 0.5, 10, ["c"])
    forward = sorted(r[1] for r in records if r[5] == "+")
    reverse = sorted(2999 - r[1] for r in records if r[5] == "-")
    assert forward == reverse and len(forward) > 100


def test_peak_records_are_sorted_bed6_with_scaled_scores():
    track = {
        "+": {"a": np.array([0, 0.8, 0, 0], np.float32), "b": np.zeros(3, np.float32)},
        "-": {"a": np.array([0, 0, 0.55, 0], np.float32), "b": np.array([0.6, 0, 0], np.float32)},
    }
    records = peak_records(track, 0.5, 1, ["a", "b"])
    assert records == [("a", 1, 2, "TSS_2+", 800, "+"), ("a", 2, 3, "TSS_3-", 550, "-"), ("b", 0, 1, "TSS_1-", 600, "-")]


def test_peak_threshold_auto_reads_the_validation_f1_threshold(tmp_path):
    import json

    from genometracks.inference.peaks import peak_threshold

    assert peak_threshold(0.3, tmp_path) == (0.3, "configured")
    assert peak_threshold("auto", tmp_path)[0] == 0.5  # no metrics.json yet
    (tmp_path / "metrics.json").write_text(json.dumps({"validation": {"both": {"threshold_f1": 0.0731}}}))
    assert peak_threshold("auto", tmp_path) == (0.0731, "validation F1-optimal (metrics.json)")
    (tmp_path / "metrics.json").write_text(json.dumps({"validation": {"both": {"threshold_f1": None}}}))
    assert peak_threshold("auto", tmp_path) == (0.5, "0.5 (no validation threshold in metrics.json)")
    # tracks written by a checkpoint from elsewhere that has no threshold: not DIR/metrics.json's (another model's)
    (tmp_path / "metrics.json").write_text(json.dumps({"validation": {"both": {"threshold_f1": 0.0731}}}))
    (tmp_path / "tracks").mkdir()
    (tmp_path / "tracks" / "predict.json").write_text(json.dumps({"model": {"threshold": None, "source": "checkpoint /x/best.ckpt"}}))
    assert peak_threshold("auto", tmp_path) == (0.5, "0.5 (checkpoint /x/best.ckpt, which wrote the tracks, has no validation threshold)")


def test_peaks_command_calls_the_contigs_predict_recorded_as_circular(tmp_path):
    import json

    from omegaconf import OmegaConf

    from genometracks.inference.peaks import peaks_command

    tracks = {s: {"circ": np.full(50, 0.1, np.float32), "lin": np.full(50, 0.1, np.float32)} for s in "+-"}
    for name in ("circ", "lin"):
        tracks["+"][name][[49, 0]] = [0.9, 0.5]  # a peak at the last base, its shoulder at base 0
    from genometracks.formats.bigwig import write_bigwig

    run = tmp_path / "run"
    for strand, word in (("+", "plus"), ("-", "minus")):
        write_bigwig(run / "tracks" / f"tss.{word}.bw", {"circ": 50, "lin": 50}, tracks[strand])
    (run / "tracks" / "predict.json").write_text(json.dumps({"circular": ["circ"]}))
    cfg = OmegaConf.create({"run_dir": str(run), "data": {"circular": []}, "predict": {"peaks": {"threshold": 0.3, "min_distance": 1}}})
    summary = peaks_command(cfg)
    bed = [line.split("\t")[:6] for line in (run / "tracks" / "tss_peaks.bed").read_text().splitlines()]
    assert summary["circular"] == ["circ"]
    assert [(c, int(a), st) for c, a, _, _, _, st in bed if st == "+"] == [("circ", 49, "+"), ("lin", 0, "+"), ("lin", 49, "+")]
    assert (run / "tracks" / "tss_peaks.bb").is_file() and (run / "tracks" / "tss_peaks.bed.gz.tbi").is_file()
    # called again above every value: no calls, and no earlier bigBed or tabix file left for the hub and IGV
    cfg.predict.peaks.threshold = 0.95
    assert peaks_command(cfg)["peaks"] == 0
    assert sorted(p.name for p in (run / "tracks").glob("tss_peaks*")) == ["tss_peaks.bed"]
    assert (run / "tracks" / "tss_peaks.bed").read_text() == ""


def test_a_logit_track_leaves_bases_without_output_out_of_the_bigwig(tmp_path):
    import pyBigWig

    g = Genome.from_sequences({"lin": "ACGTACGTAC"})
    out = {("lin", s): np.arange(10, dtype=np.float32) - 5 for s in "+-"}
    _, logits = _tss_tracks(g, out, shift=3)
    paths = write_tracks(logits, g.chrom_sizes(), tmp_path, "tss.logit", gaps=True)
    plus = read_bigwig(paths["+"], "lin")
    np.testing.assert_array_equal(plus[:7], np.arange(3, 10) - 5)  # a logit of 0 (p = 0.5) stays a value
    assert np.isnan(plus[7:]).all()
    with pyBigWig.open(str(paths["+"])) as bw:
        assert bw.intervals("lin") == tuple((i, i + 1, float(i + 3 - 5)) for i in range(7))
    minus = read_bigwig(paths["-"], "lin")
    assert np.isnan(minus[:3]).all() and not np.isnan(minus[3:]).any()
    with pytest.raises(Exception, match="must be finite"):  # the probability tracks keep every base
        write_tracks(logits, g.chrom_sizes(), tmp_path / "p", "tss")


@pytest.mark.parametrize(
    "setting, message",
    [
        ("predict.peaks.threshold=abc", "predict.peaks.threshold=abc: give a probability between 0 and 1"),
        ("predict.peaks.threshold=2", "predict.peaks.threshold=2"),
        ("predict.peaks.threshold=-1", "predict.peaks.threshold=-1"),
        ("predict.peaks.min_distance=-5", "predict.peaks.min_distance=-5: give a whole number of nt, at least 1"),
    ],
)
def test_bad_peak_settings_are_refused_before_any_work(tmp_path, setting, message):
    from genometracks.inference.peaks import PeaksError, peaks_command
    from genometracks.inference.predict import predict_command
    from tests.conftest import compose

    cfg = compose("data=custom", f"data.fasta={tmp_path}/absent.fa", f"run_dir={tmp_path}/run", setting)
    for command in (predict_command, peaks_command):  # predict checks them before predicting (no FASTA read)
        with pytest.raises(PeaksError, match=message):
            command(cfg)


def test_peaks_without_tracks_is_one_line_naming_the_missing_file(tmp_path):
    from genometracks.inference.peaks import PeaksError, peaks_command
    from tests.conftest import compose

    with pytest.raises(PeaksError, match=r"tracks/tss.plus.bw: not found; write the tracks first with `genometracks predict"):
        peaks_command(compose(f"run_dir={tmp_path}/run"))


def test_predict_without_a_model_names_the_ways_to_get_one(tmp_path):
    from genometracks.inference.shipped import ShippedModelError, resolve_model
    from tests.conftest import compose

    with pytest.raises(
        ShippedModelError, match=r"no model trained in this run directory; predict with a shipped model \(model=ecoli_k12, or one of \["
    ):
        resolve_model(compose(f"run_dir={tmp_path}"), tmp_path)


def test_any_shipped_model_by_name_or_folder_through_model_shipped(tmp_path):
    from genometracks.inference.ship import use_model
    from genometracks.inference.shipped import MODELS_DIR, resolve_model
    from tests.conftest import compose

    by_name = resolve_model(compose("model=shipped", "model.shipped=ecoli_k12", f"run_dir={tmp_path}"), tmp_path)
    by_folder = resolve_model(compose("model=shipped", f"model.shipped={MODELS_DIR / 'ecoli_k12'}", f"run_dir={tmp_path}"), tmp_path)
    named = resolve_model(compose("model=ecoli_k12", f"run_dir={tmp_path}"), tmp_path)
    # a relative folder: './mine' and 'mine/' were looked up as genometracks/models/mine
    import os
    import shutil

    shutil.copytree(MODELS_DIR / "ecoli_k12", tmp_path / "mine")
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        relative = [
            resolve_model(compose("model=shipped", f"model.shipped={spec}", f"run_dir={tmp_path}"), tmp_path)
            for spec in ("./mine", "mine/")
        ]
    finally:
        os.chdir(here)
    for source in (by_name, by_folder, *relative):
        assert source.card == named.card and source.logit_offset == named.logit_offset
    # what a card's "Use" line says: the named config where there is one, else model=shipped
    assert use_model("ecoli_k12") == "model=ecoli_k12"
    assert use_model("my_model") == "model=shipped model.shipped=my_model"


@pytest.mark.slow
def test_a_predict_run_directory_remembers_its_genome_and_model(tmp_path):
    from genometracks.data.dataset import ConfigError
    from genometracks.inference.predict import predict_command
    from tests.conftest import compose

    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        (tmp_path / f"{name}.fa").write_text(f">{name}\n" + "".join(rng.choice(list("ACGT"), 3000)) + "\n")
    run = f"run_dir={tmp_path}/run"
    predict_command(compose("model=ecoli_k12", "data=custom", f"data.fasta={tmp_path}/a.fa", run))
    assert (tmp_path / "run" / "config.yaml").is_file()
    with pytest.raises(ConfigError, match="data.fasta was"):  # another genome into the same tracks: refused
        predict_command(compose("model=ecoli_k12", "data=custom", f"data.fasta={tmp_path}/b.fa", run))
    with pytest.raises(ConfigError, match="add model=ecoli_k12"):
        predict_command(compose("model=ecoli_k12_regulondb", "data=custom", f"data.fasta={tmp_path}/a.fa", run))


def test_a_shipped_model_refuses_another_label_shift(tmp_path):
    from genometracks.inference.shipped import ShippedModelError, resolve_model
    from tests.conftest import compose

    assert resolve_model(compose("model=ecoli_k12", "data.shift=20", f"run_dir={tmp_path}"), tmp_path).card["task"]["shift"] == 20
    with pytest.raises(ShippedModelError, match=r"data.shift=100000, but the shipped model ecoli_k12 \(.*\) was trained with shift 20"):
        resolve_model(compose("model=ecoli_k12", "data.shift=100000", f"run_dir={tmp_path}"), tmp_path)


def test_a_shipped_model_brings_its_own_label_shift(tmp_path):
    # a model shipped with shift 30 predicts with 30 when the user gave no data.shift (the data
    # config's 20 is not the user's choice); a data.shift= on the command line that disagrees is refused
    import shutil

    from genometracks.inference.shipped import MODELS_DIR
    from tests.conftest import cli

    folder = tmp_path / "m30"
    shutil.copytree(MODELS_DIR / "ecoli_k12", folder)
    card = json.loads((folder / "card.json").read_text())
    card["task"]["shift"] = 30
    (folder / "card.json").write_text(json.dumps(card))
    rng = np.random.default_rng(3)
    (tmp_path / "g.fa").write_text(">c\n" + "".join(rng.choice(list("ACGT"), 3000)) + "\n")
    base = ["predict", "model=shipped", f"model.shipped={folder}", "data=custom", f"data.fasta={tmp_path / 'g.fa'}"]
    done = cli(*base, f"run_dir={tmp_path / 'a'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "a" / "tracks" / "predict.json").read_text())["shift"] == 30
    with pyBigWig.open(str(tmp_path / "a" / "tracks" / "tss.plus.bw")) as bw:  # a linear contig's last 30 nt on '+': no output
        plus = np.array(bw.values("c", 0, 3000))
    assert (plus[-30:] == 0).all() and (plus[-40:-30] > 0).all()
    refused = cli(*base, "data.shift=20", f"run_dir={tmp_path / 'b'}")
    assert (
        refused.returncode == 2 and "data.shift=20, but the shipped model" in refused.stderr and "trained with shift 30" in refused.stderr
    )


def _tiny_checkpoint(path, hyper: dict):
    """A checkpoint in `genometracks train`'s layout: a 1-layer model, the given hyper-parameters."""
    path.parent.mkdir(parents=True, exist_ok=True)
    config = dict(n_layer=1, n_head=2, d_model=16, d_head=8, conv_width=7, window=32)
    torch.manual_seed(0)
    model = TransformerXL(**config)
    state = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
    torch.save(state | {"hyper_parameters": {"model_config": dict(config, seg_len=64), **hyper}}, path)
    return path


def test_a_checkpoint_brings_its_own_label_shift_into_another_run_directory(tmp_path):
    # a model trained with data.shift=30 answers 'TSS at i - 30?': predicting with it elsewhere must
    # place its outputs with 30, not the data config's 20 (every call would move 10 nt downstream)
    from genometracks.inference.shipped import ShippedModelError, resolve_model
    from tests.conftest import compose

    ckpt = _tiny_checkpoint(tmp_path / "trained" / "checkpoints" / "best.ckpt", {"shift": 30})
    cfg = compose(f"ckpt={ckpt}", f"run_dir={tmp_path / 'other'}")
    assert cfg.data.shift == 20
    source = resolve_model(cfg, tmp_path / "other")
    assert (source.shift, source.shift_source, cfg.data.shift) == (30, "its hyper-parameters", 30)
    with pytest.raises(
        ShippedModelError, match=r"data.shift=25, but the checkpoint .*best.ckpt was trained with shift 30 \(read from its hyper-parameters"
    ):
        resolve_model(compose(f"ckpt={ckpt}", "data.shift=25", f"run_dir={tmp_path / 'other'}"), tmp_path / "other")
    # a checkpoint from before the shift was recorded: its run's config.yaml says it
    old = _tiny_checkpoint(tmp_path / "old" / "checkpoints" / "best.ckpt", {})
    (tmp_path / "old" / "config.yaml").write_text("data:\n  shift: 25\n")
    cfg = compose(f"ckpt={old}", f"run_dir={tmp_path / 'other'}")
    assert (resolve_model(cfg, tmp_path / "other").shift_source, cfg.data.shift) == (str(tmp_path / "old" / "config.yaml"), 25)
    # nothing known: the configuration's shift stays
    (tmp_path / "old" / "config.yaml").unlink()
    cfg = compose(f"ckpt={old}", f"run_dir={tmp_path / 'other'}")
    assert (resolve_model(cfg, tmp_path / "other").shift, cfg.data.shift) == (None, 20)


def test_predict_with_a_checkpoint_places_tracks_with_its_shift(tmp_path):
    # end to end: the same checkpoint predicted in its own run (shift 30 typed) and from another run
    # directory (no shift given) writes identical tracks, and predict.json records 30
    from genometracks.inference.predict import predict_command
    from tests.conftest import compose

    ckpt = _tiny_checkpoint(tmp_path / "trained" / "checkpoints" / "best.ckpt", {"shift": 30})
    rng = np.random.default_rng(5)
    (tmp_path / "g.fa").write_text(">c\n" + "".join(rng.choice(list("ACGT"), 2000)) + "\n")
    common = ("data=custom", f"data.fasta={tmp_path / 'g.fa'}", f"ckpt={ckpt}", "predict.peaks.threshold=0.5")
    predict_command(compose(*common, "data.shift=30", f"run_dir={tmp_path / 'a'}"))
    predict_command(compose(*common, f"run_dir={tmp_path / 'b'}"))
    for run in ("a", "b"):
        assert json.loads((tmp_path / run / "tracks" / "predict.json").read_text())["shift"] == 30
    for strand in ("plus", "minus"):
        a, b = (read_bigwig(tmp_path / run / "tracks" / f"tss.{strand}.bw", "c") for run in ("a", "b"))
        np.testing.assert_array_equal(a, b)


def test_a_shipped_model_and_a_checkpoint_together_are_refused(tmp_path):
    from genometracks.inference.shipped import ShippedModelError, resolve_model
    from tests.conftest import compose

    with pytest.raises(ShippedModelError, match=r"model=ecoli_k12 and ckpt=.*best.ckpt both name the model to use"):
        resolve_model(compose("model=ecoli_k12", f"ckpt={tmp_path}/best.ckpt", f"run_dir={tmp_path}"), tmp_path)
    # the main job refuses them before its first stage (it ran data and train, then stopped at predict)
    from genometracks.pipeline import run_pipeline

    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"model=ecoli_k12 and ckpt=.*best.ckpt both name the model to use"):
        run_pipeline(compose("model=ecoli_k12", f"ckpt={tmp_path}/best.ckpt", f"run_dir={run}"))
    assert not run.exists()
