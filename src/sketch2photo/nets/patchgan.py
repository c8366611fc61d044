"""The PatchGAN discriminator of pix2pix (Isola et al. 2017): a small fully convolutional network
that scores each overlapping patch of its input as real or generated, one logit per patch.

    (B, in_channels, H, W): the condition (sketch, hints) stacked with a real or generated image
      -> 4x4 convolutions, stride 2 n_layers times, then two at stride 1
      -> (B, 1, H', W') logits, one per patch of receptive_field x receptive_field pixels

With n_layers=3 a logit sees 70x70 pixels (the paper's "70x70 PatchGAN"); each layer fewer
roughly halves that. Widths double per layer from ndf, up to 8 * ndf.
"""

from __future__ import annotations

from torch import Tensor, nn

from sketch2photo.errors import UserError
from sketch2photo.nets.unet import NORMS, _norm

KERNEL = 4


class PatchGAN(nn.Module):
    """in_channels: the condition's channels plus the image's 3; ndf: the first layer's width;
    n_layers: the stride-2 convolutions (3: 70x70 patches); norm: none | batch | instance."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 1:
            raise UserError(
                f"model.discriminator.n_layers={n_layers!r} must be a positive integer "
                "(3: pix2pix's 70x70 patches)."
            )
        if not isinstance(ndf, int) or isinstance(ndf, bool) or ndf < 1:
            raise UserError(
                f"model.discriminator.ndf={ndf!r} must be a positive integer (pix2pix: 64)."
            )
        if norm not in NORMS:
            raise UserError(f"model.discriminator.norm={norm!r} must be one of {', '.join(NORMS)}.")
        widths = [ndf * min(2**layer, 8) for layer in range(n_layers + 1)]
        bias = norm == "none"  # a norm after the convolution makes its bias redundant
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, KERNEL, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for layer in range(1, n_layers + 1):
            stride = 2 if layer < n_layers else 1
            layers += [
                nn.Conv2d(widths[layer - 1], widths[layer], KERNEL, stride, padding=1, bias=bias),
                _norm(norm, widths[layer]),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, KERNEL, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        """The side in pixels of the input patch each output logit sees."""
        field = 1
        for conv in reversed([m for m in self.model if isinstance(m, nn.Conv2d)]):
            field = field * conv.stride[0] + conv.kernel_size[0] - conv.stride[0]
        return field

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> (B, 1, H', W') logits."""
        return self.model(x)
