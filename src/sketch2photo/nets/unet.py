"""A U-Net in the pix2pix style: the reference autoencoder's stride-2 convolutions, deeper, with skip connections.

Each level halves the size with a 4x4 stride-2 convolution and the decoder doubles it back with
a 4x4 transposed convolution whose input is concatenated with the encoder's features at that
size, so the sketch's lines reach the output directly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sketch2photo.errors import UserError
from sketch2photo.nets.background import background_mask
from sketch2photo.nets.hint_fill import HINT_CHANNELS, regions_of, spread_hints

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
    """depth: number of 2x downsamplings; width: channels after the first, doubled per level up to
    max_width; norm: none | batch | instance; dropout: in the decoder's inner levels (pix2pix: 0.5);
    upsample: transpose (4x4 transposed convolutions, as pix2pix) | bilinear (bilinear 2x, then a
    3x3 convolution: no checkerboard artifacts). The sketch's background (nets/background.py: paper
    brighter than background_threshold, flood-filled from the border) can be a 4th input channel
    (background_input) and/or painted white in the output (background_fill).

    hint_input: a second input, the (B, 4, H, W) hint map (data/hints.py), as 4 more channels;
    hint_spread: spread each hint over the region it falls in first (nets/hint_fill.py);
    hint_residual: the output is the spread hints plus a correction, not the whole image;
    hint_correction: with hint_residual, the largest correction where a hint reached (elsewhere 2,
    the whole range): small values make the network keep the colours it is given;
    hint_line_fill: after spreading, carry the colours this many pixels into the figure's lines;
    hint_whole_figure: then give every other figure pixel the nearest hint's colour, marked as a guess."""

    def __init__(
        self, depth: int = 5, width: int = 32, norm: str = "batch", max_width: int = 256, dropout: float = 0.0,
        upsample: str = "transpose", background_input: bool = False, background_fill: bool = False,
        background_threshold: float = 0.9, hint_input: bool = False, hint_spread: bool = True,
        hint_residual: bool = False, hint_correction: float = 2.0, hint_line_fill: int = 0,
        hint_whole_figure: bool = False,
    ):
        super().__init__()
        if upsample not in UPSAMPLES:
            raise UserError(f"model.net.upsample={upsample!r} must be one of {', '.join(UPSAMPLES)}.")
        if norm not in NORMS:
            raise UserError(f"model.net.norm={norm!r} must be one of {', '.join(NORMS)}.")
        if not isinstance(depth, int) or depth < 1:
            raise UserError(f"model.net.depth={depth!r} must be a positive integer.")
        if not isinstance(width, int) or width < 1:
            raise UserError(f"model.net.width={width!r} must be a positive integer.")
        if not isinstance(background_threshold, (int, float)) or not 0.0 < background_threshold < 1.0:
            raise UserError(f"model.net.background_threshold={background_threshold!r} must be in (0, 1): "
                            "the brightness above which a sketch pixel counts as paper.")
        self.background_input, self.background_fill = background_input, background_fill
        self.background_threshold = background_threshold
        self.hint_input, self.hint_spread, self.hint_residual = hint_input, hint_spread, hint_residual
        self.hint_line_fill, self.hint_whole_figure = hint_line_fill, hint_whole_figure
        self.hint_correction = hint_correction
        self.size_multiple = 2**depth
        widths = [min(width * 2**level, max_width) for level in range(depth)]
        bias = norm == "none"
        self.down = nn.ModuleList()
        for level, out_channels in enumerate(widths):
            in_channels = (3 + background_input + HINT_CHANNELS * hint_input) if level == 0 else widths[level - 1]
            layers = [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias or level == 0)]
            if 0 < level < depth - 1:
                layers.append(_norm(norm, out_channels))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for level in reversed(range(depth)):
            in_channels = widths[level] * (1 if level == depth - 1 else 2)  # innermost has no skip to merge
            if level == 0:
                self.up.append(nn.Sequential(_upsample(upsample, in_channels, 3, bias=True), nn.Tanh()))
                continue
            layers = [_upsample(upsample, in_channels, widths[level - 1], bias), _norm(norm, widths[level - 1]),
                      nn.ReLU(inplace=True)]
            if dropout and level >= depth - 3:
                layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: Tensor, hints: Tensor | None = None) -> Tensor:
        """(B, 3, H, W) sketch in [-1, 1], optional (B, 4, H, W) hint map -> (B, 3, H, W) in [-1, 1]."""
        spread = self.hint_input and self.hint_spread
        if self.background_input or self.background_fill or spread:
            background = background_mask(x, self.background_threshold)
        inputs = [x]
        if self.background_input:
            inputs.append(background.to(x.dtype) * 2 - 1)
        if self.hint_input:
            if hints is None:
                hints = x.new_zeros(x.shape[0], HINT_CHANNELS, *x.shape[2:])
            if spread:
                hints = spread_hints(hints.to(x.dtype), regions_of(x, background, self.background_threshold),
                                     self.hint_line_fill, ~background, self.hint_whole_figure)
            inputs.append(hints)
        x = torch.cat(inputs, dim=1) if len(inputs) > 1 else x
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        skips.pop()  # the innermost features go straight up
        for up in self.up[:-1]:
            x = torch.cat([up(x), skips.pop()], dim=1)
        output = self.up[-1](x)
        if self.hint_input and self.hint_residual:  # the colours are 0 where there is no hint
            scale = torch.where(hints[:, 3:] == 1, self.hint_correction, 2.0)  # 2: tanh's range, anything
            output = (hints[:, :3] + scale * output).clamp(-1, 1)
        return torch.where(background, 1.0, output) if self.background_fill else output
