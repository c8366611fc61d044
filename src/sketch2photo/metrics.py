"""Image-quality metrics on [-1, 1] images, from torchmetrics, with the data range set explicitly."""

from __future__ import annotations

import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

DATA_RANGE = 2.0  # images live in [-1, 1]; SSIM must not infer the range from each batch
PER_IMAGE = (1, 2, 3)  # PSNR per image, then averaged: the usual convention, not PSNR of the pooled MSE
METRIC_NAMES = ("psnr", "ssim", "l1", "mse")


def image_metrics(prefix: str) -> MetricCollection:
    """Dataset-level means of per-image PSNR and SSIM, and of L1 and MSE, e.g. 'val/psnr'."""
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
    """Each metric for each image, shape (B,); their means equal image_metrics() on the same batch."""
    return {
        "psnr": peak_signal_noise_ratio(output, target, data_range=DATA_RANGE, dim=PER_IMAGE, reduction="none"),
        "ssim": structural_similarity_index_measure(output, target, data_range=DATA_RANGE, reduction="none"),
        "l1": (output - target).abs().mean(dim=PER_IMAGE),
        "mse": (output - target).square().mean(dim=PER_IMAGE),
    }
