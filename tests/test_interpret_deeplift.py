"""DeepLIFT/SHAP (genometracks.interpret.deeplift): the tangermeme wrapper equals the model, the
contributions are complete (sum = output - mean reference output) also for sharp attention, the
softmax rule is exact, and the per-strand tracks put each contribution on the right base of a
hand-made sequence; the bigWigs read back with pyBigWig and UCSC's bigWigToBedGraph / bigWigInfo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import Genome
from genometracks.interpret import deeplift as D
from genometracks.model import TransformerXL
from tests.kent import kent, needs_kent


def _model(norm: str = "pre", d_inner: int = 0, sharpen: float = 1.0, seed: int = 0) -> TransformerXL:
    torch.manual_seed(seed)
    model = TransformerXL(n_layer=2, n_head=2, d_model=16, d_head=8, window=24, norm=norm, d_inner=d_inner).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.mul_(sharpen)
    return model


def _sites(chrom: str, pos: list[int], strand: list[str]) -> SiteSet:
    n = len(pos)
    return SiteSet(
        np.array([chrom] * n, dtype=object),
        np.array(pos),
        np.array(strand),
        np.ones(n),
        np.array([f"t{i}" for i in range(n)], dtype=object),
        "test",
    )


@pytest.mark.parametrize("norm,d_inner", [("pre", 0), ("post", 16)])
def test_wrapper_equals_the_model(norm, d_inner):
    from genometracks.interpret.optimize import onehot_logits

    model = _model(norm, d_inner)
    width = model.context + 1 + model.lookahead
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (3, width)), 4).float()
    with torch.no_grad():
        ours = D.TargetLogit(model)(x.transpose(1, 2))[:, 0]
        theirs = onehot_logits(model, x)[:, model.context]
    assert torch.allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_wrapper_keeps_only_the_columns_the_target_reads_and_stays_exact(norm):
    """Three blocks, a window of 20 and conv width 5, in float64: each block keeps the W - 1 + 2c
    columns fewer the next one reads, the last one the target column alone, and the logit equals
    the model's to rounding; a window of the wrong width is refused in one line."""
    from genometracks.interpret.attribution import AttributionError
    from genometracks.interpret.optimize import onehot_logits

    torch.manual_seed(5)
    model = TransformerXL(n_layer=3, n_head=2, d_model=16, d_head=8, window=20, conv_width=5, norm=norm, d_inner=8).double().eval()
    width = model.context + 1 + model.lookahead
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (4, width)), 4).double()
    wrapper = D.TargetLogit(model)
    widths = []
    hooks = [step.register_forward_hook(lambda _m, _i, out: widths.append(out.shape[1])) for step in wrapper.steps]
    with torch.no_grad():
        ours = wrapper(x.transpose(1, 2))[:, 0]
        theirs = onehot_logits(model, x)[:, model.context]
    for hook in hooks:
        hook.remove()
    assert widths == [width - 23, width - 46, 1]  # W - 1 + 2c = 23 per block
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    with pytest.raises(AttributionError, match="context \\+ lookahead \\+ 1"):
        wrapper(x.transpose(1, 2)[..., 1:])


def test_softmax_rule_is_exact_for_far_apart_rows():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 7, dtype=torch.float64) * 50
    x[1] += 200  # the reference's row maxima lie far above the example's: a shared stabiliser underflows
    module = torch.nn.Softmax(dim=-1)
    module.dim, module.input = -1, x
    g = torch.randn_like(x)
    (grad_in,) = D.softmax_rule(module, None, (g,))
    y = x.softmax(-1)
    dx, dy = x[:1] - x[1:], y[:1] - y[1:]
    assert torch.allclose((grad_in[:1] * dx).sum(-1), (g[:1] * dy).sum(-1), atol=1e-10)
    assert torch.allclose((grad_in[1:] * dx).sum(-1), (g[1:] * dy).sum(-1), atol=1e-10)


@pytest.mark.parametrize("sharpen", [1.0, 30.0])
def test_contributions_are_complete(sharpen):
    """Sum over the window of the observed-base contributions = logit - mean reference logit; with
    sharpened attention too (tangermeme's own softmax rule is off by more than the difference there)."""
    rng = np.random.default_rng(0)
    genome = Genome.from_sequences({"c": "".join(rng.choice(list("ACGT"), 600))}, circular=["c"])
    model = _model(sharpen=sharpen)
    result = D.deeplift_shap(model, genome, _sites("c", [150, 300, 450], ["+", "-", "+"]), 5, n_shuffles=4, progress=False)
    diff = result.output - result.reference_mean
    assert np.abs(diff).min() > 1e-3
    assert (result.delta <= 1e-4 * np.maximum(1, np.abs(diff))).all(), (result.delta, diff)
    hyp, onehot = result.hypothetical, result.onehot()
    assert np.allclose((hyp * onehot).sum(-1), result.attributions.contribution, atol=1e-6)
    # the batch size (interpret.deeplift_batch) is speed and memory only: 12 pairs in 1, 5 or 32 per batch
    for batch_size in (1, 5):
        again = D.deeplift_shap(model, genome, _sites("c", [150, 300, 450], ["+", "-", "+"]), 5, 4, batch_size, progress=False)
        np.testing.assert_allclose(again.hypothetical, hyp, rtol=0, atol=1e-6)


def test_minus_strand_track_holds_the_reverse_complement_base_contributions(tmp_path):
    """A hand-made linear contig; one target per strand. The '-' track at forward base i is the
    contribution of window column j whose strand-local position is n - 1 - i, and the window token
    there is the complement of the forward base i."""
    from genometracks.formats.bigwig import read_bigwig, write_bigwig

    model = _model(seed=3)
    width = model.context + 1 + model.lookahead
    rng = np.random.default_rng(7)
    seq = "".join(rng.choice(list("ACGT"), 3 * width))
    n = len(seq)
    genome = Genome.from_sequences({"hand": seq})
    minus_tss, plus_tss = n // 2 - 40, n // 2 + 40
    result = D.deeplift_shap(model, genome, _sites("hand", [plus_tss, minus_tss], ["+", "-"]), 5, n_shuffles=2, progress=False)
    att = result.attributions
    assert list(att.sites.strand) == ["+", "-"] and att.skipped == 0
    tracks = D.strand_tracks(genome, att)
    plus, minus = tracks["+"]["hand"], tracks["-"]["hand"]
    complement = {"A": "T", "C": "G", "G": "C", "T": "A"}
    # minus target: local(p) = n - 1 - p; column j reads local first + j = forward base n - 1 - (first + j)
    first = att.first_local[1]
    assert first == (n - 1 - minus_tss) + 5 - model.context
    forward = n - 1 - (first + np.arange(width))
    assert np.array_equal(minus[forward], att.contribution[1])
    assert "".join("ACGT"[t] for t in att.tokens[1]) == "".join(complement[seq[i]] for i in forward)
    assert np.count_nonzero(minus) == np.count_nonzero(att.contribution[1])
    # the plus target reads forward bases first + j directly
    cols = att.first_local[0] + np.arange(width)
    assert np.array_equal(plus[cols], att.contribution[0])
    assert "".join("ACGT"[t] for t in att.tokens[0]) == seq[cols[0] : cols[-1] + 1]
    assert np.count_nonzero(np.delete(plus, cols)) == 0
    # the target output's own base (+1 of the minus TSS) sits at forward position minus_tss
    assert forward[model.context - 5] == minus_tss
    paths = {
        s: write_bigwig(tmp_path / f"deeplift.{name}.bw", genome.chrom_sizes(), tracks[s]) for s, name in (("+", "plus"), ("-", "minus"))
    }
    for s, path in paths.items():
        assert np.allclose(read_bigwig(path, "hand"), tracks[s]["hand"], atol=1e-7)


@needs_kent
def test_deeplift_bigwigs_read_back_with_kent(tmp_path):
    from genometracks.formats.bigwig import write_bigwig

    rng = np.random.default_rng(2)
    genome = Genome.from_sequences({"k": "".join(rng.choice(list("ACGT"), 900))}, circular=["k"])
    result = D.deeplift_shap(_model(), genome, _sites("k", [100, 400, 880], ["-", "+", "-"]), 5, n_shuffles=2, progress=False)
    values = D.strand_tracks(genome, result.attributions)["-"]["k"]
    assert np.count_nonzero(values) > 0 and (values < 0).any() and (values > 0).any()
    path = write_bigwig(tmp_path / "deeplift.minus.bw", genome.chrom_sizes(), {"k": values})
    out = path.with_suffix(".bedGraph")
    assert kent("bigWigToBedGraph", path, out).returncode == 0
    decoded = np.zeros(values.size, dtype=np.float64)
    for line in out.read_text().splitlines():
        _, start, end, value = line.split("\t")
        decoded[int(start) : int(end)] = float(value)
    assert np.allclose(decoded, values, atol=1e-6)
    info = kent("bigWigInfo", path)
    assert info.returncode == 0 and "basesCovered: " in info.stdout
    stats = dict(line.split(": ", 1) for line in info.stdout.splitlines() if ": " in line)
    assert float(stats["min"]) == pytest.approx(values.min(), abs=1e-5)
    assert float(stats["max"]) == pytest.approx(values.max(), abs=1e-5)


@pytest.fixture(scope="module")
def planted_run(trained_smoke, tmp_path_factory):
    """predict + the deeplift part of `interpret` on the tiny model of tests/conftest_interpret.py
    (planted boxes -35 TTGCGA, -10 TAGCAT: not sigma70's)."""
    from omegaconf import open_dict

    from tests.conftest import compose
    from tests.conftest_interpret import predict_and_interpret

    ckpt, overrides = trained_smoke
    out = tmp_path_factory.mktemp("deeplift_run")
    cfg = compose(
        *overrides,
        f"run_dir={out}",
        f"ckpt={ckpt}",
        "interpret.parts=[deeplift]",
        "interpret.deeplift_top=300",
        "interpret.deeplift_shuffles=3",
    )
    with open_dict(cfg):
        cfg.interpret.progress = False
    return out, cfg, predict_and_interpret(cfg)


@pytest.mark.slow
def test_modisco_recovers_both_planted_boxes_at_the_planted_spacing(planted_run):
    import pandas as pd

    from genometracks.interpret.motifs import read_meme
    from tests.conftest_interpret import MINUS10, MINUS35

    out, cfg, summary = planted_run
    deeplift = summary["deeplift"]
    assert deeplift["targets"] == 300 and deeplift["completeness_max_relative_error"] < 1e-3
    patterns = pd.read_csv(out / "interpret" / "modisco_patterns.tsv", sep="\t")
    found = {}
    for box, seq in (("-10", MINUS10), ("-35", MINUS35)):
        rows = patterns[patterns["best_match"].eq(f"planted_{box}") & patterns["p_value"].lt(0.01)]
        assert len(rows) >= 1, patterns.to_string()
        row = rows.sort_values("p_value").iloc[0]
        assert any(seq[k : k + 4] in row["consensus"] for k in range(len(seq) - 3)), row.to_string()
        found[box] = row["match_position_from_tss"]
    # the -10 box is planted at -12..-7; the -35 box ends `spacer` nt before it (15..19 planted)
    assert abs(found["-10"] - -12) <= 1, found
    spacer = found["-10"] - (found["-35"] + len(MINUS35))
    low, high = cfg.data.generator.spacer
    assert low - 1 <= spacer <= high + 1, found
    matches = pd.read_csv(out / "interpret" / "modisco_matches.tsv", sep="\t")
    assert set(matches["reference"]) == {"planted_-10", "planted_-35"} and matches["q_value"].between(0, 1).all()
    names = {m.name for m in read_meme(out / "motifs" / "modisco.meme")}
    assert {f"modisco_{p}" for p in patterns["pattern"]} == names
    assert (out / "logos" / "modisco.png").stat().st_size > 0


@pytest.mark.slow
def test_planted_run_tracks_read_back_and_point_at_the_boxes(planted_run):
    import pandas as pd
    import pyBigWig

    out, _, summary = planted_run
    for strand in ("plus", "minus"):
        bw = pyBigWig.open(str(out / "tracks" / f"deeplift.{strand}.bw"))
        try:
            assert bw.chroms() == {"syn1": 60000, "syn2": 60000}
            values = np.nan_to_num(bw.values("syn1", 0, 60000, numpy=True))
        finally:
            bw.close()
        assert np.count_nonzero(values) > 1000
    profile = pd.read_csv(out / "interpret" / "deeplift_profile.tsv", sep="\t")
    top = profile.loc[profile["mean_contribution"].nlargest(8).index, "position"]
    assert top.between(-13, -6).sum() >= 4, profile.to_string()


def test_report_section_shows_patterns_and_logos(tmp_path):
    import json

    import pandas as pd

    from genometracks.interpret.logos import draw_logo
    from genometracks.report.build import build_report

    run = tmp_path / "run"
    (run / "interpret").mkdir(parents=True)
    summary = {
        "targets": 100,
        "references_per_target": 3,
        "completeness_max_abs_error": 2e-6,
        "completeness_max_relative_error": 1e-6,
        "modisco": {"window": [-80, 20], "references": 317},
    }
    (run / "interpret.json").write_text(json.dumps({"deeplift": summary}))
    pd.DataFrame(
        [
            {
                "pattern": "pos_0",
                "seqlets": 100,
                "consensus": "TATAAT",
                "position_from_tss": -12.0,
                "information": 9.2,
                "best_match": "sigma70_-10",
                "p_value": 0.0027,
                "e_value": 0.85,
                "q_value": 0.42,
                "match_position_from_tss": -12.0,
            }
        ]
    ).to_csv(run / "interpret" / "modisco_patterns.tsv", sep="\t", index=False)
    draw_logo(np.full((6, 4), 0.25), run / "logos" / "modisco.png", "pattern", "bits")
    page = build_report(run, snapshot=False, compare=False)[0].read_text()
    section = page.split("DeepLIFT/SHAP and TF-MoDISco</h2>")[1].split("<h2")[0]
    assert "sigma70_-10" in section and "TATAAT" in section and "317 reference motifs" in section
    assert 'src="logos/modisco.png"' in section and "logos/deeplift.png" not in section
    assert "DeepLIFT/SHAP and TF-MoDISco" not in page.split("Not produced in this run")[1]


def test_no_modisco_pattern_writes_a_header_and_the_report_still_builds(tmp_path):
    """A run whose contributions give MoDISco no pattern (a tiny model): the patterns TSV is a header
    line, not an empty file, and the report still builds with the section."""
    import json

    from genometracks.interpret.contributions import _tsv
    from genometracks.interpret.modisco import PATTERN_COLUMNS, match_patterns, pattern_table
    from genometracks.report.build import build_report

    run = tmp_path / "run"
    (run / "interpret").mkdir(parents=True)
    table = pattern_table([], match_patterns([], [], np.arange(-10, 5)), np.arange(-10, 5))
    path = _tsv(table, run / "interpret" / "modisco_patterns.tsv")
    assert path.read_text() == "\t".join(PATTERN_COLUMNS) + "\n"
    summary = {
        "targets": 20,
        "references_per_target": 3,
        "completeness_max_abs_error": 2e-6,
        "completeness_max_relative_error": 1e-6,
        "modisco": {"window": [-80, 20], "references": 2, "patterns": []},
    }
    (run / "interpret.json").write_text(json.dumps({"deeplift": summary}))
    page = build_report(run, snapshot=False, compare=False)[0].read_text()
    section = page.split("DeepLIFT/SHAP and TF-MoDISco</h2>")[1].split("<h2")[0]
    assert "TF-MoDISco patterns" in section and "pos_0" not in section


def test_targets_skip_windows_with_n_and_keep_the_ranking():
    """The best-ranked sites whose windows hold an N or leave the linear contig give way to the next
    ones, in rank order, so N runs near the top predictions cannot empty DeepLIFT/SHAP's targets."""
    model = _model(seed=5)
    width = model.context + 1 + model.lookahead  # the window of the site at p (+ strand): [p + 5 - context, ... + width)
    rng = np.random.default_rng(11)
    seq = list("".join(rng.choice(list("ACGT"), 6 * width)))
    n_run = 2 * width
    seq[n_run : n_run + 10] = "N" * 10
    genome = Genome.from_sequences({"hand": "".join(seq)})
    near_n = n_run + model.context - 5 + 3  # its window covers the N run
    clean_a, clean_b = 4 * width, 4 * width + 50
    too_early = 10  # its window would start before the contig
    ranked = _sites("hand", [near_n, too_early, clean_a, near_n + 2, clean_b], ["+"] * 5)
    chosen = D.clean_targets(model, genome, ranked, 5, n_top=2)
    assert list(chosen.pos) == [clean_a, clean_b] and list(chosen.name) == ["t2", "t4"]
    assert list(D.clean_targets(model, genome, ranked, 5, n_top=1).pos) == [clean_a]
    assert len(D.clean_targets(model, genome, ranked.subset(np.array([0, 1, 3])), 5, n_top=3)) == 0
