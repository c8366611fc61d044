"""Image-quality metrics on [-1, 1] images, from torchmetrics, with the data range set explicitly.

torchmetrics is imported inside the functions: `higher_is_better` serves every command's start
(cli.py, before Hydra has composed the config) and s2p-compare, which should not pay its import
time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torchmetrics import MetricCollection

DATA_RANGE = 2.0  # images live in [-1, 1]; SSIM must not infer the range from each batch
PER_IMAGE = (
    1,
    2,
    3,
)  # PSNR per image, then averaged: the usual convention, not PSNR of the pooled MSE


def image_metrics(prefix: str) -> MetricCollection:
    """Dataset-level means of per-image PSNR and SSIM, and of L1 and MSE, e.g. 'val/psnr'."""
    from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection
    from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

    return MetricCollection(
        {
            "psnr": PeakSignalNoiseRatio(data_range=DATA_RANGE, dim=PER_IMAGE),
            "ssim": StructuralSimilarityIndexMeasure(data_range=DATA_RANGE),
            "l1": MeanAbsoluteError(),
            "mse": MeanSquaredError(),
        },
        prefix=prefix,
    )


def per_image_metrics(output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each metric for each image, shape (B,); their means equal image_metrics() on the same
    batch."""
    from torchmetrics.functional.image import (
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    return {
        "psnr": peak_signal_noise_ratio(
            output, target, data_range=DATA_RANGE, dim=PER_IMAGE, reduction="none"
        ),
        "ssim": structural_similarity_index_measure(
            output, target, data_range=DATA_RANGE, reduction="none"
        ),
        "l1": (output - target).abs().mean(dim=PER_IMAGE),
        "mse": (output - target).square().mean(dim=PER_IMAGE),
    }


def higher_is_better(name: str) -> bool:
    """'val/psnr' and 'val/ssim' improve upwards; losses and errors ('val/loss', 'train/l1')
    downwards."""
    return name.rsplit("/", 1)[-1] in ("psnr", "ssim")
