"""PairedSketchDataModule (data=sketch2photo, data=synthetic): from pairs on disk to batches on the
device.

    find the pairs (layouts.py) -> decode them into uint8 tensors (decoded.py), once for every run
    (data.cache=disk: disk_cache.py) or in this run's RAM (data.cache=memory)
    -> split (splits.py) -> batches of uint8 -> on the device: float [-1, 1],
    augmented (augment.py), with simulated hints (base.py)

Batches leave the DataLoader as uint8 and become float (and are augmented) only after they reach
the device, in ``on_after_batch_transfer``: four times less to copy, and no JPEG is decoded twice
in a run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from sketch2photo.checks import check_data, check_split
from sketch2photo.data.corpora.synthetic import COLOURINGS, write_dataset
from sketch2photo.data.datamodules.base import PairDataModule
from sketch2photo.data.decoded import CachedPairs, decode_listing
from sketch2photo.data.disk_cache import open_disk_cache
from sketch2photo.data.layouts import check_layout, find_pairs
from sketch2photo.data.splits import split_indices
from sketch2photo.errors import UserError

log = logging.getLogger(__name__)

MIN_VALIDATION_PAIRS = 4  # fewer, and "best" is picked on a handful of images
FULL_BATCH_WARNING = (
    1024  # pairs in one full batch before a warning (the reference experiment has 20)
)


class PairedSketchDataModule(PairDataModule):
    def __init__(
        self,
        data_dir: str,
        image_size: int = 128,
        batch_size: int | None = None,
        layout: str = "auto",
        ab_order: str = "sketch_left",
        split: str = "random",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        folds: int | None = None,
        fold: int = 0,
        split_seed: int = 0,
        augment: dict | None = None,
        hints: dict | None = None,
        on_bad_file: str = "error",
        synthetic_pairs: int | None = None,
        synthetic_colours: str = "by_shape",
        num_workers: int = 0,
        decode_threads: int | None = None,
        cache: str = "memory",
        cache_dir: str | None = None,
    ):
        check_data(image_size, batch_size, on_bad_file, num_workers, cache, cache_dir)
        check_layout(layout, ab_order)
        if synthetic_colours not in COLOURINGS:
            raise UserError(
                f"data.synthetic_colours={synthetic_colours!r} must be one of {', '.join(COLOURINGS)}."
            )
        check_split(split, val_fraction, test_fraction, folds, fold)
        super().__init__(image_size, augment, hints)
        self.save_hyperparameters(logger=False)
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.sets: dict[str, CachedPairs] = {}
        self.shuffle_rng = torch.Generator().manual_seed(split_seed)

    # -- finding, decoding, splitting ------------------------------------------------------
    def prepare_data(self) -> None:
        if self.hparams.synthetic_pairs:
            write_dataset(
                self.data_dir,
                self.hparams.synthetic_pairs,
                size=self.hparams.image_size,
                colours=self.hparams.synthetic_colours,
            )

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        if self.hparams.synthetic_pairs:
            self.prepare_data()  # also when used outside a Trainer
        hp = self.hparams
        started = time.perf_counter()
        listing = find_pairs(self.data_dir, hp.layout)
        if hp.cache == "disk":
            decoded, bad = open_disk_cache(
                listing,
                self.data_dir,
                hp.image_size,
                hp.ab_order,
                Path(hp.cache_dir).expanduser(),
                hp.decode_threads,
            )
        else:
            decoded, bad = decode_listing(listing, hp.image_size, hp.ab_order, hp.decode_threads)
        problems = listing.problems + bad
        if problems and hp.on_bad_file == "error":
            raise UserError(
                f"{len(problems)} problem(s) in the dataset at {self.data_dir}:\n  - "
                + "\n  - ".join(problems)
                + "\nFix or remove these files, or set data.on_bad_file=skip to train on the pairs that are fine."
            )
        for problem in problems:
            log.warning("skipped: %s", problem)
        self.sets = self._split(decoded)
        if not self.sets.get("train"):
            raise UserError(
                f"no usable training pairs in {self.data_dir} after skipping {len(problems)} bad one(s)."
            )
        self._warn_about_sizes()
        log.info(
            "data: %d pairs used from %s (%s); %d problem(s) skipped, %d other files ignored; %dpx, %s cache ready in %.1fs",
            sum(len(s) for s in decoded.values()),
            self.data_dir,
            self.set_sizes(),
            len(problems),
            len(listing.ignored),
            hp.image_size,
            hp.cache,
            time.perf_counter() - started,
        )

    @property
    def attribution(self) -> str | None:
        """The dataset folder's ATTRIBUTION.txt (a built-in corpus writes one), if it has one."""
        path = self.data_dir / "ATTRIBUTION.txt"
        return path.read_text().strip() if path.is_file() else None

    def _split(self, decoded: dict[str, CachedPairs]) -> dict[str, CachedPairs]:
        """Predefined folders (val/, test/) stay as they are; the pool ('all' or 'train') is
        split."""
        sets = {stage: decoded[stage] for stage in ("val", "test") if stage in decoded}
        pool = decoded.get("all") or decoded.get("train")
        if pool is None:
            return sets
        hp = self.hparams
        indices = split_indices(
            len(pool),
            hp.split,
            hp.val_fraction,
            hp.test_fraction,
            hp.folds,
            hp.fold,
            hp.split_seed,
            given=tuple(sets),
        )
        subsets: dict[
            tuple[int, ...], CachedPairs
        ] = {}  # the same indices give the same object (folds: test is val)
        for stage, chosen in indices.items():
            sets[stage] = subsets.setdefault(tuple(chosen), pool.subset(chosen))
        return sets

    def _warn_about_sizes(self) -> None:
        val, train = len(self.sets.get("val", ())), len(self.sets["train"])
        if 0 < val < MIN_VALIDATION_PAIRS:
            log.warning(
                "only %d validation pair(s): best.ckpt and early stopping pick by them, which is noise. Use more "
                "(data.val_fraction, now %s) or cross-validation (data.folds=5 data.fold=0..4).",
                val,
                self.hparams.val_fraction,
            )
        if self.batch_size is None and train > FULL_BATCH_WARNING:
            size = self.hparams.image_size
            gigabytes = (
                train * 6 * size * size * 4 / 1e9
            )  # float32 sketches (3 channels) and photos
            log.warning(
                "data.batch_size=null puts all %d training pairs in one batch: %.1f GB for the batch alone at %d px, "
                "several times that for the network's activations. Set data.batch_size (e.g. 16).",
                train,
                gigabytes,
                size,
            )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle_with=self.shuffle_rng)

    # -- exact resume: the shuffle order and augmentation draws continue where they stopped ----
    def state_dict(self) -> dict:
        return {"shuffle_rng": self.shuffle_rng.get_state(), "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self.shuffle_rng.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])
