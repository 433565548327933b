"""`genometracks interpret ckpt=PATH run_dir=DIR`: open the model up.

Parts (interpret.parts): heads (attention profiles, head motifs, motif-hit track), promoters (each call's
σ70 -35/-10 boxes by the DPInteract windows: sigma70_promoters.py), kernels (exact first-block PWMs),
optimise (class optimisation), attribution (gradient x input), deeplift (DeepLIFT/SHAP per strand,
TF-MoDISco + Tomtom: contributions.py), metaplots. Outputs under DIR: interpret/*.tsv, plots/*.png,
logos/*.png, motifs/*.meme, tracks/motif_hits.{bb,bed.gz,bed.gz.tbi}, tracks/sigma70_boxes.{bb,bed.gz,bed.gz.tbi},
tracks/attribution.{plus,minus}.bw, tracks/deeplift.{plus,minus}.bw and interpret.json (what was produced).
Every file is written atomically.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from genometracks.data.dataset import Dataset, load_dataset
from genometracks.data.streams import make_splits
from genometracks.formats.bigwig import read_bigwig, write_bigwig
from genometracks.genome.sequence import Genome, encode
from genometracks.inference.call_context import reference_frame
from genometracks.inference.peaks import check_peak_settings, peak_records, peak_threshold
from genometracks.inference.predict import predict_genome
from genometracks.inference.shipped import resolve_model
from genometracks.interpret import heads as H
from genometracks.interpret import metaplots as MP
from genometracks.interpret.attribution import aggregate_matrix, attribute, top_predicted_tss
from genometracks.interpret.contributions import run_deeplift
from genometracks.interpret.deeplift import clean_targets, strand_tracks
from genometracks.interpret.head_motifs import head_motifs, head_table
from genometracks.interpret.head_plots import plot_correlation, plot_head_stability, plot_heatmap
from genometracks.interpret.head_stability import head_logo_title, head_stability
from genometracks.interpret.heads import InterpretError
from genometracks.interpret.hit_track import motif_hit_track
from genometracks.interpret.kernel_pwm import kernels_to_motifs
from genometracks.interpret.logos import draw_logo, draw_logo_grid
from genometracks.interpret.motifs import Motif, MotifError, load_reference_motifs, write_meme
from genometracks.interpret.optimize import optimise_class, tick_labels
from genometracks.interpret.promoter_plots import plot_sigma70_promoters
from genometracks.interpret.sigma70_promoters import sigma70_promoter_track, sigma70_windows
from genometracks.io.atomic import write_text_atomic
from genometracks.io.jsonsafe import json_safe
from genometracks.io.malloc import release_freed_memory
from genometracks.io.resources import cost
from genometracks.io.run_config import group_defaults
from genometracks.io.rundir import RunDir
from genometracks.labels import annotations
from genometracks.model import TransformerXL

PARTS = ("heads", "promoters", "kernels", "optimise", "attribution", "deeplift", "metaplots")
# conf/interpret/default.yaml is the one source of the defaults (parts: null there means every part)
DEFAULTS = {**OmegaConf.to_container(group_defaults("interpret")), "parts": list(PARTS)}
NULLABLE = ("attribution_regions", "tts", "gff")  # None is a meaningful value for these keys


def settings(cfg: DictConfig) -> dict:
    """interpret.* with defaults for keys the config leaves out; unknown parts raise."""
    given = OmegaConf.to_container(cfg.interpret, resolve=True) if cfg.get("interpret") is not None else {}
    out = {**DEFAULTS, **{k: v for k, v in given.items() if v is not None or k in NULLABLE}}
    unknown = [p for p in out["parts"] if p not in PARTS]
    if unknown:
        raise InterpretError(f"interpret.parts: unknown {unknown}; choose from {list(PARTS)}")
    return out


def _rel(path: Path, out: Path) -> str:
    return str(Path(path).relative_to(out))


def _tsv(frame: pd.DataFrame, path: Path) -> Path:
    write_text_atomic(path, frame.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="NA"))
    return path


def reference_motifs(cfg: DictConfig) -> tuple[list, str]:
    """(motifs, description): the planted boxes for synthetic data, else the shared E. coli motif files."""
    if cfg.data.get("motifs") == "planted":
        gen = cfg.data.generator
        motifs = [
            Motif(f"planted_{box}", np.eye(4)[encode(str(seq))], nsites=1, source="synthetic generator")
            for box, seq in (("-35", gen.minus35), ("-10", gen.minus10))
        ]
        return motifs, "planted synthetic boxes"
    if not cfg.data.get("motifs"):
        return _no_references("data.motifs is not set")
    folder = Path(str(cfg.data.motifs))
    try:
        return load_reference_motifs(folder), str(folder)
    except MotifError as err:
        return _no_references(str(err))


def _no_references(why: str) -> tuple[list, str]:
    """No reference motifs: one warning line on stderr (the run goes on), and the description."""
    print(
        f"warning: interpret: {why}: head motifs and contributions are matched against no reference motifs "
        "(their match columns stay empty); set data.motifs=FOLDER of MEME/TRANSFAC files",
        file=sys.stderr,
    )
    return [], f"none ({why})"


def tss_calls(cfg: DictConfig, out: Path, genome: Genome, tracks: Callable[[], dict]) -> tuple[pd.DataFrame, str]:
    """(TSS calls: chrom, position (0-based), strand, name; where they came from): DIR/tracks/tss_peaks.bed
    when `peaks` wrote it, else called here from the probability `tracks()` with predict.peaks' settings."""
    run = RunDir(out)
    if run.peaks_bed.is_file():
        names = ["chrom", "start", "end", "name", "score", "strand"]
        bed = pd.read_csv(run.peaks_bed, sep="\t", header=None, usecols=range(6), names=names, dtype={"chrom": str})
        unknown = sorted(set(bed["chrom"]) - set(genome.contigs))
        if unknown:
            raise InterpretError(
                f"{run.peaks_bed}: contig {unknown[0]!r} is not in the genome's FASTA; the calls belong to another genome, "
                f"write them again with `genometracks peaks run_dir={out}`"
            )
        calls = bed.rename(columns={"start": "position"})[["chrom", "position", "strand", "name"]]
        return calls, _rel(run.peaks_bed, out)
    peaks = (cfg.get("predict") or group_defaults("predict")).peaks
    check_peak_settings(peaks)
    values = tracks()
    threshold, source = peak_threshold(peaks.threshold, out)
    circular = frozenset(name for name, contig in genome.contigs.items() if contig.circular)
    by_strand = {strand: {c: values[c][strand] for c in genome.contigs} for strand in "+-"}
    records = peak_records(by_strand, threshold, int(peaks.min_distance), list(genome.contigs), circular)
    calls = pd.DataFrame([(r[0], r[1], r[5], r[3]) for r in records], columns=["chrom", "position", "strand", "name"])
    return calls, f"called from the probability tracks at {threshold:.4g} ({source}; no tracks/tss_peaks.bed)"


def run_heads(
    model: TransformerXL, dataset: Dataset, seg_len: int, s: dict, out: Path, refs: list, seed: int, calls: tuple[pd.DataFrame, str]
) -> dict:
    """Attention profiles, head motifs and the motif-hit track (each head's word in the promoters of `calls`)."""
    run = RunDir(out)
    genome, regions = dataset.genome, dataset.splits["test"]
    outputs = H.stream_outputs(model, genome, regions, seg_len, s["n_streams"], s["progress"])
    flags = H.choose_samples(outputs, s["sample_fraction"], s["n_extreme"], seed)
    samples = H.collect_attention(model, genome, regions, flags, dataset.shift, seg_len, s["n_streams"], s["progress"])
    profiles = H.attention_profiles(samples)
    files = [_tsv(profiles, run.interpret / "heads_attention.tsv")]
    plot_heatmap(profiles, run.plots / "heads_heatmap.png")
    n_layer, n_head, w = samples.shape
    labels = [H.head_id(layer, head) for layer in range(n_layer) for head in range(n_head)]
    corr = H.head_correlation(samples.attention.reshape(len(samples.output), n_layer * n_head, w))
    files.append(
        _tsv(pd.DataFrame(corr, index=labels, columns=labels).reset_index(names="head_id"), run.interpret / "heads_correlation.tsv")
    )
    plot_correlation(corr, labels, run.plots / "heads_correlation.png")
    files += [run.plots / "heads_heatmap.png", run.plots / "heads_correlation.png"]
    motifs, tomtom = head_motifs(samples, genome, model.conv_width, s["motif_top"], refs, s["motif_rank"], s["min_information"])
    rounds = int(s["motif_bootstrap"])
    stability = head_stability(
        samples, genome, motifs, tomtom, model.conv_width, s["motif_top"], rounds, s["motif_rank"], s["match_qvalue"], seed
    )
    if rounds:
        plot_head_stability(motifs, stability, s["min_information"], run.plots / "heads_stability.png")
        files.append(run.plots / "heads_stability.png")
    else:  # an earlier run's plot would describe other motifs (and the report would show it)
        (run.plots / "heads_stability.png").unlink(missing_ok=True)
    files.append(write_meme([m.motif for m in motifs], run.motifs / "heads.meme"))
    files.append(_tsv(tomtom.frame(), run.interpret / "heads_tomtom.tsv"))
    for m, steady in zip(motifs, stability):
        ticks = [str(m.offset_from_tss + d) for d in range(-(model.conv_width // 2), model.conv_width // 2 + 1)]
        files.append(draw_logo(m.motif.probabilities, run.logos / f"{m.id}.png", head_logo_title(m, steady), "bits", ticks))
    table = head_table(motifs, s["min_information"], s["match_qvalue"], stability)
    files.append(_tsv(table, run.interpret / "heads.tsv"))
    informative = [(m, label) for m, label in zip(motifs, table["best_match"]) if m.information >= s["min_information"]]
    hits = motif_hit_track(genome, calls[0], informative, int(s["hit_slack"]), s["scan_qvalue"], run.track("motif_hits"), seed)
    hits["calls_from"] = calls[1]
    files += hits.pop("files")
    summary = {
        "samples": int(len(samples.output)),
        **{
            name: int(((samples.group & bit) > 0).sum())
            for name, bit in (("random", H.SAMPLE_RANDOM), ("top", H.SAMPLE_TOP), ("bottom", H.SAMPLE_BOTTOM))
        },
        "heads": [
            {
                "head": m.id,
                "offset_from_tss": m.offset_from_tss,
                "consensus": m.motif.consensus(),
                "information": round(m.information, 3),
                "best_match": label,
                "match_q_value": None if m.match is None else m.match.q_value,
                "match_support": None if np.isnan(steady.match_support) else steady.match_support,
            }
            for m, label, steady in zip(motifs, table["best_match"], stability)
        ],
        "motif_bootstrap": rounds,
        "tomtom_note": tomtom.note,
        "motif_hits": hits,
    }
    return {"summary": summary, "files": files}


def run_promoters(cfg: DictConfig, genome: Genome, calls: tuple[pd.DataFrame, str], refs: list, s: dict, out: Path, seed: int) -> dict:
    """Each call's σ70 promoter (interpret.sigma70_promoters) → interpret/sigma70_promoters.tsv and the
    sigma70_boxes track, compared with random positions and the data set's TSS labels."""
    run = RunDir(out)
    # the labels are read only where there is something to scan them with
    reference, label_set = reference_frame(cfg, genome.chrom_sizes()) if sigma70_windows(refs) else (None, None)
    if reference is not None:
        reference = reference.rename(columns={"pos": "position"})[["chrom", "position", "strand", "name"]]
    table = run.interpret / "sigma70_promoters.tsv"
    summary = sigma70_promoter_track(genome, calls[0], refs, float(s["scan_qvalue"]), table, run.track("sigma70_boxes"), reference, seed)
    files = summary.pop("files")
    summary["calls_from"], summary["labels"] = calls[1], label_set
    if files:
        plot = plot_sigma70_promoters(summary, run.plots / "sigma70_promoters.png")
        files.append(plot)
    else:
        (run.plots / "sigma70_promoters.png").unlink(missing_ok=True)
    return {"summary": summary, "files": files}


def run_kernels(model: TransformerXL, s: dict, out: Path) -> dict:
    """Exact first-block q/k/v kernel PWMs → MEME + a logo grid of the most informative ones."""
    run = RunDir(out)
    kernels = model.first_block_kernels()
    motifs = []
    for kind in "qkv":
        weight, bias = kernels[kind].double().numpy(), kernels[f"{kind}_bias"].double().numpy()
        names = [f"{kind}_H{c // model.d_head}_C{c % model.d_head}" for c in range(weight.shape[0])]
        motifs += kernels_to_motifs(weight, bias, names=names, source="first block kernel")
    info = np.array([m.information_content()[1] for m in motifs])
    order = np.argsort(-info, kind="stable")[: max(int(s["kernel_logos"]), 1)]
    meme = write_meme(motifs, run.motifs / "first_block_kernels.meme")
    grid = draw_logo_grid(
        [(f"{motifs[i].name} ({info[i]:.2f} bits)", motifs[i].probabilities, "bits") for i in order], run.logos / "first_block_kernels.png"
    )
    return {
        "summary": {"kernels": len(motifs), "most_informative": [motifs[i].name for i in order[:5]], "max_information": float(info.max())},
        "files": [meme, grid],
    }


def run_optimise(model: TransformerXL, shift: int, s: dict, out: Path, seed: int) -> dict:
    """Class optimisation → logos/class_optimised.png (bits) and motifs/class_optimised.meme."""
    run = RunDir(out)
    result = optimise_class(
        model,
        shift,
        s["optimise_length"],
        s["optimise_steps"],
        s["optimise_lr"],
        s["optimise_l2"],
        seed,
        s["progress"],
        logit_offset=float(s.get("logit_offset", 0.0)),  # P(TSS) as the tracks calibrate it
    )
    rel = result.relative_positions()
    logo = draw_logo(
        result.probabilities,
        run.logos / "class_optimised.png",
        f"class optimisation: P(TSS at 0) = {result.probability:.3f}",
        "bits",
        tick_labels(rel),
    )
    meme = write_meme([result.motif()], run.motifs / "class_optimised.meme")
    window = (rel >= -40) & (rel <= 0)
    consensus = "".join("ACGT"[i] for i in result.probabilities[window].argmax(axis=1))
    return {
        "summary": {"probability": result.probability, "consensus_-40_to_+1": consensus, "window_start_from_tss": int(rel[0])},
        "files": [logo, meme],
    }


def probability_tracks(model: TransformerXL, genome: Genome, shift: int, seg_len: int, out: Path, s: dict) -> tuple[dict, str]:
    """Forward per-base probabilities {contig: {'+', '-'}}: DIR/tracks/tss.*.bw when present, else predicted."""
    run = RunDir(out)
    plus, minus = run.tss_bigwig("+"), run.tss_bigwig("-")
    if plus.is_file() and minus.is_file():
        return (
            {c: {"+": np.nan_to_num(read_bigwig(plus, c)), "-": np.nan_to_num(read_bigwig(minus, c))} for c in genome.contigs},
            "read from tracks/tss.*.bw",
        )
    track, _ = predict_genome(
        model, genome, shift, seg_len, int(s["predict_streams"]), progress=s["progress"], logit_offset=float(s.get("logit_offset", 0.0))
    )  # calibrated, as predict writes them
    return track.values, "predicted (no tracks/tss.*.bw)"


def attribution_targets(dataset: Dataset, tracks: dict, s: dict, n_top: int):
    """The n_top highest predicted TSSs (best first), inside interpret.attribution_regions when set."""
    regions = None
    if s["attribution_regions"]:
        regions = make_splits(dataset.genome, {"test": s["attribution_regions"]})["test"]
    circular = frozenset(name for name, contig in dataset.genome.contigs.items() if contig.circular)
    return top_predicted_tss(tracks, n_top, regions=regions, circular=circular)


def run_attribution(model: TransformerXL, dataset: Dataset, tracks: dict, s: dict, out: Path) -> dict:
    """Gradient x input of the top predicted TSSs → tracks/attribution.{plus,minus}.bw (signed, per strand),
    logos/attribution.png (mean over targets, aligned at +1), a profile TSV."""
    run = RunDir(out)
    genome = dataset.genome
    targets = attribution_targets(dataset, tracks, s, int(s["attribution_top"]))
    result = attribute(model, genome, targets, dataset.shift, int(s["attribution_batch"]), s["progress"])
    sizes = genome.chrom_sizes()
    # one track per strand: a shared forward track summed '+' and '-' targets, so contributions of
    # divergent promoters cancelled on the bases both windows read
    per_strand = strand_tracks(genome, result)
    files = [
        write_bigwig(run.track(f"attribution.{word}.bw"), sizes, per_strand[strand]) for strand, word in (("+", "plus"), ("-", "minus"))
    ]
    for stale in ("attribution.bw", "gradcam.bw"):  # the summed track of earlier versions; Grad-CAM was dropped (README)
        run.track(stale).unlink(missing_ok=True)
    lo, hi = (int(v) for v in s["attribution_logo"])
    matrix, rel = aggregate_matrix(result, lo, hi)
    files.append(
        draw_logo(
            matrix,
            run.logos / "attribution.png",
            f"gradient x input, mean over {len(result.sites)} top predicted TSSs",
            "raw",
            tick_labels(rel),
        )
    )
    all_rel = result.relative_positions()
    profile = pd.DataFrame({"position": all_rel, "mean_contribution": result.contribution.mean(axis=0)})
    files.append(_tsv(profile[(all_rel >= lo) & (all_rel <= hi)], run.interpret / "attribution_profile.tsv"))
    return {
        "summary": {"targets": len(result.sites), "skipped_at_linear_ends": result.skipped, "window": int(result.contribution.shape[1])},
        "files": files,
    }


def metaplot_sets(cfg: DictConfig, dataset: Dataset, s: dict) -> tuple[dict, dict, Path | None]:
    """(site sets, notes for sets skipped, GFF path or None) for the configured data set."""
    sets, notes = {"TSS": dataset.sites}, {}
    tts = s["tts"] or cfg.data.get("terminators")  # interpret.* overrides the data set's own files
    gff = s["gff"] or cfg.data.get("annotation")
    tts, gff = (Path(str(p)) if p else None for p in (tts, gff))
    if tts is not None and tts.is_file():
        sets["TTS"] = annotations.validate_sites(annotations.read_sendseq_tts(tts), dataset.genome, tts)
    else:
        notes["TTS"] = f"skipped: no termination-site file ({tts or 'interpret.tts not set'})"
    if gff is not None and gff.is_file():
        sets["pseudogene"] = annotations.validate_sites(annotations.read_pseudogene_starts(gff), dataset.genome, gff)
    else:
        notes["pseudogene"] = f"skipped: no RefSeq GFF ({gff or 'interpret.gff not set'})"
        gff = None
    return sets, notes, gff


def run_metaplots(cfg: DictConfig, dataset: Dataset, tracks: dict, s: dict, out: Path) -> dict:
    """Median output around the site sets (sense, antisense) → interpret/metaplots.tsv, plots/metaplots.png;
    coding / antisense-coding / non-coding medians on the test split when a GFF is available."""
    run = RunDir(out)
    sets, notes, gff = metaplot_sets(cfg, dataset, s)
    split = s["metaplot_split"]
    if split != "all":
        sets = {k: MP.sites_in(v, dataset.splits[split]) for k, v in sets.items()}
    table = MP.metaplot_table(tracks, dataset.genome, sets, int(s["metaplot_flank"]))
    files = [_tsv(table, run.interpret / "metaplots.tsv")]
    MP.plot_metaplots(table, run.plots / "metaplots.png", notes)
    files.append(run.plots / "metaplots.png")
    summary = {"sites": {k: len(v) for k, v in sets.items()}, "skipped": notes, "split": split}
    if gff is not None:
        summary["coding_medians"] = MP.coding_medians(tracks, MP.read_cds(gff, dataset.genome), dataset.splits["test"])
    else:
        summary["coding_medians"] = "skipped: no GFF with CDS features"
    return {"summary": summary, "files": files}


def same_model(earlier: dict, summary: dict) -> bool:
    """Whether two interpret.json summaries describe the same model on the same data: equal label shift
    and data, and equal weights (`weights_sha256`, a shipped model's card) where both record them, else
    the same checkpoint text (a run directory copied to another checkout names another folder)."""
    if any(earlier.get(k) != summary.get(k) for k in ("shift", "data")):
        return False
    weights = earlier.get("weights_sha256"), summary.get("weights_sha256")
    if all(weights):
        return weights[0] == weights[1]
    return earlier.get("checkpoint") == summary.get("checkpoint")


def with_earlier_parts(summary: dict, earlier_json: Path, out: Path) -> dict:
    """`summary` plus the parts of the earlier DIR/interpret.json that this run did not redo, when that
    file describes the same model on the same data (`same_model`; `interpret.parts=[heads]` re-runs one
    part and keeps the record of the others, which the report reads): their summaries and costs, and
    its files that are still there. Another model's parts are dropped, as is an unreadable file."""
    try:
        earlier = json.loads(earlier_json.read_text())
    except (OSError, ValueError):
        return summary
    if not isinstance(earlier, dict) or not same_model(earlier, summary):
        return summary
    parts = {k: summary[k] if k in summary else earlier[k] for k in PARTS if k in summary or k in earlier}
    costs = {**(earlier.get("costs") or {}), **summary["costs"]}  # the earlier order, new values
    files = set(summary["files"]) | {f for f in earlier.get("files") or [] if (out / f).is_file()}
    head = {k: summary[k] for k in ("checkpoint", "weights_sha256", "shift", "data") if k in summary}
    return {**head, **parts, "costs": costs, "files": sorted(files)}


def interpret_command(cfg: DictConfig) -> dict:
    """Run the configured parts; write DIR/interpret.json and return it."""
    run = RunDir.checked(cfg)
    out = run.root
    s = settings(cfg)
    s["predict_streams"] = int((cfg.get("predict") or group_defaults("predict")).n_streams)
    source = resolve_model(cfg, out)  # ckpt=, else model.shipped, else DIR/checkpoints/best.ckpt
    model, seg_len, ckpt = source.model, source.seg_len, source.description
    s["logit_offset"] = source.logit_offset
    dataset = load_dataset(cfg)
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    results: dict[str, dict] = {}
    costs: dict[str, dict] = {}  # per part: wall seconds and peak RSS so far (which part needs the memory)
    made: dict[str, tuple[dict, str]] = {}

    def tracks_once() -> tuple[dict, str]:
        """The probability tracks, read or predicted once for every part that needs them."""
        if "tracks" not in made:
            with part("tracks"):
                made["tracks"] = probability_tracks(model, dataset.genome, dataset.shift, seg_len, out, s)
        return made["tracks"]

    @contextmanager
    def part(name: str) -> Iterator[None]:
        """Time the part into costs; afterwards hand what it freed back to the system (the next part's
        peak then starts from what is live: measured, DeepLIFT/SHAP after attribution in the main job)."""
        with cost(costs, name):
            yield
        release_freed_memory()

    @functools.cache
    def references_once() -> tuple[list, str]:
        """The reference motifs, read (or warned about) once for the parts that match against them."""
        return reference_motifs(cfg)

    @functools.cache
    def calls_once() -> tuple[pd.DataFrame, str]:
        """The TSS calls (read, or called from the tracks, which are then predicted under "tracks"), once."""
        return tss_calls(cfg, out, dataset.genome, lambda: tracks_once()[0])

    if "heads" in s["parts"]:
        calls = calls_once()  # outside the heads' cost
        with part("heads"):
            refs, described = references_once()
            results["heads"] = run_heads(model, dataset, seg_len, s, out, refs, seed, calls)
            results["heads"]["summary"]["references"] = described
    if "promoters" in s["parts"]:
        calls = calls_once()
        with part("promoters"):
            results["promoters"] = run_promoters(cfg, dataset.genome, calls, references_once()[0], s, out, seed)
    if "kernels" in s["parts"]:
        with part("kernels"):
            results["kernels"] = run_kernels(model, s, out)
    if "optimise" in s["parts"]:
        with part("optimise"):
            results["optimise"] = run_optimise(model, dataset.shift, s, out, seed)
    if {"attribution", "deeplift", "metaplots"} & set(s["parts"]):
        tracks, tracks_source = tracks_once()
        if "attribution" in s["parts"]:
            with part("attribution"):
                results["attribution"] = run_attribution(model, dataset, tracks, s, out)
        if "deeplift" in s["parts"]:
            with part("deeplift"):
                # candidates best first (20 per target), of which the first deeplift_top with N-free windows
                top = int(s["deeplift_top"])
                ranked = attribution_targets(dataset, tracks, s, max(20 * top, 1000))
                targets = clean_targets(model, dataset.genome, ranked, dataset.shift, top)
                results["deeplift"] = run_deeplift(model, dataset, targets, s, out, references_once()[0], seed)
        if "metaplots" in s["parts"]:
            with part("metaplots"):
                results["metaplots"] = run_metaplots(cfg, dataset, tracks, s, out)
                results["metaplots"]["summary"]["tracks"] = tracks_source
    summary = {
        "checkpoint": str(ckpt),
        **({"weights_sha256": source.summary()["weights_sha256"]} if source.card is not None else {}),
        "shift": dataset.shift,
        "data": str(cfg.data.name),
        **{k: v["summary"] for k, v in results.items()},
        "costs": costs,
        "files": sorted(_rel(p, out) for v in results.values() for p in v["files"]),
    }
    summary = with_earlier_parts(summary, run.interpret_json, out)
    write_text_atomic(run.interpret_json, json.dumps(json_safe(summary), indent=2, default=str, allow_nan=False))  # NaN q -> null
    print(  # one line, like the other commands: the whole summary is interpret.json
        json.dumps(
            {
                "summary": _rel(run.interpret_json, out),
                "parts": list(results),
                "seconds": {k: v.get("seconds") for k, v in costs.items()},
                "files": len(summary["files"]),
            }
        )
    )
    return summary
