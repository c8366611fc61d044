"""Metrics on known inputs, and the per-image metrics agreeing with the dataset-level ones."""

import math

import pytest
import torch

from sketch2photo.metrics import image_metrics, per_image_metrics


def test_identical_images():
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    metrics = image_metrics("x/")(images, images)
    assert metrics["x/ssim"].item() == pytest.approx(1.0, abs=1e-5)
    assert math.isinf(metrics["x/psnr"].item())
    assert metrics["x/mse"].item() == 0
    assert metrics["x/l1"].item() == 0


def test_known_noise_gives_the_expected_psnr():
    target = torch.zeros(4, 3, 64, 64)
    error = 0.1  # |error| everywhere: MSE = 0.01, PSNR = 10 log10(2^2 / 0.01) = 26.02 dB on the [-1, 1] range
    signs = torch.randint(0, 2, target.shape).float() * 2 - 1
    metrics = image_metrics("x/")(target + error * signs, target)
    assert metrics["x/psnr"].item() == pytest.approx(10 * math.log10(4 / 0.01), abs=1e-3)
    assert metrics["x/mse"].item() == pytest.approx(0.01, rel=1e-5)
    assert metrics["x/l1"].item() == pytest.approx(0.1, rel=1e-5)


def test_ssim_uses_the_fixed_data_range():
    """With the range inferred per batch, a dim low-contrast batch would score differently."""
    target = torch.rand(2, 3, 32, 32) * 0.1  # a narrow range of values
    output = target + 0.01
    collection = image_metrics("x/")
    ssim_narrow = collection(output, target)["x/ssim"].item()
    scaled = image_metrics("x/")(output * 10 - 0.5, target * 10 - 0.5)["x/ssim"].item()
    assert ssim_narrow != pytest.approx(
        scaled, abs=1e-3
    )  # a per-batch range would make these equal


def test_per_image_means_equal_the_collection():
    torch.manual_seed(0)
    output, target = torch.rand(5, 3, 32, 32) * 2 - 1, torch.rand(5, 3, 32, 32) * 2 - 1
    collection = image_metrics("")(output, target)
    per_image = per_image_metrics(output, target)
    for name, values in per_image.items():
        assert values.shape == (5,)
        assert values.mean().item() == pytest.approx(collection[name].item(), rel=1e-5)
