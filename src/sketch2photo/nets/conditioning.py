"""What a sketch says beyond its pixels, given to any generator: its background and colour hints.

    sketch (B, 3, H, W) [+ hint map (B, 4, H, W)]
      -> background (regions.py) as a 4th channel; hints spread over their regions (hints/spread.py)
      -> the generator, on the channels stacked
      -> its output, or the spread hints plus its bounded correction; the background painted white

The background is the paper reachable from the border without crossing a line: line art encloses
its figure, and in the photos everything outside the outline is white. The hints are a second
input, 4 more channels. The model.net keys (model.net.background_input, model.net.hint_input, ...)
are this wrapper's; every other model.net key is the generator's (model.net.depth, ...).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sketch2photo.errors import UserError
from sketch2photo.hints import HINT_CHANNELS
from sketch2photo.hints.spread import spread_hints
from sketch2photo.nets.unet import UNet
from sketch2photo.regions import background_and_regions

GENERATORS = {
    "unet": UNet
}  # model.net.generator: a name, never an import path, so a checkpoint can name only these


class ConditionedGenerator(nn.Module):
    """generator: the network inside (unet), given **generator_args (its own shape) and the input
    channels these options add. background_input: the sketch's background as a 4th input channel;
    background_fill: painted white in the output; background_threshold: the brightness (0..1) above
    which a sketch pixel is paper. hint_input: the (B, 4, H, W) hint map as 4 more channels;
    hint_spread: spread each hint over the region it falls in first; hint_residual: the output is
    the spread hints plus a correction, not the whole image; hint_correction: with hint_residual,
    the largest correction where a hint reached (elsewhere 2, the whole range): small values make
    the network keep the colours it is given."""

    def __init__(
        self,
        generator: str = "unet",
        background_input: bool = False,
        background_fill: bool = False,
        background_threshold: float = 0.9,
        hint_input: bool = False,
        hint_spread: bool = True,
        hint_residual: bool = False,
        hint_correction: float = 2.0,
        **generator_args,
    ):
        super().__init__()
        if generator not in GENERATORS:
            raise UserError(
                f"model.net.generator={generator!r} must be one of {', '.join(GENERATORS)}."
            )
        if (
            not isinstance(background_threshold, (int, float))
            or not 0.0 < background_threshold < 1.0
        ):
            raise UserError(
                f"model.net.background_threshold={background_threshold!r} must be in (0, 1): "
                "the brightness above which a sketch pixel counts as paper."
            )
        if hint_residual and not hint_input:
            raise UserError(
                "model.net.hint_residual=true corrects the spread hints, so it needs "
                "model.net.hint_input=true; set both, or neither."
            )
        if hint_correction != 2.0 and not hint_residual:
            raise UserError(
                f"model.net.hint_correction={hint_correction} bounds the correction of "
                "model.net.hint_residual=true, which is off; set it too, or drop hint_correction."
            )
        self.background_input, self.background_fill = background_input, background_fill
        self.background_threshold = background_threshold
        self.hint_input, self.hint_spread = hint_input, hint_spread
        self.hint_residual, self.hint_correction = hint_residual, hint_correction
        in_channels = 3 + background_input + HINT_CHANNELS * hint_input
        self.generator = GENERATORS[generator](
            in_channels=in_channels, out_channels=3, **generator_args
        )

    @property
    def size_multiple(self) -> int:
        return self.generator.size_multiple

    @property
    def takes_hints(self) -> bool:
        return self.hint_input

    def forward(self, sketch: Tensor, hints: Tensor | None = None) -> Tensor:
        """(B, 3, H, W) sketch in [-1, 1], optional (B, 4, H, W) hint map ->
        (B, 3, H, W) in [-1, 1]."""
        spread = self.hint_input and self.hint_spread
        if self.background_input or self.background_fill or spread:
            # (B, 1, H, W): bool, and the regions' labels (or a bool mask when traced)
            background, regions = background_and_regions(sketch, self.background_threshold)
        inputs = [sketch]
        if self.background_input:
            inputs.append(background.to(sketch.dtype) * 2 - 1)
        if self.hint_input:
            if hints is None:
                hints = sketch.new_zeros(sketch.shape[0], HINT_CHANNELS, *sketch.shape[2:])
            if spread:
                hints = spread_hints(hints.to(sketch.dtype), regions)
            inputs.append(hints)
        output = self.generator(torch.cat(inputs, dim=1) if len(inputs) > 1 else sketch)
        if self.hint_input and self.hint_residual:  # the colours are 0 where there is no hint
            scale = torch.where(
                hints[:, 3:] == 1, self.hint_correction, 2.0
            )  # 2: tanh's range, anything
            output = (hints[:, :3] + scale * output).clamp(-1, 1)
        return torch.where(background, 1.0, output) if self.background_fill else output
