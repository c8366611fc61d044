"""Spreading colour hints over the regions of the sketch they fall in, inside the network's graph.

A user puts one dot of orange in a figure's belly and means the whole belly. Given only the dot, a
network trained on 16 pairs learns to ignore it (see the docs' hints results); given the belly
already filled, it only has to correct the shading. A region is paper inside the figure
(regions.py): spreading stops at the lines and never runs out into the white around the figure
through a gap in an outline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sketch2photo.regions import label_components


def spread_hints(hints: Tensor, regions: Tensor) -> Tensor:
    """(B, 4, H, W) hint map, (B, 1, H, W) regions -> (B, 4, H, W): every region pixel that a
    hint reaches without crossing a line takes the colour of the hint pixel nearest to it
    (4-connected steps), so a region with one hint is flat and one with two is split between them.
    The mask channel is 1 where a hint reached, 0 elsewhere.

    Hint pixels spread their flat index, one step a pixel, and the colours are looked up at the end:
    one small integer tensor a step, not four channels of floats. Eagerly, a region whose hints
    (inside it, or on a line beside it) all have one colour is filled at once (its pixels take one
    of those hints' indices) and the steps run only in regions with several colours, until nothing
    grows. Traced and compiled graphs take a fixed H + W steps everywhere (the same map unless a
    region winds through corridors longer than that).

    regions: a bool mask, or its components' labels (regions.label_components: 0 off the regions)
    where the caller has them (regions.background_and_regions).
    """
    batch, _, height, width = hints.shape
    hinted = hints[:, 3] > 0
    numbers = torch.arange(1, height * width + 1, dtype=torch.int32, device=hints.device).view(
        1, 1, height, width
    )
    source = torch.where(
        hinted[:, None], numbers, 0
    )  # (B, 1, H, W): 1 + the flat index of the hint pixel copied
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        source = _grow_for(
            height + width, source, regions if regions.dtype == torch.bool else regions > 0
        )
    else:
        labels = label_components(regions) if regions.dtype == torch.bool else regions
        source = _spread_eagerly(source, hints, labels)
    reached = (source[:, 0] > 0).to(hints.dtype)
    index = (
        (source.long() - 1).clamp_min(0).flatten(1)[:, None, :].expand(-1, 3, -1)
    )  # (B, 3, H * W)
    colour = hints[:, :3].flatten(2).gather(2, index).view(batch, 3, height, width)
    return torch.cat([torch.where(reached[:, None] > 0, colour, 0.0), reached[:, None]], dim=1)


def _spread_eagerly(source: Tensor, hints: Tensor, labels: Tensor) -> Tensor:
    """The growth's result, the same pixel for pixel: each region (a label of `labels`) takes from
    the hint pixels in it and those on its border outside it; only where these differ in colour
    does it matter which is nearest."""
    batch, _, height, width = source.shape
    slots = height * width + 1  # labels 0 .. H * W of each image; 0: no region
    labels = labels + torch.arange(batch, device=labels.device).view(-1, 1, 1, 1) * slots
    labels = labels.long()  # unique across the batch
    at = source.flatten().nonzero()[:, 0]  # (M,) the hint pixels, flat over the batch
    image, pixel = at // (height * width), at % (height * width)
    row, column = pixel // width, pixel % width
    # the region each hint pixel is in, and those of its 4 neighbours: (5, M), 0 off the regions
    padded = F.pad(labels, (1, 1, 1, 1)).flatten()
    centre = (image * (height + 2) + row + 1) * (width + 2) + column + 1
    steps = torch.tensor([0, -1, 1, -(width + 2), width + 2], device=at.device)
    touched = padded[centre + steps[:, None]]
    names, which = touched.unique(return_inverse=True)  # the regions touched, and which is which
    which = which.flatten()
    colours = hints[image, :3, row, column].repeat(5, 1)  # (5 M, 3)
    lowest = colours.new_full((len(names), 3), torch.inf)
    lowest.scatter_reduce_(0, which[:, None].expand(-1, 3), colours, "amin")
    highest = colours.new_full((len(names), 3), -torch.inf)
    highest.scatter_reduce_(0, which[:, None].expand(-1, 3), colours, "amax")
    representative = source.new_zeros(len(names))
    representative.scatter_reduce_(0, which, source.flatten()[at].repeat(5), "amax")
    a_region = names % slots > 0
    one_colour = a_region & (lowest == highest).all(1)  # a NaN colour counts as several
    fill = source.new_zeros(batch * slots)
    fill[names] = representative * one_colour
    several = torch.zeros(batch * slots, dtype=torch.bool, device=source.device)
    several[names] = a_region & ~one_colour
    several = several[labels]  # (B, 1, H, W)
    if several.any():
        source = _grow_until_done(source, several)
    return source + fill[labels] * (source == 0)


def _grow_until_done(source: Tensor, where: Tensor) -> Tensor:
    """_grow until nothing changes, in arithmetic on the smallest integer type that holds the
    indices (int16 up to 181 x 181 px): torch.where and comparisons cost several times as much on
    CPU."""
    height, width = source.shape[-2:]
    dtype = torch.int16 if height * width < 2**15 else source.dtype
    grown, where = source.to(dtype), where.to(dtype)
    for step in range(height * width):
        padded = F.pad(grown, (1, 1, 1, 1))
        nearest = torch.maximum(
            torch.maximum(padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]),
            torch.maximum(padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]),
        )
        unreached = (where - grown).clamp_(min=0)  # 1 on `where` pixels still 0 (indices > 0)
        added = unreached * nearest
        if step % 8 == 7 and not added.any():
            break
        grown = grown + added
    return grown.to(source.dtype)


def _grow_for(steps: int, source: Tensor, where: Tensor) -> Tensor:
    for _ in range(steps):
        source = _grow(source, where)
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
