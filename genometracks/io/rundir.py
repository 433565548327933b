"""`RunDir`: the one place that knows where each artefact of a run directory lives.

Every command reads and writes under a run directory (`run_dir=DIR`, or a sweep subfolder under
`-m`). The layout, relative to DIR:

    config.yaml, overrides.txt           the configuration the directory was made with
    checkpoints/best.ckpt, last.ckpt     training (`eval/` holds per-split metrics, `logs/` the logger)
    metrics.json, metrics.md             training or sigma-CNN metrics
    data_summary.json                    the `data` stage
    tracks/                              bigWig/bigBed/BED outputs (tss.plus.bw, tss_peaks.bb, ...)
    interpret/, motifs/, logos/, plots/  interpretation tables, MEME files, logo and figure PNGs
    models/, sigma/                      the sigma-class CNN and its stage
    hub/, hub_genark/, igv/              genome-browser exports
    comparison/                          the peer comparison of the report
    stages/<stage>.json                  finished pipeline stages
    report.html, report.md               the run report
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from genometracks.io.run_config import check_same_run

STRAND_WORDS = {"+": "plus", "-": "minus"}


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory's artefacts (nothing is created until a writer writes)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # ------------------------------------------------------------------ opening
    @classmethod
    def of_job(cls, cfg: DictConfig) -> RunDir:
        """This job's run directory: Hydra's output folder (`run_dir`, or its sweep subfolder under
        `-m`); `cfg.run_dir` when not running under Hydra (tests calling functions directly)."""
        try:
            return cls(Path(HydraConfig.get().runtime.output_dir))
        except ValueError:
            return cls(Path(str(cfg.run_dir)))

    @classmethod
    def checked(cls, cfg: DictConfig) -> RunDir:
        """`of_job(cfg)`, after checking that a run already there was made with the same data and
        model (ConfigError otherwise)."""
        run = cls.of_job(cfg)
        check_same_run(cfg, run.root)
        return run

    # ------------------------------------------------------------------ configuration
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def overrides(self) -> Path:
        return self.root / "overrides.txt"

    # ------------------------------------------------------------------ training
    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best_ckpt(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def last_ckpt(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def eval(self) -> Path:
        """Per-split metrics written by the training task (`val.json`, `test.json`)."""
        return self.root / "eval"

    @property
    def metrics_json(self) -> Path:
        return self.root / "metrics.json"

    @property
    def metrics_md(self) -> Path:
        return self.root / "metrics.md"

    @property
    def data_summary(self) -> Path:
        return self.root / "data_summary.json"

    # ------------------------------------------------------------------ tracks
    @property
    def tracks(self) -> Path:
        return self.root / "tracks"

    def track(self, name: str) -> Path:
        """`tracks/<name>` (a file name with its suffix, or a stem for multi-file writers)."""
        return self.tracks / name

    def tss_bigwig(self, strand: str, stem: str = "tss") -> Path:
        """`tracks/<stem>.plus.bw` or `.minus.bw` for strand '+' / '-'."""
        return self.tracks / f"{stem}.{STRAND_WORDS[strand]}.bw"

    @property
    def predict_json(self) -> Path:
        return self.tracks / "predict.json"

    @property
    def peaks_bed(self) -> Path:
        return self.tracks / "tss_peaks.bed"

    @property
    def peaks_stem(self) -> Path:
        """`tracks/tss_peaks` (the writer adds .bb, .bed.gz and .bed.gz.tbi)."""
        return self.tracks / "tss_peaks"

    @property
    def peaks_bed_gz(self) -> Path:
        return self.tracks / "tss_peaks.bed.gz"

    @property
    def sigma_bigbed(self) -> Path:
        return self.tracks / "tss_sigma.bb"

    # ------------------------------------------------------------------ interpretation and figures
    @property
    def interpret(self) -> Path:
        return self.root / "interpret"

    @property
    def interpret_json(self) -> Path:
        return self.root / "interpret.json"

    @property
    def motifs(self) -> Path:
        return self.root / "motifs"

    @property
    def logos(self) -> Path:
        return self.root / "logos"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def sigma_model(self) -> Path:
        return self.models / "sigma_cnn.pt"

    @property
    def sigma(self) -> Path:
        return self.root / "sigma"

    @property
    def sigma_trained_with(self) -> Path:
        """The settings fingerprint of a finished sigma-CNN training (written last: model, logos, metrics done)."""
        return self.models / "sigma_cnn.settings.json"

    # ------------------------------------------------------------------ browsers and report
    @property
    def hub(self) -> Path:
        return self.root / "hub"

    @property
    def hub_genark(self) -> Path:
        return self.root / "hub_genark"

    @property
    def igv(self) -> Path:
        return self.root / "igv"

    @property
    def comparison(self) -> Path:
        return self.root / "comparison"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    def stage_marker(self, stage: str) -> Path:
        """`stages/<stage>.json`: written when a pipeline stage has finished."""
        return self.stages / f"{stage}.json"

    @property
    def job_status(self) -> Path:
        """`collection_job.json`: the outcome of a collection's job for this genome (status, positions,
        peaks, seconds, error line), written when the job ends, failed or not."""
        return self.root / "collection_job.json"

    @property
    def jbrowse(self) -> Path:
        return self.root / "jbrowse"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"


@dataclass(frozen=True)
class CollectionDir:
    """Paths of a collection directory (`genometracks predict|run manifest=... run_dir=COLL`): one run
    directory per genome, `COLL/<name>/`, beside the collection's own files."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def genome(self, name: str) -> RunDir:
        """The run directory of genome `name` (a manifest name: letters, digits, _)."""
        return RunDir(self.root / name)

    @property
    def manifest(self) -> Path:
        """`manifest.tsv`: the collection's genomes (absolute paths), read by its jobs and `collect`."""
        return self.root / "manifest.tsv"

    @property
    def summary(self) -> Path:
        """`summary.tsv`: one row per genome (status, positions, peaks, seconds, error)."""
        return self.root / "summary.tsv"

    @property
    def settings(self) -> Path:
        """`settings.txt`: the shared overrides every genome's job ran with (one per line)."""
        return self.root / "settings.txt"

    @property
    def hub(self) -> Path:
        return self.root / "hub"

    @property
    def index_html(self) -> Path:
        return self.root / "index.html"
