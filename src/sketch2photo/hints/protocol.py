"""Which simulated hints a batch gets: in training, drawn afresh for every batch; in evaluation, the
same ones for an image whatever the batch, the device or the checkpoint scored.

Training's generator is seeded by (seed, DDP rank, batch number): no state to save, and a resumed
run, whose batch count Lightning restores, draws the same hints as an uninterrupted one. The
targets are hue-jittered first (data.hints.hue_jitter). Evaluation (validation, and s2p-eval
hints=...) seeds each image by (seed, its index); s2p-eval also fixes the count and the placement.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sketch2photo.checks import HINT_PLACEMENTS as PLACEMENTS
from sketch2photo.errors import UserError
from sketch2photo.hints.simulate import HintSampler


@dataclass
class HintDraws:
    """The hints a data module adds to its batches. count None: as many as training draws."""

    sampler: HintSampler
    count: int | None = None
    placement: str = "random"

    @classmethod
    def from_settings(cls, settings: dict | None) -> HintDraws | None:
        """data.hints.* as the batches use it: None unless enabled (model.net.hint_input turns it
        on)."""
        settings = dict(settings or {})
        return cls(HintSampler(**settings)) if settings.get("enabled") else None

    @classmethod
    def for_evaluation(
        cls, count: int, placement: str = "random", seed: int = 0, settings: dict | None = None
    ) -> HintDraws:
        """Exactly `count` hints an image, placed by `placement`, drawn as data.hints.* `settings`
        say (patch sizes, within_region; HintSampler's defaults without)."""
        if placement not in PLACEMENTS:
            raise UserError(f"hint placement {placement!r} must be one of {', '.join(PLACEMENTS)}.")
        return cls(
            HintSampler(**{**(settings or {}), "enabled": True, "seed": seed}), count, placement
        )

    def training(
        self, sketches: Tensor, photos: Tensor, rank: int, batch: int
    ) -> tuple[Tensor, Tensor]:
        """(hint map, the hue-jittered target) for training batch number `batch` on DDP rank
        `rank`."""
        sampler = self.sampler
        rng = torch.Generator(photos.device).manual_seed(
            hash((sampler.seed, rank, batch)) & 0xFFFF_FFFF_FFFF
        )
        photos = sampler.jitter_hue(photos, rng)
        return sampler.draw(photos, sketches, rng), photos

    def evaluation(self, sketches: Tensor, photos: Tensor, index: Tensor) -> Tensor:
        """The hint map of each image, seeded by (seed, its index in its set)."""
        sampler = self.sampler
        maps = [
            sampler.draw(
                photos[i : i + 1].cpu(),
                sketches[i : i + 1].cpu(),
                torch.Generator().manual_seed(sampler.seed * 1_000_003 + image),
                self.count,
                self.placement,
            )
            for i, image in enumerate(index.tolist())
        ]
        return torch.cat(maps).to(photos.device)

    def fixed(self, sketches: Tensor, photos: Tensor) -> Tensor:
        """The same hints every time, whatever the batch: the sample grids'."""
        return self.sampler.draw(photos, sketches, torch.Generator().manual_seed(0))
