"""A U-Net: an encoder-decoder whose skip connections carry the sketch's lines to the output."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sketch2photo.errors import UserError

NORMS = {"none": None, "batch": nn.BatchNorm2d, "instance": lambda c: nn.InstanceNorm2d(c, affine=True)}


def conv_block(in_channels: int, out_channels: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels in (in_channels, out_channels):
        layers.append(nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=norm == "none"))
        if NORMS[norm] is not None:
            layers.append(NORMS[norm](out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """depth: number of 2x downsamplings; width: channels at full resolution, doubled per level
    up to max_width; norm: none | batch | instance."""

    def __init__(self, depth: int = 4, width: int = 32, norm: str = "batch", max_width: int = 256):
        super().__init__()
        if norm not in NORMS:
            raise UserError(f"model.net.norm={norm!r} must be one of {', '.join(NORMS)}.")
        if not isinstance(depth, int) or depth < 1:
            raise UserError(f"model.net.depth={depth!r} must be a positive integer.")
        if width < 1:
            raise UserError(f"model.net.width={width!r} must be a positive integer.")
        self.size_multiple = 2**depth
        widths = [min(width * 2**level, max_width) for level in range(depth + 1)]
        self.stem = conv_block(3, widths[0], norm)
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), conv_block(widths[i], widths[i + 1], norm)) for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], kernel_size=2, stride=2) for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(conv_block(2 * widths[i], widths[i], norm) for i in reversed(range(depth)))
        self.head = nn.Sequential(nn.Conv2d(widths[0], 3, kernel_size=1), nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
