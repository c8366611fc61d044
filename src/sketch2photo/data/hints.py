"""Colour hints: simulated from the targets in training and evaluation, read from users' files.

A hint map is (B, 4, H, W) at the model's size: RGB in [-1, 1] (0 where there is no hint), then a
mask that is 1 where there is one (nets/hint_fill.py, HINT_CHANNELS). Users give hints as a PNG
whose pixels with alpha > 0 are hints in their colour, or as JSON
[{"x": .., "y": .., "color": "#rrggbb", "radius": ..}] in the sketch's pixel coordinates.

Simulated hints follow Zhang et al. 2017 (Real-Time User-Guided Image Colorization): a geometric
count (p = 0.125: mean 7, and no hint at all for 1 image in 8), square patches of 1-9 px, each the
target's mean colour over the patch. Positions are drawn inside the figure, where people put them.
Everything runs on the batch's device from a seeded torch.Generator.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageColor, ImageDraw, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.v2.functional import adjust_hue

from sketch2photo.checks import HINT_PLACEMENTS as PLACEMENTS
from sketch2photo.errors import UserError
from sketch2photo.nets.background import background_mask
from sketch2photo.nets.hint_fill import HINT_CHANNELS, regions_of

HINT_SUFFIXES = (".png", ".json")


class HintSampler:
    """data.hints.*: how training simulates hints (see configs/data/sketch2photo.yaml).

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

    def __init__(self, enabled: bool = False, p: float = 0.125, max_hints: int = 32, min_size: int = 1,
                 max_size: int = 9, hue_jitter: float = 0.0, within_region: bool = False, threshold: float = 0.9,
                 seed: int = 0):
        check_hints(p, max_hints, min_size, max_size, hue_jitter, within_region)
        self.enabled, self.p, self.max_hints = enabled, p, max_hints
        self.min_size, self.max_size, self.hue_jitter, self.within_region = min_size, max_size, hue_jitter, within_region
        self.threshold, self.seed = threshold, seed

    def counts(self, batch: int, generator: torch.Generator, device: torch.device) -> Tensor:
        """(B,) int64: geometric on 0, 1, 2, ... by inverting its CDF, capped at max_hints."""
        uniform = torch.rand(batch, generator=generator, device=device).clamp_min(1e-12)
        return torch.floor(torch.log(uniform) / math.log(1.0 - self.p)).clamp_(max=self.max_hints).long()

    def jitter_hue(self, photos: Tensor, generator: torch.Generator) -> Tensor:
        """Turn the hue of a hue_jitter share of (B, 3, H, W) photos in [-1, 1] by a random angle."""
        if self.hue_jitter <= 0:
            return photos
        batch = len(photos)
        chosen = torch.rand(batch, generator=generator, device=photos.device) < self.hue_jitter
        angles = torch.rand(batch, generator=generator, device=photos.device) - 0.5
        turned = torch.stack([adjust_hue((photo + 1) / 2, angle) for photo, angle in zip(photos, angles.tolist())])
        return torch.where(chosen[:, None, None, None], turned * 2 - 1, photos)

    def draw(self, photos: Tensor, sketches: Tensor, generator: torch.Generator, count: int | None = None,
             placement: str = "random") -> Tensor:
        """(B, 3, H, W) targets and (B, 3, H, W) sketches in [-1, 1] -> (B, 4, H, W) hint map.

        count: every image gets exactly this many (evaluation); None draws the training count.
        placement: random (uniform inside the figure) | regions (one at the centre of each of the
            `count` largest regions, largest first; images with fewer regions get the rest at random).
        """
        batch, _, height, width = photos.shape
        device = photos.device
        regions = regions_of(sketches, background_mask(sketches, self.threshold), self.threshold)
        slots = self.max_hints if count is None else count
        if slots == 0:
            return photos.new_zeros(batch, HINT_CHANNELS, height, width)
        counts = self.counts(batch, generator, device) if count is None else torch.full((batch,), count, device=device)
        # uniform over the figure's paper; an image without any (a blank sketch) falls back to everywhere
        weights = regions.flatten(1).float()
        weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, torch.ones_like(weights))
        positions = torch.multinomial(weights, slots, replacement=True, generator=generator)  # (B, K)
        if placement == "regions":
            centres = region_centres(regions, slots)
            positions = torch.where(centres >= 0, centres, positions)
        sizes = torch.randint(self.min_size, self.max_size + 1, (batch, slots), generator=generator, device=device)
        return paint_patches(photos, positions // width, positions % width, sizes, counts,
                             paper=regions if self.within_region else None)


def with_hints(sketches: Tensor, hints: Tensor) -> Tensor:
    """(B, 3, H, W) sketches with their (B, 4, H, W) hint maps painted on top, all in [-1, 1]: how
    sample grids, s2p-eval's grid and s2p-predict's previews show the hints."""
    return torch.where(hints[:, 3:] > 0, hints[:, :3], sketches)


def paint_patches(photos: Tensor, rows: Tensor, cols: Tensor, sizes: Tensor, counts: Tensor,
                  paper: Tensor | None = None) -> Tensor:
    """Square patches of side `sizes` centred on (rows, cols), all (B, K), the first counts[b] of each
    image used, each painted with the mean of `photos` (B, 3, H, W) over it; later ones on top.

    paper: (B, 1, H, W) bool. A patch whose centre is paper keeps to the paper of the square it can
    reach from the centre without crossing a line, so a patch by an outline takes one region's colour,
    not its mix with the line and the region across it (a person picks one colour for one region)."""
    batch, _, height, width = photos.shape
    top, left = rows - (sizes - 1) // 2, cols - (sizes - 1) // 2
    bottom, right = (top + sizes).clamp(0, height), (left + sizes).clamp(0, width)
    top, left = top.clamp(0, height), left.clamp(0, width)
    slots = rows.shape[1]
    used = torch.arange(slots, device=photos.device)[None, :] < counts[:, None]  # (B, K)
    ys, xs = torch.arange(height, device=photos.device), torch.arange(width, device=photos.device)
    inside = ((ys[None, None, :, None] >= top[..., None, None]) & (ys[None, None, :, None] < bottom[..., None, None])
              & (xs[None, None, None, :] >= left[..., None, None]) & (xs[None, None, None, :] < right[..., None, None])
              & used[..., None, None])  # (B, K, H, W)
    if paper is None:  # squares: their means from an integral image, four lookups per patch, whatever its size
        integral = F.pad(photos.double().cumsum(2).cumsum(3), (1, 0, 1, 0)).flatten(2)  # (B, 3, (H + 1) * (W + 1))

        def corner(y: Tensor, x: Tensor) -> Tensor:
            return integral.gather(2, (y * (width + 1) + x)[:, None, :].expand(-1, 3, -1))  # (B, 3, K)

        sums = corner(bottom, right) - corner(top, right) - corner(bottom, left) + corner(top, left)
        colours = (sums / ((bottom - top) * (right - left)).clamp_min(1)[:, None, :]).to(photos.dtype)  # (B, 3, K)
    else:  # cut shapes: the mean over each patch's own pixels
        inside = keep_to_centre_region(inside, rows * width + cols, paper, int(sizes.max()))
        weights = inside.flatten(2).to(photos.dtype)  # (B, K, H * W)
        colours = torch.einsum("bcn,bkn->bck", photos.flatten(2), weights) / weights.sum(2).clamp_min(1)[:, None, :]
    # the last patch covering a pixel wins: its number (1-based) is the max over patches
    numbers = torch.arange(1, slots + 1, device=photos.device, dtype=torch.int16)[None, :, None, None]
    topmost = torch.where(inside, numbers, 0).amax(1)  # (B, H, W); 0: no hint
    mask = (topmost > 0)[:, None]
    index = (topmost.long() - 1).clamp_min(0).flatten(1)[:, None, :].expand(-1, 3, -1)
    rgb = colours.gather(2, index).view(batch, 3, height, width)
    return torch.cat([torch.where(mask, rgb, 0.0), mask.to(photos.dtype)], dim=1)


def keep_to_centre_region(squares: Tensor, centres: Tensor, paper: Tensor, largest: int) -> Tensor:
    """(B, K, H, W) bool squares, (B, K) flat centres, (B, 1, H, W) bool paper -> each square cut
    to the paper 4-connected to its centre inside it; squares whose centre is not paper stay whole.
    `largest`: the largest side, which bounds the growth."""
    allowed = squares & paper
    grown = torch.zeros_like(squares).flatten(2).scatter_(2, centres[..., None], True).view_as(squares) & allowed
    # s - 1 steps reach every pixel of a square of side s from its centre; twice that allows a detour round a line
    for _ in range(2 * (largest - 1)):
        padded = F.pad(grown, (1, 1, 1, 1))
        grown = (grown | padded[..., :-2, 1:-1] | padded[..., 2:, 1:-1] | padded[..., 1:-1, :-2]
                 | padded[..., 1:-1, 2:]) & allowed
    centre_on_paper = grown.flatten(2).any(2)[..., None, None]  # (B, K, 1, 1)
    return torch.where(centre_on_paper, grown, squares)


def region_centres(regions: Tensor, count: int) -> Tensor:
    """(B, 1, H, W) bool regions -> (B, count) flat positions: for each of the `count` largest
    4-connected regions, largest first, its pixel nearest the region's centroid; -1 past the last.
    For evaluation only: labels spread until stable, a few hundred steps at 128 px."""
    batch, _, height, width = regions.shape
    labels = torch.where(regions[:, 0], torch.arange(1, height * width + 1, device=regions.device).view(height, width), 0)
    while True:
        padded = F.pad(labels, (1, 1, 1, 1))
        neighbours = torch.stack([padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]])
        grown = torch.where(regions[:, 0], torch.maximum(labels, neighbours.amax(0)), 0)
        if torch.equal(grown, labels):
            break
        labels = grown
    centres = torch.full((batch, count), -1, dtype=torch.long, device=regions.device)
    ys, xs = torch.meshgrid(torch.arange(height, device=regions.device), torch.arange(width, device=regions.device),
                            indexing="ij")
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
        raise UserError(f"data.hints.p={p!r} must be in (0, 1): the geometric count's parameter (mean (1 - p) / p).")
    if not isinstance(max_hints, int) or not 0 <= max_hints <= 255:
        raise UserError(f"data.hints.max_hints={max_hints!r} must be an integer from 0 to 255.")
    if not (isinstance(min_size, int) and isinstance(max_size, int) and 1 <= min_size <= max_size):
        raise UserError(f"data.hints.min_size={min_size!r} and max_size={max_size!r} must be integers, "
                        "1 <= min_size <= max_size (patch sides in pixels).")
    if not isinstance(hue_jitter, (int, float)) or not 0.0 <= hue_jitter <= 1.0:
        raise UserError(f"data.hints.hue_jitter={hue_jitter!r} must be in [0, 1]: the share of targets hue-turned.")
    if not isinstance(within_region, bool):
        raise UserError(f"data.hints.within_region={within_region!r} must be true or false.")


# -- users' hint files ---------------------------------------------------------------------------
HINT_LIST_FORMAT = '[{"x": .., "y": .., "color": "#rrggbb", "radius": ..}] in the sketch\'s pixels'


def read_hint_file(path: Path, sketch_size: tuple[int, int], image_size: int, sketch_path: Path | None = None) -> Tensor:
    """A user's hint PNG or JSON -> (4, image_size, image_size) hint map for a sketch of
    `sketch_size` (width, height) pixels. UserError names the file when it cannot be used."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            points = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as error:  # RecursionError: JSON nested thousands deep
            raise UserError(f"{path}: not readable JSON ({error}). Expected {HINT_LIST_FORMAT}.") from None
        return hints_from_points(points, sketch_size, image_size, source=str(path))
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)  # as open_image turns its sketch
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise UserError(f"{path}: not a readable hint image ({error}). Give a PNG with transparency, or JSON.") from None
    return hints_from_image(image, sketch_size, image_size, source=str(path),
                            sketch_name=None if sketch_path is None else str(sketch_path))


def hints_from_image(image: Image.Image, sketch_size: tuple[int, int], image_size: int,
                     source: str = "the hint image", sketch_name: str | None = None) -> Tensor:
    """A hint layer whose pixels with alpha > 0 are hints in their colour, of any size with the
    sketch's aspect ratio -> (4, image_size, image_size). `source` and `sketch_name` name them in errors."""
    if image.mode in ("LA", "La", "PA", "RGBa") or image.mode in ("P", "L", "RGB") and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode != "RGBA":
        raise UserError(f"{source}: a hint image needs transparency (mode {image.mode} has none): its transparent "
                        "pixels are 'no hint'. Save it as a PNG with alpha, or give the hints as JSON "
                        f"{HINT_LIST_FORMAT}.")
    if not _same_aspect(image.size, sketch_size):
        sketch = f"its sketch {sketch_name}" if sketch_name else "the sketch"
        raise UserError(f"{source} is {image.width}x{image.height} but {sketch} is {sketch_size[0]}x{sketch_size[1]}: "
                        "a hint image must have the sketch's aspect ratio (scale it, do not crop or stretch it).")
    return _at_model_size(np.asarray(image), image_size)


def hints_from_points(points, sketch_size: tuple[int, int], image_size: int, source: str = "the hint list") -> Tensor:
    """A JSON-like list of {"x", "y", "color", "radius" (default 2)} in the sketch's pixels -> (4, S, S)."""
    width, height = sketch_size
    try:
        if not isinstance(points, list):
            raise ValueError("the top level must be a list")
        canvas = Image.new("RGBA", sketch_size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(canvas)
        for number, hint in enumerate(points):
            if not isinstance(hint, dict):
                raise ValueError(f"hint {number} is not an object {{...}}")
            missing = [key for key in ("x", "y", "color") if key not in hint]
            if missing:
                raise ValueError(f"hint {number} has no {', '.join(missing)}")
            x, y, radius = float(hint["x"]), float(hint["y"]), float(hint.get("radius", 2))
            colour = (*ImageColor.getrgb(hint["color"])[:3], 255)
            if not (0 <= x < width and 0 <= y < height):
                raise ValueError(f"hint {number} at ({x:g}, {y:g}) is outside the {width}x{height} sketch")
            if not 0 <= radius < math.inf:
                raise ValueError(f"hint {number}: radius {radius:g} is not a size in pixels")
            radius = min(radius, max(width, height))  # larger covers the sketch all the same, and takes Pillow seconds
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
            draw.point((round(x), round(y)), fill=colour)  # Pillow draws no ellipse under 1 px: a hint is never empty
    except (ValueError, TypeError) as error:
        raise UserError(f"{source}: not a hint list ({error}). Expected {HINT_LIST_FORMAT}.") from None
    return _at_model_size(np.asarray(canvas), image_size)


def _same_aspect(size: tuple[int, int], sketch_size: tuple[int, int]) -> bool:
    """Within 1%, or half a pixel of rounding on each side (a hint layer scaled down from the sketch)."""
    (width, height), (sketch_width, sketch_height) = size, sketch_size
    cross, sketch_cross = width * sketch_height, height * sketch_width
    return abs(cross - sketch_cross) <= max(cross, sketch_cross) / 100 + (sketch_width + sketch_height) / 2


def _at_model_size(rgba: np.ndarray, image_size: int) -> Tensor:
    """(H, W, 4) uint8 RGBA -> (4, S, S) hint map. A cell of the model's grid is a hint where any
    pixel in it is one, in their alpha-weighted mean colour: a resize would drop dots that fall
    between its samples (nearest) or blend them with 'no hint' (bicubic)."""
    pixels = torch.from_numpy(np.array(rgba, dtype=np.uint8)).permute(2, 0, 1)[None].float()
    alpha = pixels[:, 3:] / 255
    weight = F.adaptive_avg_pool2d(alpha, image_size)
    colour = F.adaptive_avg_pool2d(pixels[:, :3] * alpha, image_size) / weight.clamp_min(1e-12)
    mask = weight > 0
    colour = (colour / 127.5 - 1).clamp(-1, 1)
    return torch.cat([torch.where(mask, colour, 0.0), mask.float()], dim=1)[0]


def hint_image(hints: Tensor) -> Image.Image:
    """(4, H, W) hint map -> RGBA image (transparent where there is no hint): the PNG form."""
    rgb = ((hints[:3] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    alpha = (hints[3:] > 0).to(torch.uint8) * 255
    return Image.fromarray(torch.cat([rgb, alpha]).permute(1, 2, 0).numpy(), mode="RGBA")

