"""PairedSketchDataModule: find pairs, decode them once into uint8 tensors, split, batch.

Batches leave the DataLoader as uint8 and become float [-1, 1] (and are augmented) only after
they reach the device, in ``on_after_batch_transfer``: four times less to copy, and no JPEG is
decoded twice in a run.
"""

from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from sketch2photo.data.augment import PairedAugment
from sketch2photo.data.images import (
    BadImageError,
    open_image,
    photo_tensor,
    sketch_to_input,
    sketch_tensor,
    split_aligned,
    to_model_range,
)
from sketch2photo.data.layouts import LAYOUTS, Pair, find_pairs
from sketch2photo.data.synthetic import write_dataset
from sketch2photo.errors import UserError

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test")


@dataclass
class CachedPairs(Dataset):
    """Decoded pairs: sketches uint8 (N, 1, H, W), photos uint8 (N, 3, H, W)."""

    sketches: torch.Tensor
    photos: torch.Tensor
    pairs: list[Pair]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        return {"sketch": self.sketches[index], "photo": self.photos[index], "index": index}

    def subset(self, indices: list[int]) -> CachedPairs:
        if indices == list(range(len(self.pairs))):
            return self  # no copy: a second cache-sized tensor would double the peak memory
        keep = torch.as_tensor(indices, dtype=torch.long)
        return CachedPairs(self.sketches[keep], self.photos[keep], [self.pairs[i] for i in indices])


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
        _check_config(self.hparams)
        augment = dict(augment or {})
        self.augment_stop_after = augment.pop("stop_after", 1.0)
        if not 0.0 <= self.augment_stop_after <= 1.0:
            raise UserError(f"data.augment.stop_after={self.augment_stop_after} must be a fraction of the epochs, in [0, 1].")
        self.augment = PairedAugment(image_size, **augment) if augment.pop("enabled", False) else None
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.sets: dict[str, CachedPairs] = {}
        self.shuffle_rng = torch.Generator().manual_seed(split_seed)

    # -- finding and caching -------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.hparams.synthetic_pairs:
            write_dataset(self.data_dir, self.hparams.synthetic_pairs, size=self.hparams.image_size)

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        if self.hparams.synthetic_pairs:
            self.prepare_data()  # also when used outside a Trainer
        started = time.perf_counter()
        listing = find_pairs(self.data_dir, self.hparams.layout)
        problems = list(listing.problems)
        cached = {}
        for split, pairs in listing.splits.items():
            cached[split], bad = self._decode(pairs)
            problems += bad
        if problems and self.hparams.on_bad_file == "error":
            raise UserError(
                f"{len(problems)} problem(s) in the dataset at {self.data_dir}:\n  - "
                + "\n  - ".join(problems)
                + "\nFix or remove these files, or set data.on_bad_file=skip to train on the pairs that are fine."
            )
        for problem in problems:
            log.warning("skipped: %s", problem)
        self.sets = self._split(cached)
        if not self.sets.get("train"):
            raise UserError(f"no usable training pairs in {self.data_dir} after skipping {len(problems)} bad one(s).")
        counts = ", ".join(f"{stage} {len(self.sets[stage])}" for stage in STAGES if stage in self.sets)
        log.info(
            "data: %d pairs used from %s (%s); %d problem(s) skipped, %d other files ignored; %dpx, cached in %.1fs",
            sum(len(s) for s in cached.values()), self.data_dir, counts, len(problems), len(listing.ignored),
            self.hparams.image_size, time.perf_counter() - started,
        )

    def _decode(self, pairs: list[Pair]) -> tuple[CachedPairs, list[str]]:
        size = self.hparams.image_size
        sketches = torch.empty(len(pairs), 1, size, size, dtype=torch.uint8)
        photos = torch.empty(len(pairs), 3, size, size, dtype=torch.uint8)
        sketch_side = "left" if self.hparams.ab_order == "sketch_left" else "right"

        def decode(index: int) -> str | None:
            pair = pairs[index]
            try:
                if pair.aligned:
                    sketch, photo = split_aligned(open_image(pair.sketch), pair.sketch, sketch_side)
                else:
                    sketch, photo = open_image(pair.sketch), open_image(pair.photo)
                    if not _same_aspect(sketch.size, photo.size):
                        return (
                            f"{pair.sketch} is {sketch.size[0]}x{sketch.size[1]} but {pair.photo} is "
                            f"{photo.size[0]}x{photo.size[1]}: a pair must have the same aspect ratio to stay aligned"
                        )
                sketches[index], photos[index] = sketch_tensor(sketch, size), photo_tensor(photo, size)
            except BadImageError as error:
                return str(error)
            return None

        threads = self.hparams.decode_threads or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=threads) as pool:
            errors = list(pool.map(decode, range(len(pairs))))
        good = [i for i, error in enumerate(errors) if error is None]
        return CachedPairs(sketches, photos, pairs).subset(good), [e for e in errors if e is not None]

    def _split(self, cached: dict[str, CachedPairs]) -> dict[str, CachedPairs]:
        """Predefined folders win; the pool ('all' or 'train') is split by the split settings."""
        pool = cached.get("all") or cached.get("train")
        given = {stage: cached[stage] for stage in ("val", "test") if stage in cached}
        hp = self.hparams
        if pool is None:
            return given
        if hp.split == "none":
            return {"train": pool, **given}
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(hp.split_seed)).tolist()
        if hp.folds:
            if hp.folds > len(pool):
                raise UserError(f"data.folds={hp.folds} is more than the {len(pool)} pairs available; use at most {len(pool)}.")
            held_out = set(order[hp.fold :: hp.folds])
            train = [i for i in range(len(pool)) if i not in held_out]
            val = pool.subset(sorted(held_out))
            return {"train": pool.subset(train), "val": val, "test": given.get("test", val)}
        sets = dict(given)
        for stage, fraction in (("val", hp.val_fraction), ("test", hp.test_fraction)):
            if stage not in sets and fraction > 0:
                count = max(1, round(len(pool) * fraction))
                sets[stage], order = pool.subset(sorted(order[:count])), order[count:]
        if not order:
            raise UserError(
                f"data.val_fraction={hp.val_fraction} and data.test_fraction={hp.test_fraction} leave no training "
                f"pairs out of {len(pool)}; lower them or use data.split=none."
            )
        sets["train"] = pool.subset(sorted(order))
        return sets

    # -- batches ------------------------------------------------------------------------
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
            from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

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
        if self.augment is not None and self.trainer is not None and self.trainer.training and self._augmenting():
            sketches, photos = self.augment(sketches, photos)
        return {"sketch": sketches, "photo": photos, "index": batch["index"]}

    def _augmenting(self) -> bool:
        """Augment in the first stop_after of the epochs; the last ones fit the pairs as they are,
        so the model ends on the image scale it will be used at."""
        max_epochs = self.trainer.max_epochs
        return max_epochs is None or max_epochs < 0 or self.trainer.current_epoch < self.augment_stop_after * max_epochs

    def has(self, stage: str) -> bool:
        return len(self.sets.get(stage, ())) > 0

    def sample_batch(self, count: int, stage: str | None = None) -> dict:
        """The first `count` pairs of `stage` (val if there is one, else train), ready for the network."""
        stage = stage or ("val" if self.has("val") else "train")
        dataset = self.sets[stage]
        count = min(count, len(dataset))
        return {
            "sketch": sketch_to_input(dataset.sketches[:count]),
            "photo": to_model_range(dataset.photos[:count]),
        }

    # -- exact resume: the shuffle order and augmentation draws continue where they stopped ----
    def state_dict(self) -> dict:
        return {"shuffle_rng": self.shuffle_rng.get_state(), "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self.shuffle_rng.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])


def _same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return math.isclose(a[0] / a[1], b[0] / b[1], rel_tol=0.02)


def _check_config(hp) -> None:
    """Reject bad data settings before anything is read."""
    if not isinstance(hp.image_size, int) or hp.image_size < 8:
        raise UserError(f"data.image_size={hp.image_size!r} must be an integer of at least 8 (the seed used 128).")
    if hp.batch_size is not None and (not isinstance(hp.batch_size, int) or hp.batch_size <= 0):
        raise UserError(f"data.batch_size={hp.batch_size!r} must be a positive integer, or null for the full batch.")
    if hp.layout not in LAYOUTS:
        raise UserError(f"data.layout={hp.layout!r} must be one of {', '.join(LAYOUTS)}.")
    if hp.ab_order not in ("sketch_left", "photo_left"):
        raise UserError(f"data.ab_order={hp.ab_order!r} must be sketch_left or photo_left.")
    if hp.split not in ("random", "none"):
        raise UserError(f"data.split={hp.split!r} must be 'random' (val/test fractions or folds) or 'none' (train on all).")
    if hp.on_bad_file not in ("error", "skip"):
        raise UserError(f"data.on_bad_file={hp.on_bad_file!r} must be 'error' or 'skip'.")
    for key in ("val_fraction", "test_fraction"):
        value = hp[key]
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise UserError(f"data.{key}={value!r} must be in [0, 1).")
    if hp.val_fraction + hp.test_fraction >= 1.0:
        raise UserError(
            f"data.val_fraction={hp.val_fraction} + data.test_fraction={hp.test_fraction} >= 1 leaves no training data."
        )
    if hp.folds is not None:
        if not isinstance(hp.folds, int) or hp.folds < 2:
            raise UserError(f"data.folds={hp.folds!r} must be an integer of at least 2, or null for no cross-validation.")
        if not isinstance(hp.fold, int) or not 0 <= hp.fold < hp.folds:
            raise UserError(f"data.fold={hp.fold!r} is out of range: with data.folds={hp.folds} use 0..{hp.folds - 1}.")
    if hp.num_workers < 0:
        raise UserError(f"data.num_workers={hp.num_workers} must be >= 0.")
