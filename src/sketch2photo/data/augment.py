"""Paired augmentation: one random flip and crop/scale jitter shared by a sketch and its photo, and
the epochs it runs in."""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from sketch2photo.checks import check_augment

WHITE = 1.0  # in the model's [-1, 1] range: what affine moves bring in at the borders


class PairedAugment:
    """Applied on device to float batches; each pair draws its own parameters.

    flip: random horizontal flip with probability 0.5.
    degrees, translate: RandomAffine rotation (up to +-degrees) and shift (up to this fraction of
        the size), filling the uncovered border with white, the background of line art (0 turns it
        off).
    min_scale: RandomResizedCrop keeps a square crop of at least this area fraction and scales it
        back to the full size (1.0 turns the crop off).
    p: the probability that a pair is augmented at all; the others are seen exactly as they are.
    stop_after: the fraction of max_epochs that is augmented; the last epochs fit the pairs as they
        are, so the model ends on the image scale it will be used at.
    """

    def __init__(
        self,
        image_size: int,
        flip: bool = True,
        min_scale: float = 0.8,
        degrees: float = 0.0,
        translate: float = 0.0,
        p: float = 1.0,
        stop_after: float = 1.0,
    ):
        check_augment(min_scale, degrees, translate, p, stop_after)
        self.stop_after = stop_after
        steps = []
        if flip:
            steps.append(v2.RandomHorizontalFlip(p=0.5))
        if degrees or translate:
            steps.append(
                v2.RandomAffine(degrees=degrees, translate=(translate, translate), fill=WHITE)
            )
        if min_scale < 1.0:
            steps.append(
                v2.RandomResizedCrop(
                    image_size, scale=(min_scale, 1.0), ratio=(1.0, 1.0), antialias=True
                )
            )
        self.transform = None
        if steps and p > 0:
            self.transform = v2.Compose(steps) if p == 1.0 else v2.RandomApply(steps, p=p)

    def active(self, epoch: int, max_epochs: int | None) -> bool:
        """Whether `epoch` (0-based) is one of the augmented epochs."""
        return max_epochs is None or max_epochs < 0 or epoch < self.stop_after * max_epochs

    def __call__(
        self, sketches: torch.Tensor, photos: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.transform is None:
            return sketches, photos
        out_sketches, out_photos = torch.empty_like(sketches), torch.empty_like(photos)
        for i in range(sketches.shape[0]):
            out_sketches[i], out_photos[i] = self.transform(
                tv_tensors.Image(sketches[i]), tv_tensors.Image(photos[i])
            )
        return out_sketches, out_photos
