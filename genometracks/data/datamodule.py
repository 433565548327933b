"""The LightningDataModule: train/validation/test/predict `SegmentStreams` as ordered iterable loaders.

Order matters (model memory is carried from batch to batch), so there is no shuffling: each loader
yields one stream-batch dict per step (docs/CONTRACTS.md) from a single process (num_workers=0).
Under DDP each rank streams its own disjoint share; all ranks yield the same number of batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from genometracks.data.streams import (
    SegmentStreams,
    Splits,
    StreamError,
    build_labels,
    labelled_outputs,
    make_splits,
    spread_labels,
)
from genometracks.genome.intervals import Interval, SiteSet
from genometracks.genome.sequence import Genome

STAGES = ("train", "validation", "test", "predict")


class StreamDataset(IterableDataset):
    """Iterable over one `SegmentStreams` epoch; re-cut per epoch when the streams rotate.

    `epoch()` and `skip()` are asked when the first batch is drawn (after Lightning restored a
    checkpoint and ran on_train_epoch_start); `skip()` batches are dropped (mid-epoch resume; reset
    flags are left as they are, since the task restores the stream memory from the checkpoint).
    `yielded` counts the batches handed out this epoch (skipped ones included).
    """

    def __init__(
        self,
        streams: SegmentStreams,
        epoch: Callable[[], int] | None = None,
        skip: Callable[[], int] | None = None,
        limit: int | None = None,
    ) -> None:
        self.streams = streams
        self.epoch = epoch
        self.skip = skip
        self.limit = limit  # yield only the first `limit` batches of each epoch (debug=overfit)
        self.yielded = 0

    def __len__(self) -> int:
        return len(self.streams) if self.limit is None else min(self.limit, len(self.streams))

    def __iter__(self) -> Iterator[dict]:
        if self.epoch is not None:
            self.streams.set_epoch(self.epoch())
        skip = self.skip() if self.skip is not None else 0
        self.yielded = skip
        for t in range(skip, len(self)):
            self.yielded = t + 1
            yield self.streams.batch(t)


class StreamLoader(DataLoader):
    """A DataLoader Lightning can checkpoint mid-epoch: its state is the number of batches yielded."""

    def __init__(self, dataset: StreamDataset, on_resume: Callable[[int], None] | None = None) -> None:
        # a generator of its own: each iterator draws a base seed, which from torch's global generator would
        # shift dropout's random numbers by one draw per iterator (a resumed run makes one more than the run
        # it continues; with num_workers=0 the seed itself is unused)
        super().__init__(dataset, batch_size=None, num_workers=0, generator=torch.Generator().manual_seed(0))
        self.on_resume = on_resume

    def state_dict(self) -> dict:
        return {"yielded": int(self.dataset.yielded)}

    def load_state_dict(self, state: dict) -> None:
        if self.on_resume is not None:
            self.on_resume(int(state.get("yielded", 0)))


class TSSDataModule(pl.LightningDataModule):
    """Streams over a genome's splits. Construction only stores arguments; `setup` builds labels
    (unless given) and splits, and reads rank/world size from the trainer under DDP.

    genome: a `Genome`; labels: `build_labels` output, or sites (+ shift) to build them from;
    splits: a `Splits`, a split config mapping, or None (70/20/10 per contig); n_streams (B) for
    training, eval_streams for validation/test/predict (default n_streams); seg_len (L); lookahead (H);
    burn_in (nt of upstream context before each chunk); seed: rotate training cuts per epoch;
    target_spread / spread_decay: training targets decay**d at d <= target_spread nt from a TSS
    (`spread_labels`; validation, test and prediction keep the exact labels); overfit_batches > 0
    (debug=overfit): every epoch trains on the same first that many training batches, unrotated, and
    validates on them too, so the validation loss shows whether the model can learn them.
    """

    def __init__(
        self,
        genome: Genome,
        sites: SiteSet | None = None,
        splits: Splits | Mapping | None = None,
        shift: int = 20,
        n_streams: int = 8,
        seg_len: int = 512,
        lookahead: int = 0,
        burn_in: int = 0,
        eval_streams: int | None = None,
        labels: dict[tuple[str, str], np.ndarray] | None = None,
        seed: int | None = None,
        target_spread: int = 0,
        spread_decay: float = 0.5,
        overfit_batches: int = 0,
    ) -> None:
        super().__init__()
        self.genome, self.sites, self.splits, self.shift = genome, sites, splits, shift
        self.labels = labels
        self.n_streams, self.seg_len, self.lookahead, self.burn_in = n_streams, seg_len, lookahead, burn_in
        self.eval_streams = eval_streams or n_streams
        self.seed = seed
        self.target_spread, self.spread_decay = int(target_spread), float(spread_decay)
        self.overfit_batches = int(overfit_batches)
        self.rank, self.world_size = 0, 1
        self.skip_train_batches = 0
        self._resume_at = 0
        self._datasets: dict[str, StreamDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            rank, world = int(trainer.global_rank), int(trainer.world_size)
        else:
            rank, world = 0, 1
        if (rank, world) != (self.rank, self.world_size):
            self._datasets.clear()
        self.rank, self.world_size = rank, world
        if self.labels is None:
            sites = self.sites if self.sites is not None else SiteSet([], [], [])
            self.labels = build_labels(self.genome, sites, self.shift)
        if not isinstance(self.splits, Splits):
            self.splits = make_splits(self.genome, self.splits)

    def regions(self, stage: str) -> list[Interval]:
        """Forward regions of outputs streamed for `stage` ('predict' = every contig, whole length; a split:
        the outputs that label the TSSs inside it, `labelled_outputs`)."""
        if stage == "predict":
            return [Interval(name, 0, c.length) for name, c in self.genome.contigs.items()]
        if stage not in STAGES:
            raise StreamError(f"unknown stage {stage!r}; use one of {list(STAGES)}")
        if not isinstance(self.splits, Splits):
            self.setup()
        regions = self.splits[stage]
        if not regions:
            raise StreamError(f"the {stage} split is empty; give it regions in the splits config")
        return labelled_outputs(self.genome, regions, self.shift)

    def streams(self, stage: str) -> SegmentStreams:
        """The `SegmentStreams` of `stage` for this rank (built once; use its `scatter`)."""
        return self._dataset(stage).streams

    def _dataset(self, stage: str) -> StreamDataset:
        # debug=overfit validates on the batches it trains on, scored against the 0/1 labels (the
        # training targets may be spread: task.target_spread)
        overfit_check = bool(self.overfit_batches) and stage == "validation"
        key = "validation_overfit" if overfit_check else stage
        if key not in self._datasets:
            layout = "train" if overfit_check else stage  # the streams' regions, count and seed
            regions = self.regions(layout)
            train = layout == "train"
            streams = SegmentStreams(
                self.genome,
                self._training_targets() if stage == "train" else self.labels,
                regions,
                n_streams=self.n_streams if train else self.eval_streams,
                seg_len=self.seg_len,
                lookahead=self.lookahead,
                burn_in=self.burn_in,
                rank=self.rank,
                world_size=self.world_size,
                seed=self.seed if train else None,
            )
            overfit = train and self.overfit_batches > 0
            self._datasets[key] = StreamDataset(
                streams,
                self._epoch if stage == "train" and self.seed is not None and not overfit else None,
                self._skip if stage == "train" else None,
                limit=self.overfit_batches if overfit else None,
            )
        return self._datasets[key]

    def _training_targets(self) -> dict[tuple[str, str], np.ndarray]:
        if not self.target_spread:
            return self.labels
        return spread_labels(self.labels, self.genome, self.target_spread, self.spread_decay)

    def _epoch(self) -> int:
        return int(self.trainer.current_epoch) if self.trainer is not None else 0

    def _skip(self) -> int:
        """Training batches to skip at the start of this epoch (used once): those a restored
        mid-epoch checkpoint already trained on, else `skip_train_batches`."""
        skip = self._resume_at or int(self.skip_train_batches)
        self._resume_at, self.skip_train_batches = 0, 0
        return skip if 0 < skip < len(self._datasets["train"]) else 0

    def _loader(self, stage: str) -> DataLoader:
        on_resume = (lambda n: setattr(self, "_resume_at", n)) if stage == "train" else None
        return StreamLoader(self._dataset(stage), on_resume)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
