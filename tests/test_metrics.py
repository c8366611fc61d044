"""Metrics on known inputs (CIEDE2000 on Sharma et al.'s pairs, colourfulness, dCF, HaarPSI,
LPIPS from a local file), and the per-image metrics agreeing with the dataset-level ones."""

import math

import numpy as np
import pytest
import torch

from sketch2photo.errors import UserError
from sketch2photo.metrics import (
    ciede2000,
    colourfulness,
    image_metrics,
    lpips_distance,
    lpips_network,
    per_image_metrics,
)
from sketch2photo.module import ColorizationModule


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


# Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula", Table 1: pairs 7, 17-20,
# 25-27 (L*, a*, b*) with their published difference; these are inside the sRGB gamut, so an image
# of each colour can hold them.
SHARMA_PAIRS = [
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (61.0, -5.0, 29.0), 22.8977),
    ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
    ((50.0, 2.5, 0.0), (58.0, 24.0, 15.0), 19.4535),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
]


def image_of(lab: tuple[float, float, float], size: int = 8) -> torch.Tensor:
    """A (1, 3, size, size) image in [-1, 1] of one CIE Lab colour."""
    from skimage.color import lab2rgb

    rgb = torch.from_numpy(lab2rgb(np.array(lab, dtype=float))).float()
    return (rgb * 2 - 1).view(1, 3, 1, 1).expand(1, 3, size, size).clone()


@pytest.mark.parametrize("first, second, published", SHARMA_PAIRS)
def test_ciede2000_gives_sharmas_published_differences(first, second, published):
    assert ciede2000(image_of(first), image_of(second)).item() == pytest.approx(published, abs=2e-3)


def test_the_colour_metrics_of_identical_images():
    torch.manual_seed(1)
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    metrics = image_metrics("x/")(images, images)
    assert metrics["x/de00"].item() == pytest.approx(0.0, abs=1e-4)
    assert metrics["x/dcf"].item() == 0 and metrics["x/dcf_signed"].item() == 0
    assert metrics["x/cf"].item() == pytest.approx(metrics["x/cf_target"].item())
    assert metrics["x/haarpsi"].item() == pytest.approx(1.0, abs=1e-4)


def test_a_greyed_copy_has_no_colourfulness_and_a_positive_dcf():
    torch.manual_seed(2)
    colour = torch.rand(4, 3, 32, 32) * 2 - 1
    grey = colour.mean(dim=1, keepdim=True).expand_as(colour)
    per_image = per_image_metrics(grey, colour)
    assert torch.all(per_image["cf"] < 1e-3)
    assert torch.all(per_image["dcf"] > 10) and torch.equal(
        per_image["dcf"], per_image["dcf_signed"]
    )
    assert torch.all(per_image["de00"] > 1)
    assert torch.all(per_image["haarpsi"] < 1)


def test_colourfulness_of_a_known_colour():
    """Pure red: rg = 255, yb = 127.5, no spread: M = 0.3 * sqrt(255^2 + 127.5^2) = 85.53."""
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(2, 3, 16, 16)
    assert colourfulness(red).tolist() == pytest.approx([0.3 * math.hypot(255, 127.5)] * 2)
    assert colourfulness(torch.zeros(1, 3, 16, 16)).item() == pytest.approx(0.0, abs=1e-4)


def test_lpips_from_a_local_weights_file_never_enters_a_checkpoint(tmp_path):
    """Random AlexNet weights saved as torchvision saves them stand in for the ImageNet ones."""
    import torchvision

    torch.manual_seed(3)
    path = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    network = lpips_network(str(path))
    assert torch.equal(
        network.net.state_dict()["slice2.3.weight"],
        torch.load(path, weights_only=True)["features.3.weight"],
    )
    output, target = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    assert lpips_distance(network, target, target).abs().max().item() < 1e-6
    assert torch.all(lpips_distance(network, output, target) > 0)
    collection = image_metrics("x/", network)(output, target)
    per_image = per_image_metrics(output, target, network)
    assert per_image["lpips"].mean().item() == pytest.approx(collection["x/lpips"].item(), rel=1e-5)

    module = ColorizationModule(
        net={"_target_": "sketch2photo.nets.unet.UNet", "depth": 2, "width": 8}, image_size=32
    )
    plain = module.state_dict()
    module.score_lpips(network)
    assert module.state_dict().keys() == plain.keys()  # the file's weights stay the file's
    module.load_state_dict(plain)  # and a checkpoint without them loads
    torch.save(torchvision.models.vgg11(weights=None).state_dict(), tmp_path / "vgg.pth")
    with pytest.raises(UserError, match="vgg.pth is not torchvision's AlexNet state dict"):
        lpips_network(str(tmp_path / "vgg.pth"))
    with pytest.raises(UserError, match="nowhere.pth does not exist"):
        lpips_network(str(tmp_path / "nowhere.pth"))


def test_haarpsi_of_a_diverged_or_tiny_output_is_nan_not_an_error():
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    output = target.clone()
    output[0, 0, 5, 5] = float("nan")  # a diverged output: the run stops on its loss
    scores = per_image_metrics(output, target)["haarpsi"]
    assert scores[0].isnan() and scores[1] == pytest.approx(1.0, abs=1e-4)
    assert per_image_metrics(target[..., :8, :8], target[..., :8, :8])["haarpsi"].isnan().all()
