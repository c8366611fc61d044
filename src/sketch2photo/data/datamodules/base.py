"""PairDataModule: what both data modules share, from sets of uint8 pairs to batches on the device.

A subclass fills `self.sets` (stage -> map-style dataset of {"sketch": uint8 (1, H, W), "photo":
uint8 (3, H, W), "index"}), passes its data.augment and data.hints settings to __init__, sets
`self.batch_size` and `hparams.num_workers`, and says how the training pairs are served; the rest is
here: validation and test loaders that count every pair once across DDP ranks, the conversion to
float [-1, 1], the augmentation and the simulated colour hints on the device, and the pairs the
sample grids show.
"""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from sketch2photo.data.augment import PairedAugment
from sketch2photo.data.images import sketch_to_input, to_model_range
from sketch2photo.hints.protocol import HintDraws

STAGES = ("train", "val", "test")


class PairDataModule(LightningDataModule):
    sets: dict

    def __init__(self, image_size: int, augment: dict | None, hints: dict | None):
        super().__init__()
        settings = dict(augment or {})  # data.augment.*: None unless enabled
        self.augment = (
            PairedAugment(image_size, **settings) if settings.pop("enabled", False) else None
        )
        self.hints = HintDraws.from_settings(hints)

    def evaluate_with_hints(
        self, count: int, placement: str = "random", seed: int = 0, settings: dict | None = None
    ) -> None:
        """Serve every evaluated image exactly `count` simulated hints (s2p-eval hints=...)."""
        self.hints = HintDraws.for_evaluation(count, placement, seed, settings)

    @property
    def attribution(self) -> str | None:
        """Whose data this is and its licence, which every run on it carries (ATTRIBUTION.txt)."""
        return None

    def set_sizes(self) -> str:
        """'train 16, val 2, test 2', for the log."""
        return ", ".join(
            f"{stage} {len(self.sets[stage])}" for stage in STAGES if stage in self.sets
        )

    def pin_memory(self) -> bool:
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def has(self, stage: str) -> bool:
        return len(self.sets.get(stage, ())) > 0

    def test_on(self, stage: str) -> None:
        """Serve the `stage` pairs to Trainer.test (s2p-eval subset=val|train)."""
        self.sets["test"] = self.sets[stage]

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val") if "val" in self.sets else []

    def test_dataloader(self) -> DataLoader | list:
        return self._loader("test") if "test" in self.sets else []

    def _loader(self, stage: str, shuffle_with: torch.Generator | None = None) -> DataLoader:
        """Shuffled by `shuffle_with` when given (training), else in order."""
        dataset = self.sets[stage]
        sampler = None
        if shuffle_with is None and self.trainer is not None and self.trainer.world_size > 1:
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
            shuffle=shuffle_with is not None,
            sampler=sampler,
            generator=shuffle_with,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.pin_memory(),
        )

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        sketches, photos = sketch_to_input(batch["sketch"]), to_model_range(batch["photo"])
        trainer = self.trainer
        training = trainer is not None and trainer.training
        if (
            self.augment is not None
            and training
            and self.augment.active(trainer.current_epoch, trainer.max_epochs)
        ):
            sketches, photos = self.augment(sketches, photos)
        batch = {"sketch": sketches, "photo": photos, "index": batch["index"]}
        if self.hints is not None and training:
            rank, step = trainer.global_rank, trainer.fit_loop.epoch_loop.batch_progress.total.ready
            batch["hints"], batch["photo"] = self.hints.training(sketches, photos, rank, step)
        elif self.hints is not None:
            batch["hints"] = self.hints.evaluation(sketches, photos, batch["index"])
        return batch

    def sample_batch(self, count: int, stage: str | None = None) -> dict:
        """Up to `count` pairs for sample grids, ready for the network: the first of `stage` (val if
        there is one, else train). A validation set smaller than that is filled up with training
        pairs, which `from_train` marks."""
        stage = stage or ("val" if self.has("val") else "train")
        chosen = [(self.sets[stage][i], False) for i in range(min(count, len(self.sets[stage])))]
        if stage != "train":
            chosen += [
                (self.sets["train"][i], True)
                for i in range(min(count - len(chosen), len(self.sets["train"])))
            ]
        batch = {
            "sketch": sketch_to_input(torch.stack([pair["sketch"] for pair, _ in chosen])),
            "photo": to_model_range(torch.stack([pair["photo"] for pair, _ in chosen])),
            "from_train": [from_train for _, from_train in chosen],
        }
        if self.hints is not None:
            batch["hints"] = self.hints.fixed(batch["sketch"], batch["photo"])
        return batch
