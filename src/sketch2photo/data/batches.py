"""PairBatches: from sets of uint8 pairs to batches on the device, for both data modules.

A subclass fills `self.sets` (stage -> map-style dataset of {"sketch": uint8 (1, H, W), "photo":
uint8 (3, H, W), "index"}) and sets `self.batch_size`, `self.augment`, `self.hint_sampler` and
`hparams.num_workers`, and says how the training pairs are served; the rest is here: validation and
test loaders that count every pair once across DDP ranks, the conversion to float [-1, 1], the
augmentation and the simulated colour hints on the device, and the pairs the sample grids show.
"""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from sketch2photo.data.augment import PairedAugment
from sketch2photo.data.hints import PLACEMENTS, HintSampler
from sketch2photo.data.images import sketch_to_input, to_model_range
from sketch2photo.errors import UserError

STAGES = ("train", "val", "test")


class PairBatches(LightningDataModule):
    sets: dict
    hint_sampler: HintSampler | None = None
    # what evaluation asks for (s2p-eval hints=...): None draws counts as in training
    hint_count: int | None = None
    hint_placement: str = "random"

    @staticmethod
    def hints_from(settings: dict | None) -> HintSampler | None:
        """data.hints.* as the batches use it: None unless enabled (model.net.hint_input turns it on)."""
        settings = dict(settings or {})
        return HintSampler(**settings) if settings.get("enabled") else None

    def evaluate_with_hints(self, count: int, placement: str = "random", seed: int = 0,
                            settings: dict | None = None) -> None:
        """Serve every evaluated image exactly `count` simulated hints, placed by `placement`, drawn
        as data.hints.* `settings` say (patch sizes, within_region; HintSampler's defaults without)."""
        if placement not in PLACEMENTS:
            raise UserError(f"hint placement {placement!r} must be one of {', '.join(PLACEMENTS)}.")
        self.hint_sampler = HintSampler(**{**(settings or {}), "enabled": True, "seed": seed})
        self.hint_count, self.hint_placement = count, placement


    @staticmethod
    def augmentation(image_size: int, settings: dict | None) -> PairedAugment | None:
        """data.augment.* as the module applies it: None unless enabled."""
        settings = dict(settings or {})
        return PairedAugment(image_size, **settings) if settings.pop("enabled", False) else None

    def set_sizes(self) -> str:
        """'train 16, val 2, test 2', for the log."""
        return ", ".join(f"{stage} {len(self.sets[stage])}" for stage in STAGES if stage in self.sets)

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
        if self.augment is not None and training and self.augment.active(trainer.current_epoch, trainer.max_epochs):
            sketches, photos = self.augment(sketches, photos)
        batch = {"sketch": sketches, "photo": photos, "index": batch["index"]}
        if self.hint_sampler is not None:
            batch["hints"], batch["photo"] = self.simulated_hints(sketches, photos, batch["index"], training)
        return batch

    def simulated_hints(self, sketches: torch.Tensor, photos: torch.Tensor, index: torch.Tensor,
                        training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(hint map, target). In training the target is hue-jittered first, and the generator is
        seeded by (seed, rank, batch number): no state to save, and a resumed run, whose batch
        count Lightning restores, draws the same hints. Otherwise each image gets its own hints,
        seeded by (seed, its index), whatever the batch it comes in or the device."""
        sampler = self.hint_sampler
        if training:
            trainer = self.trainer
            rank = trainer.global_rank if trainer is not None else 0
            batch = trainer.fit_loop.epoch_loop.batch_progress.total.ready if trainer is not None else 0
            rng = torch.Generator(photos.device).manual_seed(hash((sampler.seed, rank, batch)) & 0xFFFF_FFFF_FFFF)
            photos = sampler.jitter_hue(photos, rng)
            return sampler.draw(photos, sketches, rng), photos
        maps = [sampler.draw(photos[i:i + 1].cpu(), sketches[i:i + 1].cpu(),
                             torch.Generator().manual_seed(sampler.seed * 1_000_003 + image),
                             self.hint_count, self.hint_placement)
                for i, image in enumerate(index.tolist())]
        return torch.cat(maps).to(photos.device), photos

    def sample_batch(self, count: int, stage: str | None = None) -> dict:
        """Up to `count` pairs for sample grids, ready for the network: the first of `stage` (val if
        there is one, else train). A validation set smaller than that is filled up with training
        pairs, which `from_train` marks."""
        stage = stage or ("val" if self.has("val") else "train")
        chosen = [(self.sets[stage][i], False) for i in range(min(count, len(self.sets[stage])))]
        if stage != "train":
            chosen += [(self.sets["train"][i], True) for i in range(min(count - len(chosen), len(self.sets["train"])))]
        batch = {
            "sketch": sketch_to_input(torch.stack([pair["sketch"] for pair, _ in chosen])),
            "photo": to_model_range(torch.stack([pair["photo"] for pair, _ in chosen])),
            "from_train": [from_train for _, from_train in chosen],
        }
        if self.hint_sampler is not None:  # the same hints every time
            batch["hints"] = self.hint_sampler.draw(batch["photo"], batch["sketch"], torch.Generator().manual_seed(0))
        return batch
