"""`interpret_command` end to end on a tiny model trained on a planted-promoter genome whose boxes
are not sigma70's (-35 TTGCGA, -10 TAGCAT): heads find the boxes at the right offsets, every
output reads back with a real reader, the motif-hit bigBed validates in a hub."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import open_dict

from tests.conftest import compose
from tests.conftest_interpret import MINUS10, MINUS35
from tests.kent import assert_hub_clean, kent, needs_kent

slow = pytest.mark.slow  # trains the session's tiny model (about a minute on 2 free cores)


@pytest.fixture(scope="module")
def run(trained_smoke, tmp_path_factory):
    from tests.conftest_interpret import predict_and_interpret

    ckpt, overrides = trained_smoke
    out = tmp_path_factory.mktemp("interpret_run")
    cfg = compose(*overrides, f"run_dir={out}", f"ckpt={ckpt}")
    with open_dict(cfg):
        cfg.interpret.progress = False
        cfg.interpret.attribution_top = 60
        cfg.interpret.deeplift_top = 30  # DeepLIFT/SHAP and MoDISco have their own test (test_interpret_deeplift.py)
    return out, cfg, predict_and_interpret(cfg)


def _planted(cfg):
    from genometracks.labels.synthetic import SyntheticSpec, make_synthetic

    spec = dict(cfg.data.generator)
    spec["spacer"] = tuple(spec["spacer"])
    return make_synthetic(SyntheticSpec(**spec))[2]


@slow
def test_heads_find_the_planted_boxes_at_their_offsets(run):
    # The hand-written matcher this replaces (column-wise Pearson r, column-shuffle p) gave the same best
    # match for the same heads: a head within 3 nt of -10 matching planted_-10 and one within 4 nt of -35
    # matching planted_-35, forward orientation. Tomtom must agree, with q < 0.01 (BH over the informative
    # heads x 2 planted matrices; Tomtom's null from 2 references only, noted in interpret.json).
    out, cfg, summary = run
    heads = pd.read_csv(out / "interpret" / "heads.tsv", sep="\t")
    assert len(heads) == 6 and (heads["offset_from_tss"] == cfg.data.shift - heads["offset"]).all()
    forward = heads["match_orientation"].eq("+") & heads["match_q_value"].lt(0.01)
    m10 = heads[forward & heads["best_match"].eq("planted_-10") & (heads["offset_from_tss"] - -10).abs().le(3)]
    m35 = heads[forward & heads["best_match"].eq("planted_-35") & (heads["offset_from_tss"] - -35).abs().le(4)]
    assert len(m10) >= 1, heads.to_string()
    assert len(m35) >= 1, heads.to_string()
    for found, box in ((m10, MINUS10), (m35, MINUS35)):  # the consensus reads 4+ letters of the box
        assert any(box[k : k + 4] in consensus for consensus in found["consensus"] for k in range(len(box) - 3))
    np.testing.assert_allclose(heads["match_e_value"], heads["match_p_value"] * 2, rtol=1e-5)  # E = p x 2 refs
    # the bootstrap of each head's pool (interpret.motif_bootstrap, 200 rounds): the planted boxes' matches
    # are called in most rounds; heads outside the q-value family get no support
    assert summary["heads"]["motif_bootstrap"] == 200
    assert heads.loc[m10.index, "match_support"].max() >= 0.8 and heads.loc[m35.index, "match_support"].max() >= 0.8
    assert heads.loc[~heads["informative"], "match_support"].isna().all()
    assert (heads["information_low"] <= heads["information_high"]).all() and heads["match_p_95"].between(0, 1).all()
    assert summary["heads"]["references"] == "planted synthetic boxes"
    assert "2 reference motifs" in summary["heads"]["tomtom_note"]
    pairs = pd.read_csv(out / "interpret" / "heads_tomtom.tsv", sep="\t")  # every head x reference
    assert len(pairs) == 12 and set(pairs["reference"]) == {"planted_-35", "planted_-10"}
    from genometracks.interpret.fdr import bh_qvalues

    informative = pairs["query"].map(heads.set_index("head_id")["informative"]).to_numpy(bool)
    assert 0 < informative.sum() < len(pairs)  # the planted heads are informative, some others are not
    family = np.where(informative, pairs["p_value"].to_numpy(), np.nan)  # uninformative heads: no q-value
    np.testing.assert_allclose(pairs["q_value"], bh_qvalues(family), rtol=1e-5)


@slow
def test_attention_table_is_a_distribution_per_query(run):
    out, cfg, _ = run
    table = pd.read_csv(out / "interpret" / "heads_attention.tsv", sep="\t")
    assert len(table) == 6 * 64
    assert (table["offset_from_tss"] == cfg.data.shift - table["offset"]).all()
    sums = table.groupby(["layer", "head"])["mean"].sum()  # each sampled query's weights sum to 1
    assert np.allclose(sums, 1.0, atol=0.02)
    assert (table["max"] >= table["mean"]).all() and table["spearman"].abs().max() <= 1
    corr = pd.read_csv(out / "interpret" / "heads_correlation.tsv", sep="\t", index_col=0)
    assert corr.shape == (6, 6) and np.allclose(np.diag(corr), 1) and np.allclose(corr, corr.T)


@slow
def test_meme_files_read_back(run):
    from genometracks.interpret.motifs import read_meme

    out, _, _ = run
    heads = pd.read_csv(out / "interpret" / "heads.tsv", sep="\t")
    motifs = read_meme(out / "motifs" / "heads.meme")
    assert [m.name for m in motifs] == heads["head_id"].tolist()
    assert [m.consensus() for m in motifs] == heads["consensus"].tolist()
    assert all(m.width == 7 and m.nsites == 50 for m in motifs)
    kernels = read_meme(out / "motifs" / "first_block_kernels.meme")
    assert len(kernels) == 3 * 6 * 8 and kernels[0].name == "q_H0_C0" and kernels[-1].name == "v_H5_C7"


@slow
def test_first_block_kernel_pwm_is_the_softmax_of_the_model_kernel(run):
    from genometracks.interpret.motifs import read_meme
    from genometracks.training.checkpoint import load_model

    out, cfg, _ = run
    model, _, _ = load_model(cfg.ckpt)
    kernel = model.first_block_kernels()["k"][8 + 3].double().numpy()  # head 1, channel 3
    expected = np.exp(kernel.T) / np.exp(kernel.T).sum(axis=1, keepdims=True)
    motif = {m.name: m for m in read_meme(out / "motifs" / "first_block_kernels.meme")}["k_H1_C3"]
    assert np.allclose(motif.probabilities, expected, atol=2e-6)


@slow
def test_pngs_are_real_images_with_their_panels(run):
    from PIL import Image

    out, _, summary = run
    expect = {
        "plots/heads_heatmap.png": ["layer 0"],
        "plots/heads_correlation.png": ["correlation"],
        "logos/L0H0.png": ["L0H0 at", "bootstrap", "bits"],
        "plots/heads_stability.png": ["200 bootstrap rounds"],
        "logos/class_optimised.png": ["class optimisation"],
        "logos/first_block_kernels.png": ["bits"],
        "logos/attribution.png": ["gradient x input"],
        "plots/metaplots.png": ["TSS (n = "],
    }
    for name, words in expect.items():
        image = Image.open(out / name)
        assert image.format == "PNG" and min(image.size) >= 150, name
        pixels = np.asarray(image.convert("L"), dtype=float)
        assert pixels.std() > 10, f"{name} looks blank"
        assert all(w in image.text["Title"] for w in words), (name, image.text["Title"])
    assert len(Image.open(out / "logos/first_block_kernels.png").text["Title"].split(", ")) == 16
    assert all((out / f).exists() for f in summary["files"])


HIT_COLUMNS = [
    "chrom",
    "start",
    "end",
    "name",
    "score",
    "strand",
    "thickStart",
    "thickEnd",
    "itemRgb",
    "head",
    "matchedMotif",
    "tss",
    "tssOffset",
    "pValue",
    "qValue",
    "windowPValue",
    "logOdds",
]


@slow
@needs_kent
def test_motif_hits_sit_exactly_on_planted_boxes_read_back_with_kent_and_validate_in_the_hub(run, tmp_path):
    import gzip

    from genometracks.browser.export import export_run
    from genometracks.data.dataset import open_genome
    from genometracks.interpret.hit_track import HEAD_COLOURS, strength_rgb

    out, cfg, summary = run
    heads = pd.read_csv(out / "interpret" / "heads.tsv", sep="\t")
    result = kent("bigBedToBed", out / "tracks" / "motif_hits.bb", tmp_path / "hits.bed")  # UCSC's own reader
    assert result.returncode == 0, result.stderr
    with gzip.open(out / "tracks" / "motif_hits.bed.gz", "rt") as handle:
        assert (tmp_path / "hits.bed").read_text() == handle.read()
    hits = pd.read_csv(tmp_path / "hits.bed", sep="\t", header=None, names=HIT_COLUMNS)
    info = summary["heads"]["motif_hits"]
    calls = pd.read_csv(
        out / "tracks" / "tss_peaks.bed", sep="\t", header=None, usecols=[0, 1, 3, 5], names=["chrom", "pos", "tss", "strand"]
    )
    assert info["calls"] == len(calls) and info["calls_from"] == "tracks/tss_peaks.bed" and info["q_threshold"] == 0.05
    assert info["at_random_positions"] <= 0.02 * info["records"]  # the same scan at random positions keeps ~nothing
    informative = heads[heads["informative"]].set_index("head_id")
    assert len(hits) == info["records"] > 0 and 0.98 * len(calls) * len(informative) <= info["tests"] <= len(calls) * len(informative)
    assert set(hits["head"]) <= set(informative.index)
    assert (hits["qValue"] <= 0.05).all() and (hits["pValue"] >= hits["windowPValue"]).all() and (hits["qValue"] >= hits["pValue"]).all()
    assert hits["score"].between(0, 1000).all() and (hits["name"] == hits["head"] + "_" + hits["matchedMotif"]).all()
    assert (hits["end"] - hits["start"] == 7).all() and (hits["thickStart"] == hits["start"]).all()
    # each hit is the word of one call, on its strand, centred within hit_slack of the head's offset from it
    hit_calls = hits.merge(calls, on=["chrom", "tss"], suffixes=("", "_call"), validate="many_to_one")
    assert len(hit_calls) == len(hits) and (hit_calls["strand"] == hit_calls["strand_call"]).all()
    centre = np.where(hit_calls["strand"] == "+", hit_calls["start"] + 3 - hit_calls["pos"], hit_calls["pos"] - (hit_calls["start"] + 3))
    assert (centre == hit_calls["tssOffset"]).all()
    slack = cfg.interpret.hit_slack
    assert (hit_calls["tssOffset"] - informative.loc[hit_calls["head"], "offset_from_tss"].to_numpy()).abs().le(slack).all()
    for head, mine in hits.groupby("head"):  # one colour per head, paler for weaker matches
        colour = HEAD_COLOURS[informative.index.tolist().index(head) % len(HEAD_COLOURS)]
        assert (mine["itemRgb"] == strength_rgb(np.tile(colour, (len(mine), 1)), mine["score"])).all()
    boxes = pd.DataFrame(_planted(cfg))
    for box, label in (("minus10", "planted_-10"), ("minus35", "planted_-35")):
        right = heads[heads["best_match"].eq(label) & heads["match_q_value"].lt(0.01) & heads["informative"]]
        assert len(right) >= 1, heads.to_string()
        for head in right.itertuples():
            # the head's 7-mer sits `match_offset` columns before the 6-nt box on the box's own strand:
            # 0-based forward start b + offset on '+', b + 6 - offset - 7 on '-'
            assert head.match_orientation == "+"
            b, strand = boxes[f"{box}_start"].to_numpy(), boxes["strand"].to_numpy()
            expected = set(zip(boxes["chrom"], np.where(strand == "+", b + head.match_offset, b + 6 - head.match_offset - 7), strand))
            mine = hits[hits["head"] == head.head_id]
            on_box = np.array([k in expected for k in zip(mine["chrom"], mine["start"], mine["strand"])])
            assert (mine["matchedMotif"] == label).all() and set(mine["strand"]) == {"+", "-"}
            # measured: L0H0 960 of its 971 words on a -10 box, L0H4 960 of 966 on a -35 box: every one of
            # the 960 boxes (the genome-wide scan before found 262 and 236)
            assert on_box.mean() > 0.95 and on_box.sum() > 0.9 * len(boxes), (head.head_id, on_box.mean(), on_box.sum())
    genome, fasta, _ = open_genome(cfg)
    written = export_run(out, fasta, genome.chrom_sizes(), cfg.export, "synthetic")
    assert_hub_clean(out / written["hub"].rsplit("/", 1)[0])
    trackdb = "".join(p.read_text() for p in (out / "hub").rglob("trackDb.txt"))
    assert "bigDataUrl motif_hits.bb" in trackdb and "type bigBed 9 +\n" in trackdb and "itemRgb on" in trackdb
    page = next((out / "hub").rglob("motif_hits.html")).read_text()
    assert "FIMO" in page and "qValue" in page and "tssOffset" in page
    # the page states the scan's background: the calls' promoter composition (uniform until session 19)
    background = summary["heads"]["motif_hits"]["background"]
    assert len(set(background.values())) > 1 and "uniform background" not in page and "--bgfile" in page
    assert "match_support" in page  # and where each head's bootstrap support is
    assert "motif_hits.bb" in (out / written["igv"]).read_text()


@slow
def test_class_optimisation_and_attribution_point_at_the_boxes(run):
    from genometracks.interpret.command import settings
    from genometracks.interpret.motifs import read_meme

    out, cfg, summary = run
    (motif,) = read_meme(out / "motifs" / "class_optimised.meme")
    rel = np.arange(motif.width) - (settings(cfg)["optimise_length"] - 1 - cfg.data.shift)
    box = "".join("ACGT"[i] for i in motif.probabilities[(rel >= -12) & (rel <= -7)].argmax(axis=1))
    assert sum(a == b for a, b in zip(box, MINUS10)) >= 5, box
    assert summary["optimise"]["probability"] > 0.9
    profile = pd.read_csv(out / "interpret" / "attribution_profile.tsv", sep="\t")
    top = profile.loc[profile["mean_contribution"].abs().nlargest(6).index, "position"]
    assert ((top.between(-13, -6)) | (top.between(-38, -29))).mean() >= 0.5, profile.to_string()
    from genometracks.formats.bigwig import read_bigwig

    for word in ("plus", "minus"):  # one track per strand: divergent promoters' contributions never cancel
        values = read_bigwig(out / "tracks" / f"attribution.{word}.bw", "syn1")
        assert values.size == 60000 and np.isfinite(values).all() and (values != 0).any() and (values < 0).any()
    assert not (out / "tracks" / "attribution.bw").exists()  # the summed track of earlier versions
    assert not (out / "tracks" / "gradcam.bw").exists()  # Grad-CAM was dropped (README, Interpretation)


@slow
def test_metaplots_peak_at_the_tss_and_note_missing_sets(run):
    out, _, summary = run
    table = pd.read_csv(out / "interpret" / "metaplots.tsv", sep="\t")
    assert set(table["set"]) == {"TSS"} and table["position"].min() == -600 and table["position"].max() == 600
    tss = table.set_index("position")
    assert tss.loc[0, "sense_median"] > 10 * tss.loc[[-600, -300, 300, 600], "sense_median"].max()
    notes = summary["metaplots"]["skipped"]
    assert set(notes) == {"TTS", "pseudogene"} and "skipped" in summary["metaplots"]["coding_medians"]
    saved = json.loads((out / "interpret.json").read_text())
    assert saved["metaplots"]["skipped"] == notes and saved["shift"] == 20


@slow
def test_each_part_records_its_wall_time_and_the_peak_memory_so_far(run):
    out, cfg, summary = run
    costs = json.loads((out / "interpret.json").read_text())["costs"]
    ran = ["heads", "promoters", "kernels", "optimise", "tracks", "attribution", "deeplift", "metaplots"]
    assert list(costs) == [p for p in ran if p in costs] and set(costs) == set(ran) & (set(cfg.interpret.parts or ran) | {"tracks"})
    # the planted genome's reference motifs are its own boxes, not DPInteract's σ70 windows: no promoter scan
    saved = json.loads((out / "interpret.json").read_text())
    assert saved["promoters"]["note"].startswith("no rpoD15-19") and not (out / "tracks" / "sigma70_boxes.bb").exists()
    peaks = [costs[p]["peak_rss_mib"] for p in costs]
    assert all(costs[p]["seconds"] >= 0 for p in costs) and peaks == sorted(peaks) and peaks[0] > 50  # ru_maxrss only grows
    deeplift = summary["deeplift"]
    assert 50 < deeplift["peak_rss_mib"] <= costs["deeplift"]["peak_rss_mib"]  # DeepLIFT/SHAP's, before MoDISco


@slow
def test_rerunning_one_part_keeps_the_record_of_the_others(run, tmp_path):
    import shutil

    from omegaconf import OmegaConf

    from genometracks.interpret.command import interpret_command

    out, cfg, _ = run
    again = tmp_path / "again"
    shutil.copytree(out, again)
    before = json.loads((again / "interpret.json").read_text())
    cfg = OmegaConf.merge(cfg, {"run_dir": str(again), "interpret": {"parts": ["kernels"]}})
    interpret_command(cfg)
    after = json.loads((again / "interpret.json").read_text())
    assert list(after) == list(before) and after["files"] == before["files"]  # every part, in order; the same files
    for name in ("heads", "optimise", "attribution", "deeplift", "metaplots"):
        assert after[name] == before[name] and after["costs"][name] == before["costs"][name]
    assert after["kernels"] == before["kernels"] and list(after["costs"]) == list(before["costs"])  # the same kernels again
    # the heads again without the bootstrap: no stale stability plot, no support in heads.tsv or the record
    assert (again / "plots" / "heads_stability.png").is_file()
    interpret_command(OmegaConf.merge(cfg, {"interpret": {"parts": ["heads"], "motif_bootstrap": 0}}))
    heads = pd.read_csv(again / "interpret" / "heads.tsv", sep="\t")
    assert not (again / "plots" / "heads_stability.png").exists() and heads["match_support"].isna().all()
    saved = json.loads((again / "interpret.json").read_text())
    assert saved["heads"]["motif_bootstrap"] == 0 and "plots/heads_stability.png" not in saved["files"]
    assert saved["deeplift"] == before["deeplift"]  # the other parts' record stays


def test_earlier_parts_are_kept_only_for_the_same_model_and_files_still_there(tmp_path):
    from genometracks.interpret.command import with_earlier_parts

    (tmp_path / "logos").mkdir()
    (tmp_path / "logos" / "L0H0.png").write_bytes(b"png")
    earlier = {
        "checkpoint": "a.ckpt",
        "shift": 20,
        "data": "x",
        "heads": {"motif_hits": {"records": 3}},
        "deeplift": {"pairs": 9},
        "costs": {"heads": {"seconds": 1.0}, "tracks": {"seconds": 2.0}, "deeplift": {"seconds": 3.0}},
        "files": ["logos/L0H0.png", "logos/gone.png"],
    }
    path = tmp_path / "interpret.json"
    path.write_text(json.dumps(earlier))
    new = {"checkpoint": "a.ckpt", "shift": 20, "data": "x", "kernels": {"motifs": 4}, "heads": {"motif_hits": {"records": 5}}}
    new |= {"costs": {"heads": {"seconds": 9.0}, "kernels": {"seconds": 0.5}}, "files": ["motifs/k.meme"]}
    merged = with_earlier_parts(new, path, tmp_path)
    assert list(merged) == ["checkpoint", "shift", "data", "heads", "kernels", "deeplift", "costs", "files"]
    assert merged["heads"] == {"motif_hits": {"records": 5}} and merged["deeplift"] == {"pairs": 9}  # redone / kept
    assert list(merged["costs"]) == ["heads", "tracks", "deeplift", "kernels"]  # the earlier order, then what is new
    assert [v["seconds"] for v in merged["costs"].values()] == [9.0, 2.0, 3.0, 0.5]
    assert merged["files"] == ["logos/L0H0.png", "motifs/k.meme"]  # a file no longer there is dropped
    for other in ({"checkpoint": "b.ckpt"}, {"shift": 0}, {"data": "y"}):  # another model, shift or genome
        path.write_text(json.dumps(earlier | other))
        assert with_earlier_parts(new, path, tmp_path) == new
    # a shipped model is known by its weights: the same weights under another folder merge, others do not
    shipped = {**new, "checkpoint": "shipped model m (/other/checkout/m)", "weights_sha256": "ab"}
    path.write_text(json.dumps(earlier | {"checkpoint": "shipped model m (/checkout/m)", "weights_sha256": "ab"}))
    assert with_earlier_parts(shipped, path, tmp_path)["deeplift"] == {"pairs": 9}
    assert list(with_earlier_parts(shipped, path, tmp_path))[:4] == ["checkpoint", "weights_sha256", "shift", "data"]
    assert with_earlier_parts({**shipped, "weights_sha256": "cd"}, path, tmp_path) == {**shipped, "weights_sha256": "cd"}
    path.write_text("{not json")
    assert with_earlier_parts(new, path, tmp_path) == new
    assert with_earlier_parts(new, tmp_path / "missing.json", tmp_path) == new


def test_settings_fill_defaults_and_reject_unknown_parts(tmp_path):
    from genometracks.interpret.command import DEFAULTS, settings
    from genometracks.interpret.heads import InterpretError

    cfg = compose("data=synthetic", f"run_dir={tmp_path}")
    s = settings(cfg)
    assert s["sample_fraction"] == cfg.interpret.sample_fraction and s["parts"] == DEFAULTS["parts"]
    with open_dict(cfg):
        cfg.interpret.parts = ["heads", "tea_leaves"]
    with pytest.raises(InterpretError, match=r"unknown \['tea_leaves'\]"):
        settings(cfg)


def test_reference_motifs_are_the_planted_boxes_for_synthetic_data(tmp_path):
    from genometracks.interpret.command import reference_motifs

    cfg = compose("data=synthetic", "data.generator.minus10=GGATCC", f"run_dir={tmp_path}")
    motifs, described = reference_motifs(cfg)
    assert [m.name for m in motifs] == ["planted_-35", "planted_-10"] and described == "planted synthetic boxes"
    assert motifs[1].consensus() == "GGATCC" and motifs[0].consensus() == "TTGACA"


def test_missing_reference_motifs_are_warned_in_one_line(tmp_path, capsys):
    from genometracks.interpret.command import reference_motifs

    cfg = compose("data=custom", f"data.motifs={tmp_path / 'nowhere'}", f"run_dir={tmp_path}")
    motifs, described = reference_motifs(cfg)
    err = capsys.readouterr().err.strip().splitlines()
    assert motifs == [] and described.startswith("none (") and "nowhere" in described
    assert len(err) == 1 and err[0].startswith("warning: interpret: ") and "nowhere" in err[0] and "data.motifs=" in err[0]


def test_each_part_hands_back_what_it_freed_before_the_next(tmp_path, monkeypatch):
    # in the main job, DeepLIFT/SHAP began on top of the pages attribution had freed: 3.2 GiB peak, 2.6 with this
    import genometracks.interpret.command as C
    from genometracks.model import TransformerXL
    from tests.conftest_interpret import MODEL, save_checkpoint

    save_checkpoint(TransformerXL(**MODEL), tmp_path / "model.ckpt")
    parts = "interpret.parts=[kernels,optimise]"
    cfg = compose("experiment=smoke", f"run_dir={tmp_path / 'run'}", f"ckpt={tmp_path / 'model.ckpt'}", parts)
    released = []
    monkeypatch.setattr(C, "release_freed_memory", lambda: released.append(sorted(p.name for p in (tmp_path / "run").rglob("*.meme"))))
    C.interpret_command(cfg)
    # after the kernels part (its PWMs written), then after optimisation (its motif written too)
    assert released == [["first_block_kernels.meme"], ["class_optimised.meme", "first_block_kernels.meme"]]
