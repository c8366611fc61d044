"""The region fills as they were before issue 23 (commit ffbfcd8), frozen: one pixel a step until
nothing changes. The faster fills in src/ must give exactly these outputs (tests/test_fills.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def background_mask(sketch: Tensor, threshold: float = 0.9) -> Tensor:
    """(B, C, H, W) sketch in [-1, 1] -> (B, 1, H, W) bool, True on the background.

    A pixel is paper when its mean brightness in [0, 1] is above `threshold`. The fill grows from
    the border one pixel a step, 4-connected (a one-pixel diagonal line stops it), until it stops
    growing: 30 to 100 steps on the real sketches at 128 px. Traced, compiled and exported graphs
    cannot stop on data, so they take a fixed H + W steps: the same mask unless paper winds
    through corridors longer than that.
    """
    paper = ((sketch.mean(dim=1, keepdim=True) + 1) / 2 > threshold).to(sketch.dtype)
    border = torch.ones_like(paper)
    border[..., 1:-1, 1:-1] = 0
    reached = border * paper
    # a convolution with the 4-neighbourhood: cheap eagerly and two graph nodes a step when exported
    neighbourhood = torch.ones(1, 1, 3, 3, dtype=sketch.dtype, device=sketch.device)
    neighbourhood[..., ::2, ::2] = 0
    height, width = sketch.shape[-2:]
    fixed_steps = torch.jit.is_tracing() or torch.compiler.is_compiling()
    for step in range(height + width if fixed_steps else height * width):
        grown = torch.minimum(F.conv2d(reached, neighbourhood, padding=1), paper)
        if not fixed_steps and step % 8 == 7 and torch.equal(grown, reached):
            break
        reached = grown
    return reached > 0


def background_and_regions(sketch: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """What the network computed before: the background, then regions_of's mask."""
    background = background_mask(sketch, threshold)
    paper = (sketch.mean(dim=1, keepdim=True) + 1) / 2 > threshold
    return background, paper & ~background


def spread_hints(hints: Tensor, regions: Tensor) -> Tensor:
    """(B, 4, H, W) hint map, (B, 1, H, W) bool regions -> (B, 4, H, W): every region pixel that a
    hint reaches without crossing a line takes the colour of the hint pixel nearest to it
    (4-connected steps), so a region with one hint is flat and one with two is split between them.
    The mask channel is 1 where a hint reached, 0 elsewhere.

    Hint pixels spread their flat index, one step a pixel, and the colours are looked up at the end:
    one small integer tensor a step, not four channels of floats. As background_mask: eagerly until
    nothing grows, in traced and compiled graphs a fixed H + W steps (the same map unless a region
    winds through corridors longer than that).
    """
    batch, _, height, width = hints.shape
    hinted = hints[:, 3] > 0
    numbers = torch.arange(1, height * width + 1, dtype=torch.int32, device=hints.device).view(
        1, 1, height, width
    )
    source = torch.where(
        hinted[:, None], numbers, 0
    )  # (B, 1, H, W): 1 + the flat index of the hint pixel copied
    source = _grow_until_done(source, regions)
    reached = (source[:, 0] > 0).to(hints.dtype)
    index = (
        (source.long() - 1).clamp_min(0).flatten(1)[:, None, :].expand(-1, 3, -1)
    )  # (B, 3, H * W)
    colour = hints[:, :3].flatten(2).gather(2, index).view(batch, 3, height, width)
    return torch.cat([torch.where(reached[:, None] > 0, colour, 0.0), reached[:, None]], dim=1)


def _grow_until_done(source: Tensor, where: Tensor) -> Tensor:
    height, width = source.shape[-2:]
    fixed_steps = torch.jit.is_tracing() or torch.compiler.is_compiling()
    for step in range(height + width if fixed_steps else height * width):
        grown = _grow(source, where)
        if not fixed_steps and step % 8 == 7 and torch.equal(grown, source):
            break
        source = grown
    return source


def _grow(source: Tensor, where: Tensor) -> Tensor:
    """One step: unreached pixels of `where` copy a reached 4-neighbour's source (the largest).
    Shifted slices, not max_pool2d: ten times faster on CPU."""
    padded = F.pad(source, (1, 1, 1, 1))
    nearest = torch.maximum(
        torch.maximum(padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]),
        torch.maximum(padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]),
    )
    return torch.where(where & (source == 0), nearest, source)


def paint_patches(
    photos: Tensor,
    rows: Tensor,
    cols: Tensor,
    sizes: Tensor,
    counts: Tensor,
    paper: Tensor | None = None,
) -> Tensor:
    """Square patches of side `sizes` centred on (rows, cols), all (B, K), the first counts[b] of
    each image used, each painted with the mean of `photos` (B, 3, H, W) over it; later ones on top.

    paper: (B, 1, H, W) bool. A patch whose centre is paper keeps to the paper of the square it can
    reach from the centre without crossing a line, so a patch by an outline takes one region's
    colour, not its mix with the line and the region across it (a person picks one colour for one
    region)."""
    batch, _, height, width = photos.shape
    top, left = rows - (sizes - 1) // 2, cols - (sizes - 1) // 2
    bottom, right = (top + sizes).clamp(0, height), (left + sizes).clamp(0, width)
    top, left = top.clamp(0, height), left.clamp(0, width)
    slots = rows.shape[1]
    used = torch.arange(slots, device=photos.device)[None, :] < counts[:, None]  # (B, K)
    ys, xs = torch.arange(height, device=photos.device), torch.arange(width, device=photos.device)
    inside = (
        (ys[None, None, :, None] >= top[..., None, None])
        & (ys[None, None, :, None] < bottom[..., None, None])
        & (xs[None, None, None, :] >= left[..., None, None])
        & (xs[None, None, None, :] < right[..., None, None])
        & used[..., None, None]
    )  # (B, K, H, W)
    if (
        paper is None
    ):  # squares: their means from an integral image, four lookups per patch, whatever its size
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
    else:  # cut shapes: the mean over each patch's own pixels
        inside = keep_to_centre_region(inside, rows * width + cols, paper, int(sizes.max()))
        weights = inside.flatten(2).to(photos.dtype)  # (B, K, H * W)
        colours = (
            torch.einsum("bcn,bkn->bck", photos.flatten(2), weights)
            / weights.sum(2).clamp_min(1)[:, None, :]
        )
    # the last patch covering a pixel wins: its number (1-based) is the max over patches
    numbers = torch.arange(1, slots + 1, device=photos.device, dtype=torch.int16)[
        None, :, None, None
    ]
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
    For evaluation only: labels spread until stable, a few hundred steps at 128 px."""
    batch, _, height, width = regions.shape
    labels = torch.where(
        regions[:, 0],
        torch.arange(1, height * width + 1, device=regions.device).view(height, width),
        0,
    )
    while True:
        padded = F.pad(labels, (1, 1, 1, 1))
        neighbours = torch.stack(
            [padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]]
        )
        grown = torch.where(regions[:, 0], torch.maximum(labels, neighbours.amax(0)), 0)
        if torch.equal(grown, labels):
            break
        labels = grown
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


def labels_by_growth(regions: Tensor) -> Tensor:
    """region_centres' labelling as it was: (B, 1, H, W) bool -> (B, 1, H, W) int64, 1 + the
    largest flat index of the component, grown one pixel a step until stable."""
    height, width = regions.shape[-2:]
    labels = torch.where(
        regions, torch.arange(1, height * width + 1, device=regions.device).view(height, width), 0
    )
    while True:
        padded = F.pad(labels, (1, 1, 1, 1))
        neighbours = torch.stack(
            [
                padded[..., :-2, 1:-1],
                padded[..., 2:, 1:-1],
                padded[..., 1:-1, :-2],
                padded[..., 1:-1, 2:],
            ]
        )
        grown = torch.where(regions, torch.maximum(labels, neighbours.amax(0)), 0)
        if torch.equal(grown, labels):
            return labels
        labels = grown
