"""Simulated colour hints, drawn from the targets: what training learns from and evaluation scores.

They follow Zhang et al. 2017 (Real-Time User-Guided Image Colorization): a geometric
count (p = 0.125: mean 7, and no hint at all for 1 image in 8), square patches of 1-9 px, each the
target's mean colour over the patch. Positions are drawn inside the figure, where people put them.
Everything runs on the batch's device from a seeded torch.Generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2.functional import adjust_hue

from sketch2photo.errors import UserError
from sketch2photo.hints import HINT_CHANNELS
from sketch2photo.regions import background_mask, label_components, regions_of


class HintSampler:
    """data.hints.*: how training simulates hints (see configs/data/hints/default.yaml).

    p: the geometric count's parameter; P(count >= k) = (1 - p)^k, mean (1 - p) / p.
    max_hints: the count's cap. min_size, max_size: patch sides in pixels, uniform.
    hue_jitter: the share of training targets whose hue is turned by a random angle first, hints
        drawn from the turned image, so that a shape's colour cannot be learnt from its outline.
    within_region: a patch keeps to the region its centre falls in (the paper it reaches without
        crossing a line) and takes the target's mean colour there, not a mix with the line and the
        region across it.
    threshold: the brightness (0..1) above which a sketch pixel is paper, as model.net's.
    seed: seeds the generator of training hints; validation draws the same hints every epoch.
    """

    def __init__(
        self,
        enabled: bool = False,
        p: float = 0.125,
        max_hints: int = 32,
        min_size: int = 1,
        max_size: int = 9,
        hue_jitter: float = 0.0,
        within_region: bool = False,
        threshold: float = 0.9,
        seed: int = 0,
    ):
        check_hints(p, max_hints, min_size, max_size, hue_jitter, within_region)
        self.enabled, self.p, self.max_hints = enabled, p, max_hints
        self.min_size, self.max_size, self.hue_jitter, self.within_region = (
            min_size,
            max_size,
            hue_jitter,
            within_region,
        )
        self.threshold, self.seed = threshold, seed

    def counts(self, batch: int, generator: torch.Generator, device: torch.device) -> Tensor:
        """(B,) int64: geometric on 0, 1, 2, ... by inverting its CDF, capped at max_hints."""
        uniform = torch.rand(batch, generator=generator, device=device).clamp_min(1e-12)
        return (
            torch.floor(torch.log(uniform) / math.log(1.0 - self.p))
            .clamp_(max=self.max_hints)
            .long()
        )

    def jitter_hue(self, photos: Tensor, generator: torch.Generator) -> Tensor:
        """Turn the hue of a hue_jitter share of (B, 3, H, W) photos in [-1, 1] by a random
        angle."""
        if self.hue_jitter <= 0:
            return photos
        batch = len(photos)
        chosen = torch.rand(batch, generator=generator, device=photos.device) < self.hue_jitter
        angles = torch.rand(batch, generator=generator, device=photos.device) - 0.5
        turned = torch.stack(
            [
                adjust_hue((photo + 1) / 2, angle)
                for photo, angle in zip(photos, angles.tolist(), strict=True)
            ]
        )
        return torch.where(chosen[:, None, None, None], turned * 2 - 1, photos)

    def draw(
        self,
        photos: Tensor,
        sketches: Tensor,
        generator: torch.Generator,
        count: int | None = None,
        placement: str = "random",
    ) -> Tensor:
        """(B, 3, H, W) targets and (B, 3, H, W) sketches in [-1, 1] -> (B, 4, H, W) hint map.

        count: every image gets exactly this many (evaluation); None draws the training count.
        placement: random (uniform inside the figure) | regions (one at the centre of each of the
            `count` largest regions, largest first; images with fewer regions get the rest at
            random).
        """
        batch, _, height, width = photos.shape
        device = photos.device
        regions = regions_of(sketches, background_mask(sketches, self.threshold), self.threshold)
        slots = self.max_hints if count is None else count
        if slots == 0:
            return photos.new_zeros(batch, HINT_CHANNELS, height, width)
        counts = (
            self.counts(batch, generator, device)
            if count is None
            else torch.full((batch,), count, device=device)
        )
        # uniform over the figure's paper; an image without any (a blank sketch) falls back to
        # everywhere
        weights = regions.flatten(1).float()
        weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, torch.ones_like(weights))
        positions = torch.multinomial(
            weights, slots, replacement=True, generator=generator
        )  # (B, K)
        if placement == "regions":
            centres = region_centres(regions, slots)
            positions = torch.where(centres >= 0, centres, positions)
        sizes = torch.randint(
            self.min_size, self.max_size + 1, (batch, slots), generator=generator, device=device
        )
        return paint_patches(
            photos,
            positions // width,
            positions % width,
            sizes,
            counts,
            paper=regions if self.within_region else None,
            largest=self.max_size,
        )


def paint_patches(
    photos: Tensor,
    rows: Tensor,
    cols: Tensor,
    sizes: Tensor,
    counts: Tensor,
    paper: Tensor | None = None,
    largest: int | None = None,
) -> Tensor:
    """Square patches of side `sizes` centred on (rows, cols), all (B, K), the first counts[b] of
    each image used, each painted with the mean of `photos` (B, 3, H, W) over it; later ones on top.

    paper: (B, 1, H, W) bool. A patch whose centre is paper keeps to the paper of the square it can
    reach from the centre without crossing a line, so a patch by an outline takes one region's
    colour, not its mix with the line and the region across it (a person picks one colour for one
    region). largest: a bound on the squares' `sizes` when the caller knows one (HintSampler's
    max_size), so that they need not be read back from the device."""
    batch, _, height, width = photos.shape
    top, left = rows - (sizes - 1) // 2, cols - (sizes - 1) // 2
    bottom, right = (top + sizes).clamp(0, height), (left + sizes).clamp(0, width)
    top, left = top.clamp(0, height), left.clamp(0, width)
    slots = rows.shape[1]
    used = torch.arange(slots, device=photos.device)[None, :] < counts[:, None]  # (B, K)
    numbers = torch.arange(1, slots + 1, device=photos.device, dtype=torch.int16)
    if paper is None:
        # squares: their means from an integral image, four lookups per patch, whatever its size
        integral = F.pad(photos.double().cumsum(2).cumsum(3), (1, 0, 1, 0)).flatten(
            2
        )  # (B, 3, (H + 1) * (W + 1))

        def corner(y: Tensor, x: Tensor) -> Tensor:
            return integral.gather(
                2, (y * (width + 1) + x)[:, None, :].expand(-1, 3, -1)
            )  # (B, 3, K)

        sums = corner(bottom, right) - corner(top, right) - corner(bottom, left) + corner(top, left)
        colours = (sums / ((bottom - top) * (right - left)).clamp_min(1)[:, None, :]).to(
            photos.dtype
        )  # (B, 3, K)
        # the last patch covering a pixel wins: the largest number (1-based) among them, from each
        # patch's own pixels, not a (B, K, H, W) map of all of them
        if largest is None:
            largest = int(sizes.max()) if sizes.numel() else 0
        steps = torch.arange(largest, device=photos.device)
        ys, xs = top[..., None] + steps, left[..., None] + steps  # (B, K, largest)
        covered = (
            (ys < bottom[..., None])[..., :, None]
            & (xs < right[..., None])[..., None, :]
            & used[..., None, None]
        )  # (B, K, largest, largest)
        pixels = torch.where(covered, ys[..., :, None] * width + xs[..., None, :], 0)
        topmost = torch.zeros(batch, height * width, dtype=torch.int16, device=photos.device)
        topmost.scatter_reduce_(
            1, pixels.flatten(1), torch.where(covered, numbers[:, None, None], 0).flatten(1), "amax"
        )
        topmost = topmost.view(batch, height, width)  # 0: no hint
    else:  # cut shapes: the mean over each patch's own pixels
        ys = torch.arange(height, device=photos.device)
        xs = torch.arange(width, device=photos.device)
        inside = (
            (ys[None, None, :, None] >= top[..., None, None])
            & (ys[None, None, :, None] < bottom[..., None, None])
            & (xs[None, None, None, :] >= left[..., None, None])
            & (xs[None, None, None, :] < right[..., None, None])
            & used[..., None, None]
        )  # (B, K, H, W)
        inside = keep_to_centre_region(inside, rows * width + cols, paper, int(sizes.max()))
        weights = inside.flatten(2).to(photos.dtype)  # (B, K, H * W)
        colours = (
            torch.einsum("bcn,bkn->bck", photos.flatten(2), weights)
            / weights.sum(2).clamp_min(1)[:, None, :]
        )
        # the last patch covering a pixel wins: its number (1-based) is the max over patches
        topmost = torch.where(inside, numbers[None, :, None, None], 0).amax(1)  # (B, H, W)
    mask = (topmost > 0)[:, None]
    index = (topmost.long() - 1).clamp_min(0).flatten(1)[:, None, :].expand(-1, 3, -1)
    rgb = colours.gather(2, index).view(batch, 3, height, width)
    return torch.cat([torch.where(mask, rgb, 0.0), mask.to(photos.dtype)], dim=1)


def keep_to_centre_region(squares: Tensor, centres: Tensor, paper: Tensor, largest: int) -> Tensor:
    """(B, K, H, W) bool squares, (B, K) flat centres, (B, 1, H, W) bool paper -> each square cut
    to the paper 4-connected to its centre inside it; squares whose centre is not paper stay whole.
    `largest`: the largest side, which bounds the growth."""
    allowed = squares & paper
    grown = (
        torch.zeros_like(squares).flatten(2).scatter_(2, centres[..., None], True).view_as(squares)
        & allowed
    )
    # s - 1 steps reach every pixel of a square of side s from its centre; twice that allows a
    # detour round a line
    for _ in range(2 * (largest - 1)):
        padded = F.pad(grown, (1, 1, 1, 1))
        grown = (
            grown
            | padded[..., :-2, 1:-1]
            | padded[..., 2:, 1:-1]
            | padded[..., 1:-1, :-2]
            | padded[..., 1:-1, 2:]
        ) & allowed
    centre_on_paper = grown.flatten(2).any(2)[..., None, None]  # (B, K, 1, 1)
    return torch.where(centre_on_paper, grown, squares)


def region_centres(regions: Tensor, count: int) -> Tensor:
    """(B, 1, H, W) bool regions -> (B, count) flat positions: for each of the `count` largest
    4-connected regions, largest first, its pixel nearest the region's centroid; -1 past the last.
    For evaluation only: it loops over the images and their regions in Python."""
    batch, _, height, width = regions.shape
    labels = label_components(regions)[:, 0]
    centres = torch.full((batch, count), -1, dtype=torch.long, device=regions.device)
    ys, xs = torch.meshgrid(
        torch.arange(height, device=regions.device),
        torch.arange(width, device=regions.device),
        indexing="ij",
    )
    for image in range(batch):
        flat = labels[image].flatten()
        names, sizes = flat[flat > 0].unique(return_counts=True)
        for slot, name in enumerate(names[sizes.argsort(descending=True, stable=True)][:count]):
            member = labels[image] == name
            cy, cx = ys[member].float().mean(), xs[member].float().mean()
            distance = torch.where(member, (ys - cy) ** 2 + (xs - cx) ** 2, torch.inf)
            centres[image, slot] = distance.flatten().argmin()
    return centres


def check_hints(p, max_hints, min_size, max_size, hue_jitter, within_region) -> None:
    if not isinstance(p, (int, float)) or not 0.0 < p < 1.0:
        raise UserError(
            f"data.hints.p={p!r} must be in (0, 1): the geometric count's parameter (mean (1 - p) / p)."
        )
    if not isinstance(max_hints, int) or not 0 <= max_hints <= 255:
        raise UserError(f"data.hints.max_hints={max_hints!r} must be an integer from 0 to 255.")
    if not (isinstance(min_size, int) and isinstance(max_size, int) and 1 <= min_size <= max_size):
        raise UserError(
            f"data.hints.min_size={min_size!r} and max_size={max_size!r} must be integers, "
            "1 <= min_size <= max_size (patch sides in pixels)."
        )
    if not isinstance(hue_jitter, (int, float)) or not 0.0 <= hue_jitter <= 1.0:
        raise UserError(
            f"data.hints.hue_jitter={hue_jitter!r} must be in [0, 1]: the share of targets hue-turned."
        )
    if not isinstance(within_region, bool):
        raise UserError(f"data.hints.within_region={within_region!r} must be true or false.")
