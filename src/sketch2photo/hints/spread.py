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
