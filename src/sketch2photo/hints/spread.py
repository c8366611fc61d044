"""Spreading colour hints over the regions of the sketch they fall in, inside the network's graph.

A user puts one dot of orange in a figure's belly and means the whole belly. Given only the dot, a
network trained on 16 pairs learns to ignore it (see the README's hints table); given the belly
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
    """(B, 4, H, W) hint map, (B, 1, H, W) bool regions -> (B, 4, H, W): every region pixel that a
    hint reaches without crossing a line takes the colour of the hint pixel nearest to it
    (4-connected steps), so a region with one hint is flat and one with two is split between them.
    The mask channel is 1 where a hint reached, 0 elsewhere.

    Hint pixels spread their flat index, one step a pixel, and the colours are looked up at the end:
    one small integer tensor a step, not four channels of floats. Eagerly, a region whose hints
    (inside it, or on a line beside it) all have one colour is filled at once (its pixels take one
    of those hints' indices) and the steps run only in regions with several colours, until nothing
    grows. Traced and compiled graphs take a fixed H + W steps everywhere (the same map unless a
    region winds through corridors longer than that).
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
        source = _grow_for(height + width, source, regions)
    else:
        source = _spread_eagerly(source, hints, regions)
    reached = (source[:, 0] > 0).to(hints.dtype)
    index = (
        (source.long() - 1).clamp_min(0).flatten(1)[:, None, :].expand(-1, 3, -1)
    )  # (B, 3, H * W)
    colour = hints[:, :3].flatten(2).gather(2, index).view(batch, 3, height, width)
    return torch.cat([torch.where(reached[:, None] > 0, colour, 0.0), reached[:, None]], dim=1)


def _spread_eagerly(source: Tensor, hints: Tensor, regions: Tensor) -> Tensor:
    """The growth's result, the same pixel for pixel: each region (component of `regions`) takes
    from the hint pixels in it and those on its border outside it; only where these differ in
    colour does it matter which is nearest."""
    labels = label_components(regions)  # (B, 1, H, W)
    slots = labels.shape[-1] * labels.shape[-2] + 1  # labels 0 .. H * W of each image
    labels = labels + torch.arange(len(labels), device=labels.device).view(-1, 1, 1, 1) * slots
    labels = labels.long()  # unique across the batch; 0 (no region) is b * slots
    hinted = source > 0
    padded = F.pad(labels, (1, 1, 1, 1))
    touched = torch.stack(  # (5, M): the regions each of the M hint pixels is in or beside
        [
            labels,
            padded[..., :-2, 1:-1],
            padded[..., 2:, 1:-1],
            padded[..., 1:-1, :-2],
            padded[..., 1:-1, 2:],
        ]
    )[:, hinted]
    colours = hints[:, :3].permute(0, 2, 3, 1)[hinted[:, 0]]  # (M, 3)
    count = len(labels) * slots
    lowest = colours.new_full((count, 3), torch.inf)
    highest = colours.new_full((count, 3), -torch.inf)
    representative = torch.zeros(count, dtype=source.dtype, device=source.device)
    for region in touched:  # each of the five neighbours in turn
        rows = region[:, None].expand(-1, 3)
        lowest.scatter_reduce_(0, rows, colours, "amin")
        highest.scatter_reduce_(0, rows, colours, "amax")
        representative.scatter_reduce_(0, region, source[hinted], "amax")
    representative[::slots] = 0  # off the regions
    one_colour = (representative > 0) & (lowest == highest).all(1)  # NaN: several
    several = (representative > 0) & ~one_colour
    several = several[labels]  # (B, 1, H, W)
    if several.any():
        source = _grow_until_done(source, several)
    return torch.where(one_colour[labels] & ~hinted, representative[labels], source)


def _grow_until_done(source: Tensor, where: Tensor) -> Tensor:
    height, width = source.shape[-2:]
    for step in range(height * width):
        grown = _grow(source, where)
        if step % 8 == 7 and torch.equal(grown, source):
            break
        source = grown
    return source


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
