"""PairedSketchDataModule: the wiring from pairs on disk to batches on the device.

    find the pairs (layouts.py) -> decode them once into uint8 tensors (cache.py)
    -> split (splits.py) -> batches of uint8 -> on the device: float [-1, 1], augmented (augment.py)

Batches leave the DataLoader as uint8 and become float (and are augmented) only after they reach
the device, in ``on_after_batch_transfer``: four times less to copy, and no JPEG is decoded twice
in a run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from sketch2photo.checks import check_data, check_split
from sketch2photo.data.augment import PairedAugment
from sketch2photo.data.cache import CachedPairs, decode_pairs
from sketch2photo.data.images import sketch_to_input, to_model_range
from sketch2photo.data.layouts import check_layout, find_pairs
from sketch2photo.data.splits import split_indices
from sketch2photo.data.synthetic import write_dataset
from sketch2photo.errors import UserError

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test")
MIN_VALIDATION_PAIRS = 4  # fewer, and "best" is picked on a handful of images
FULL_BATCH_WARNING = 1024  # pairs in one full batch before a warning (the reference experiment has 20)


class PairedSketchDataModule(LightningDataModule):
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
        on_bad_file: str = "error",
        synthetic_pairs: int | None = None,
        num_workers: int = 0,
        decode_threads: int | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)
        check_data(image_size, batch_size, on_bad_file, num_workers)
        check_layout(layout, ab_order)
        check_split(split, val_fraction, test_fraction, folds, fold)
        augment = dict(augment or {})
        self.augment = PairedAugment(image_size, **augment) if augment.pop("enabled", False) else None
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.sets: dict[str, CachedPairs] = {}
        self.shuffle_rng = torch.Generator().manual_seed(split_seed)

    # -- finding, decoding, splitting ------------------------------------------------------
    def prepare_data(self) -> None:
        if self.hparams.synthetic_pairs:
            write_dataset(self.data_dir, self.hparams.synthetic_pairs, size=self.hparams.image_size)

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        if self.hparams.synthetic_pairs:
            self.prepare_data()  # also when used outside a Trainer
        hp = self.hparams
        started = time.perf_counter()
        listing = find_pairs(self.data_dir, hp.layout)
        problems = list(listing.problems)
        decoded = {}
        for folder, pairs in listing.splits.items():
            decoded[folder], bad = decode_pairs(pairs, hp.image_size, hp.ab_order, hp.decode_threads)
            problems += bad
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
            raise UserError(f"no usable training pairs in {self.data_dir} after skipping {len(problems)} bad one(s).")
        self._warn_about_sizes()
        counts = ", ".join(f"{stage} {len(self.sets[stage])}" for stage in STAGES if stage in self.sets)
        log.info(
            "data: %d pairs used from %s (%s); %d problem(s) skipped, %d other files ignored; %dpx, cached in %.1fs",
            sum(len(s) for s in decoded.values()), self.data_dir, counts, len(problems), len(listing.ignored),
            hp.image_size, time.perf_counter() - started,
        )

    def _split(self, decoded: dict[str, CachedPairs]) -> dict[str, CachedPairs]:
        """Predefined folders (val/, test/) stay as they are; the pool ('all' or 'train') is split."""
        sets = {stage: decoded[stage] for stage in ("val", "test") if stage in decoded}
        pool = decoded.get("all") or decoded.get("train")
        if pool is None:
            return sets
        hp = self.hparams
        indices = split_indices(len(pool), hp.split, hp.val_fraction, hp.test_fraction, hp.folds, hp.fold,
                                hp.split_seed, given=tuple(sets))
        subsets: dict[tuple[int, ...], CachedPairs] = {}  # the same indices give the same object (folds: test is val)
        for stage, chosen in indices.items():
            sets[stage] = subsets.setdefault(tuple(chosen), pool.subset(chosen))
        return sets

    def _warn_about_sizes(self) -> None:
        val, train = len(self.sets.get("val", ())), len(self.sets["train"])
        if 0 < val < MIN_VALIDATION_PAIRS:
            log.warning(
                "only %d validation pair(s): best.ckpt and early stopping pick by them, which is noise. Use more "
                "(data.val_fraction, now %s) or cross-validation (data.folds=5 data.fold=0..4).",
                val, self.hparams.val_fraction)
        if self.batch_size is None and train > FULL_BATCH_WARNING:
            size = self.hparams.image_size
            gigabytes = train * 6 * size * size * 4 / 1e9  # float32 sketches (3 channels) and photos
            log.warning(
                "data.batch_size=null puts all %d training pairs in one batch: %.1f GB for the batch alone at %d px, "
                "several times that for the network's activations. Set data.batch_size (e.g. 16).",
                train, gigabytes, size)

    def test_on(self, stage: str) -> None:
        """Serve the `stage` pairs to Trainer.test (s2p-eval subset=val|train)."""
        self.sets["test"] = self.sets[stage]

    # -- batches ---------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val") if "val" in self.sets else []

    def test_dataloader(self) -> DataLoader | list:
        return self._loader("test") if "test" in self.sets else []

    def _loader(self, stage: str, shuffle: bool = False) -> DataLoader:
        dataset = self.sets[stage]
        sampler = None
        if not shuffle and self.trainer is not None and self.trainer.world_size > 1:
            # Every pair is evaluated exactly once: no padding duplicates in val/test metrics. A set
            # smaller than the world (every rank needs a batch) is evaluated whole by each rank:
            # each pair then counts world_size times, which leaves the means unchanged.
            world, rank = self.trainer.world_size, self.trainer.global_rank
            if len(dataset) < world:
                world, rank = 1, 0
            sampler = UnrepeatedDistributedSampler(dataset, world, rank, shuffle=False)
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=self.batch_size or len(dataset),
            shuffle=shuffle,
            sampler=sampler,
            generator=self.shuffle_rng if shuffle else None,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.trainer is not None and self.trainer.strategy.root_device.type == "cuda",
        )

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        sketches, photos = sketch_to_input(batch["sketch"]), to_model_range(batch["photo"])
        trainer = self.trainer
        if self.augment is not None and trainer is not None and trainer.training \
                and self.augment.active(trainer.current_epoch, trainer.max_epochs):
            sketches, photos = self.augment(sketches, photos)
        return {"sketch": sketches, "photo": photos, "index": batch["index"]}

    def has(self, stage: str) -> bool:
        return len(self.sets.get(stage, ())) > 0

    def sample_batch(self, count: int, stage: str | None = None) -> dict:
        """Up to `count` pairs for sample grids, ready for the network: the first of `stage` (val if
        there is one, else train). A validation set smaller than that is filled up with training
        pairs, which `from_train` marks."""
        stage = stage or ("val" if self.has("val") else "train")
        chosen = [(self.sets[stage], i, False) for i in range(min(count, len(self.sets[stage])))]
        if stage != "train":
            chosen += [(self.sets["train"], i, True) for i in range(min(count - len(chosen), len(self.sets["train"])))]
        return {
            "sketch": sketch_to_input(torch.stack([pairs.sketches[i] for pairs, i, _ in chosen])),
            "photo": to_model_range(torch.stack([pairs.photos[i] for pairs, i, _ in chosen])),
            "from_train": [from_train for _, _, from_train in chosen],
        }

    # -- exact resume: the shuffle order and augmentation draws continue where they stopped ----
    def state_dict(self) -> dict:
        return {"shuffle_rng": self.shuffle_rng.get_state(), "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self.shuffle_rng.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])
