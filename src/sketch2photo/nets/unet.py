"""A U-Net in the pix2pix style: the reference autoencoder's stride-2 convolutions, deeper, with
skip connections.

Each level halves the size with a 4x4 stride-2 convolution and the decoder doubles it back with
a 4x4 transposed convolution whose input is concatenated with the encoder's features at that
size, so the sketch's lines reach the output directly.

It takes only its own shape. What a sketch says beyond its pixels (its background, colour hints)
is added around it by nets/conditioning.py.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sketch2photo.errors import UserError

NORMS = ("none", "batch", "instance")
UPSAMPLES = ("transpose", "bilinear")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def _upsample(kind: str, in_channels: int, out_channels: int, bias: bool) -> nn.Module:
    if kind == "transpose":
        return nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
    )


class UNet(nn.Module):
    """in_channels, out_channels: of the input and output images; depth: number of 2x downsamplings;
    width: channels after the first, doubled per level up to max_width; norm: none | batch |
    instance; dropout: in the decoder's inner levels (pix2pix: 0.5); upsample: transpose (4x4
    transposed convolutions, as pix2pix) | bilinear (bilinear 2x, then a 3x3 convolution: no
    checkerboard artifacts)."""

    takes_hints = False

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        depth: int = 5,
        width: int = 32,
        norm: str = "batch",
        max_width: int = 256,
        dropout: float = 0.0,
        upsample: str = "transpose",
    ):
        super().__init__()
        if upsample not in UPSAMPLES:
            raise UserError(
                f"model.net.upsample={upsample!r} must be one of {', '.join(UPSAMPLES)}."
            )
        if norm not in NORMS:
            raise UserError(f"model.net.norm={norm!r} must be one of {', '.join(NORMS)}.")
        if not isinstance(depth, int) or depth < 1:
            raise UserError(f"model.net.depth={depth!r} must be a positive integer.")
        if not isinstance(width, int) or width < 1:
            raise UserError(f"model.net.width={width!r} must be a positive integer.")
        self.size_multiple = 2**depth
        widths = [min(width * 2**level, max_width) for level in range(depth)]
        bias = norm == "none"
        self.down = nn.ModuleList()
        for level, channels in enumerate(widths):
            layers = [
                nn.Conv2d(
                    in_channels if level == 0 else widths[level - 1],
                    channels,
                    4,
                    stride=2,
                    padding=1,
                    bias=bias or level == 0,
                )
            ]
            if 0 < level < depth - 1:
                layers.append(_norm(norm, channels))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for level in reversed(range(depth)):
            channels = widths[level] * (
                1 if level == depth - 1 else 2
            )  # innermost has no skip to merge
            if level == 0:
                self.up.append(
                    nn.Sequential(_upsample(upsample, channels, out_channels, bias=True), nn.Tanh())
                )
                continue
            layers = [
                _upsample(upsample, channels, widths[level - 1], bias),
                _norm(norm, widths[level - 1]),
                nn.ReLU(inplace=True),
            ]
            if dropout and level >= depth - 3:
                layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H, W) in [-1, 1]."""
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        skips.pop()  # the innermost features go straight up
        for up in self.up[:-1]:
            x = torch.cat([up(x), skips.pop()], dim=1)
        return self.up[-1](x)
