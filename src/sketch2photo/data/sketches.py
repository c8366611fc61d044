"""Photo to line sketch: the XDoG edge extractor (Winnemoeller et al., 2012), in torch.

A difference of two Gaussians, G(sigma) - tau * G(k * sigma), is near zero on flat regions and
negative on the dark side of every edge; a soft threshold turns it into dark lines on white.
Flat dark areas stay white, so the result is line art, not a thresholded photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as F


@dataclass(frozen=True)
class XDoG:
    """Parameters (all documented in the docs' Data page, pairs from your photos).

    sigma: scale of the edges in pixels; larger gives thicker, fewer lines.
    k: ratio of the two Gaussians' scales.
    tau: weight of the wide Gaussian; closer to 1 keeps fewer, stronger edges.
    epsilon: threshold on the difference of Gaussians, in [0, 1] intensity units.
    phi: steepness of the soft threshold; large gives crisp black lines.
    """

    sigma: float = 1.0
    k: float = 1.6
    tau: float = 0.98
    epsilon: float = -0.01
    phi: float = 200.0

    def __call__(self, photos: torch.Tensor) -> torch.Tensor:
        """float (B, 3 or 1, H, W) in [0, 1] -> float (B, 1, H, W) in [0, 1], lines dark on
        white."""
        if photos.shape[1] == 3:
            weights = torch.tensor([0.299, 0.587, 0.114], dtype=photos.dtype, device=photos.device)
            photos = (photos * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
        narrow = _blur(photos, self.sigma)
        wide = _blur(photos, self.sigma * self.k)
        difference = narrow - self.tau * wide
        soft = 1.0 + torch.tanh(self.phi * (difference - self.epsilon))
        return torch.where(difference >= self.epsilon, torch.ones_like(difference), soft).clamp_(
            0.0, 1.0
        )


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3.0 * sigma + 0.5))
    return F.gaussian_blur(images, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])


def photos_to_sketches(photos_uint8: torch.Tensor, extractor: XDoG | None = None) -> torch.Tensor:
    """uint8 (B, 3, H, W) photos -> uint8 (B, 1, H, W) sketches."""
    extractor = extractor or XDoG()
    sketches = extractor(photos_uint8.float() / 255.0)
    return (sketches * 255.0).round_().to(torch.uint8)
