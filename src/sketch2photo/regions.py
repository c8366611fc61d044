"""The regions of a line drawing: its background, the paper reachable from the image border without
crossing a line, and the paper inside the figure, which the lines divide into regions.

Line art encloses its figure, and in the photos everything outside the outline is white. A
convolutional network tells inside from outside only with a receptive field the size of the image
and enough examples to learn it; a flood fill from the border finds it exactly. On the 20 real
pairs at 128x128 it overlaps the photos' white background with a mean IoU of 0.96.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def background_mask(sketch: Tensor, threshold: float = 0.9) -> Tensor:
    """(B, C, H, W) sketch in [-1, 1] -> (B, 1, H, W) bool, True on the background.

    A pixel is paper when its mean brightness in [0, 1] is above `threshold`. The background is the
    paper 4-connected to the border (a one-pixel diagonal line stops it): eagerly, the components
    of the paper (label_components) that touch the border. Traced, compiled and exported graphs
    cannot loop on data, so they grow the fill from the border one pixel a step for a fixed H + W
    steps: the same mask unless paper winds through corridors longer than that.
    """
    return background_and_regions(sketch, threshold)[0]


def background_and_regions(sketch: Tensor, threshold: float = 0.9) -> tuple[Tensor, Tensor]:
    """(B, C, H, W) sketch in [-1, 1] -> (background, regions), both (B, 1, H, W), from one
    labelling of the paper: background_mask's bool mask, and the paper inside the figure as the
    labels of its regions (label_components' of regions_of; 0 elsewhere) eagerly, as a bool mask
    in traced and compiled graphs. spread_hints takes either."""
    paper = (sketch.mean(dim=1, keepdim=True) + 1) / 2 > threshold
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        background = _grow_from_border(paper.to(sketch.dtype))
        return background, paper & ~background
    labels = label_components(paper)
    flat = labels.flatten(1).long()  # (B, H * W)
    border = torch.ones(paper.shape[-2:], dtype=torch.bool, device=paper.device)
    border[1:-1, 1:-1] = False
    touching = torch.zeros(flat.shape[0], flat.shape[1] + 1, dtype=torch.bool, device=paper.device)
    touching.scatter_(1, flat[:, border.flatten()], True)
    touching[:, 0] = False  # label 0: not paper
    background = touching.gather(1, flat).view_as(paper)
    # a component of the paper that does not touch the border is a region, with the same label
    return background, labels * ~background


def _grow_from_border(paper: Tensor) -> Tensor:
    """The traced fill: a convolution with the 4-neighbourhood a step, two graph nodes each."""
    border = torch.ones_like(paper)
    border[..., 1:-1, 1:-1] = 0
    reached = border * paper
    neighbourhood = torch.ones(1, 1, 3, 3, dtype=paper.dtype, device=paper.device)
    neighbourhood[..., ::2, ::2] = 0
    height, width = paper.shape[-2:]
    for _ in range(height + width):
        reached = torch.minimum(F.conv2d(reached, neighbourhood, padding=1), paper)
    return reached > 0


def regions_of(sketch: Tensor, background: Tensor, threshold: float) -> Tensor:
    """(B, C, H, W) sketch in [-1, 1], (B, 1, H, W) bool background -> (B, 1, H, W) bool: paper
    inside the figure."""
    paper = (sketch.mean(dim=1, keepdim=True) + 1) / 2 > threshold
    return paper & ~background


def label_components(mask: Tensor) -> Tensor:
    """(B, 1, H, W) bool -> (B, 1, H, W) int32 (int64 from about 1,290 px square): 0 off the mask;
    on it, 1 + the largest flat index (within its image) of the pixel's 4-connected component, so
    labels name components in the order of their last pixel.

    Each round gives every pixel the largest label along its row's run of mask pixels, then along
    its column's, then the label of the pixel its label names (which is in the same component and
    has already seen as large a label): regions the lines cut into convex pieces settle in two or
    three rounds, where a fill one pixel a step takes as many steps as the widest region is wide.
    Eager only: it loops until nothing changes.
    """
    height, width = mask.shape[-2:]
    # _Runs adds run numbers scaled above every label: they must fit
    small = (max(height, width) + 1) * (height * width + 1) < 2**31
    dtype = torch.int32 if small else torch.int64
    numbers = torch.arange(1, height * width + 1, dtype=dtype, device=mask.device)
    # masks multiply, not torch.where: several times faster on CPU
    labels = numbers.view(height, width) * mask
    rows, columns = _Runs(mask, 3, dtype), _Runs(mask, 2, dtype)
    while True:
        grown = columns.largest(rows.largest(labels)).flatten(1)  # 0 off the mask
        # label L names pixel L - 1, entry L of the labels after a 0 for "none"
        grown = F.pad(grown, (1, 0)).gather(1, grown.long()).view_as(labels)
        if torch.equal(grown, labels):
            return labels
        labels = grown


class _Runs:
    """The runs of a mask along one dimension (maximal lines of mask pixels), found once and used
    every round: the largest label of each run, from one cumulative max and one gather."""

    def __init__(self, mask: Tensor, dim: int, dtype: torch.dtype):
        size = mask.shape[dim]
        self.dim = dim
        # each off-mask pixel starts a new run: the run's number, scaled above any label, makes
        # the cumulative max restart at each run
        self.offset = (~mask).cumsum(dim, dtype=dtype) * (mask.shape[2] * mask.shape[3] + 1)
        shape = [1, 1, 1, 1]
        shape[dim] = size
        positions = torch.arange(size, dtype=torch.int64, device=mask.device).view(shape)
        stops = positions + mask * (size - positions)  # off-mask pixels, by their position
        next_stop = stops.flip(dim).cummin(dim).values.flip(dim)
        self.last = positions + mask * (next_stop - 1 - positions)  # each run's last pixel

    def largest(self, labels: Tensor) -> Tensor:
        """0 off the mask (an off-mask pixel is a run's start, and its own last pixel)."""
        so_far = (labels + self.offset).cummax(self.dim).values
        return so_far.gather(self.dim, self.last) - self.offset
