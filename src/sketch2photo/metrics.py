"""Image-quality metrics on [-1, 1] images, with the data range set explicitly.

    psnr, ssim, l1, mse    torchmetrics; PSNR per image, then averaged
    de00                   CIEDE2000 colour difference, mean over pixels in CIE Lab (scikit-image)
    cf, cf_target          colourfulness (Hasler & Suesstrunk 2003) of the output and of the target
    dcf, dcf_signed        |CF(target) - CF(output)| and CF(target) - CF(output): how much greyer
                           (> 0) or more colourful (< 0) the output is than the truth
    haarpsi                HaarPSI (piq): full-reference, colour-aware (YIQ chroma), no weights
    lpips                  LPIPS (torchmetrics' network), only with a local backbone weights file
                           (lpips_weights=<file>): nothing is downloaded

PSNR rewards the average of the possible colours, grey-brown; de00 and dcf see it. Every metric is
the mean over images of a per-image value, so per_image_metrics() gives the same numbers image by
image (s2p-eval's per_image.csv). They are scored in validation and test, never in training steps.

torch, torchmetrics, scikit-image and piq are imported inside the functions: `higher_is_better`
serves every command's start (cli.py, before Hydra has composed the config) and s2p-compare, which
should not pay their import time.
"""

from __future__ import annotations

import functools
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
HIGHER_IS_BETTER = ("psnr", "ssim", "haarpsi")
NO_BETTER = ("cf", "cf_target", "dcf_signed")  # descriptions of the output, not qualities


def image_metrics(prefix: str, lpips: torch.nn.Module | None = None) -> MetricCollection:
    """Dataset-level means of per-image PSNR, SSIM, L1, MSE and the colour measures (with LPIPS
    when its network is given: lpips_network), e.g. 'val/psnr', 'val/de00'."""
    from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection
    from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

    per_image_mean = _per_image_mean_class()
    measures = dict(COLOUR_MEASURES)
    if lpips is not None:
        measures["lpips"] = functools.partial(lpips_distance, lpips)
    return MetricCollection(
        {
            "psnr": PeakSignalNoiseRatio(data_range=DATA_RANGE, dim=PER_IMAGE),
            "ssim": StructuralSimilarityIndexMeasure(data_range=DATA_RANGE),
            "l1": MeanAbsoluteError(),
            "mse": MeanSquaredError(),
            **{name: per_image_mean(measure) for name, measure in measures.items()},
        },
        prefix=prefix,
        # Grouping merges metrics whose states match after the first batch, which per-image means
        # of different measures can (identical images give 0 for several): keep each separate.
        compute_groups=False,
    )


def per_image_metrics(
    output: torch.Tensor, target: torch.Tensor, lpips: torch.nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Each metric for each image, shape (B,); their means equal image_metrics() on the same
    batch."""
    from torchmetrics.functional.image import (
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    values = {
        "psnr": peak_signal_noise_ratio(
            output, target, data_range=DATA_RANGE, dim=PER_IMAGE, reduction="none"
        ),
        "ssim": structural_similarity_index_measure(
            output, target, data_range=DATA_RANGE, reduction="none"
        ),
        "l1": (output - target).abs().mean(dim=PER_IMAGE),
        "mse": (output - target).square().mean(dim=PER_IMAGE),
        **{name: measure(output, target) for name, measure in COLOUR_MEASURES.items()},
    }
    if lpips is not None:
        values["lpips"] = lpips_distance(lpips, output, target)
    return values


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped (a model's output may overshoot slightly)."""
    return ((images.detach().float() + 1) / 2).clamp(0, 1)


def ciede2000(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) the mean CIEDE2000 colour difference over each image's pixels: sRGB (D65) to CIE Lab
    and deltaE_ciede2000 (kL = kC = kH = 1), scikit-image's, on the CPU."""
    import torch
    from skimage.color import deltaE_ciede2000, rgb2lab

    def lab(images: torch.Tensor):
        return rgb2lab(to_unit_range(images).permute(0, 2, 3, 1).cpu().double().numpy())

    difference = deltaE_ciede2000(lab(output), lab(target), channel_axis=-1)
    return torch.from_numpy(difference.mean(axis=(1, 2))).float().to(output.device)


def colourfulness(images: torch.Tensor) -> torch.Tensor:
    """(B,) the colourfulness M of Hasler and Suesstrunk (2003), on 0..255 RGB:
    rg = R - G, yb = (R + G) / 2 - B, M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 +
    mean(yb)^2). 0 for any grey image; the paper rates ~33 'moderately', ~59 'quite', ~82
    'highly' colourful. Written here: scikit-image, piq and torchmetrics have no colourfulness."""
    red, green, blue = (to_unit_range(images) * 255).unbind(dim=1)
    rg, yb = red - green, (red + green) / 2 - blue
    spread = (rg.var(dim=(1, 2), correction=0) + yb.var(dim=(1, 2), correction=0)).sqrt()
    mean = (rg.mean(dim=(1, 2)).square() + yb.mean(dim=(1, 2)).square()).sqrt()
    return spread + 0.3 * mean


def haarpsi(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) HaarPSI (Reisenhofer et al. 2018), piq's, on RGB: its chroma term compares the YIQ
    I and Q channels. 1 for identical images."""
    import piq

    if min(output.shape[-2:]) < 16:  # piq's Haar filters need 16 px: no score, not an error
        return output.new_full(output.shape[:1], float("nan"))
    # piq refuses NaN input; a diverged output gets NaN, and the run stops on its loss
    finite = output.isfinite().flatten(1).all(dim=1)
    score = piq.haarpsi(
        to_unit_range(output).nan_to_num(0.0), to_unit_range(target), reduction="none"
    )
    return score.masked_fill(~finite, float("nan"))


def _cf(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return colourfulness(output)


def _cf_target(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return colourfulness(target)


def _dcf_signed(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return colourfulness(target) - colourfulness(output)


def _dcf(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return _dcf_signed(output, target).abs()


# The per-image measures beside torchmetrics' four, (output, target) -> (B,), in column order
COLOUR_MEASURES = {
    "de00": ciede2000,
    "cf": _cf,
    "cf_target": _cf_target,
    "dcf": _dcf,
    "dcf_signed": _dcf_signed,
    "haarpsi": haarpsi,
}


def lpips_network(weights: str) -> torch.nn.Module:
    """torchmetrics' LPIPS network (AlexNet), its linear layers as torchmetrics ships them and its
    backbone from `weights`: torchvision's ImageNet AlexNet state dict (alexnet-owt-7be5be79.pth,
    as torch.hub caches it), read with weights_only. Its weights never go into a checkpoint: the
    file is this machine's, not the run's."""
    from pathlib import Path

    import torch
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    from sketch2photo.errors import UserError

    if not Path(weights).is_file():
        raise UserError(
            f"lpips_weights={weights} does not exist; give torchvision's AlexNet ImageNet weights "
            "(alexnet-owt-7be5be79.pth, e.g. from ~/.cache/torch/hub/checkpoints), or lpips_weights=null."
        )
    network = _NoTrainLpips(net="alex", pnet_rand=True)  # random backbone: no download
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        backbone = network.net.state_dict()
        # torchmetrics slices torchvision's `features` and keeps each layer's index:
        # features.3.weight is slice2.3.weight
        network.net.load_state_dict(
            {name: state["features." + name.split(".", 1)[1]] for name in backbone}
        )
    except Exception as error:
        raise UserError(
            f"lpips_weights={weights} is not torchvision's AlexNet state dict "
            f"({type(error).__name__}: {error})."
        ) from None
    own = network.state_dict()  # frozen: these stay its weights
    network.register_state_dict_post_hook(_leave_out_of_checkpoints)
    network.register_load_state_dict_pre_hook(functools.partial(_keep_own_weights, own))
    return network.requires_grad_(False)


def _leave_out_of_checkpoints(module, state_dict, prefix, local_metadata) -> None:
    for name in [name for name in state_dict if name.startswith(prefix)]:
        del state_dict[name]


def _keep_own_weights(own: dict, module, state_dict, prefix, *args) -> None:
    """A checkpoint holds none of the network's weights: loading one keeps them."""
    for name, value in own.items():
        state_dict.setdefault(prefix + name, value)


def lpips_distance(network: torch.nn.Module, output: torch.Tensor, target: torch.Tensor):
    """(B,) LPIPS of each image against its target: lower is closer."""
    import torch

    with torch.no_grad():
        return network(output.clamp(-1, 1), target.clamp(-1, 1)).flatten()


@functools.cache
def _per_image_mean_class():
    """PerImageMean, made on first use (torchmetrics is imported then)."""
    from torchmetrics import MeanMetric

    class PerImageMean(MeanMetric):
        """The mean over images of measure(output, target) -> (B,), synchronised across DDP
        ranks as a sum and a count."""

        def __init__(self, measure):
            super().__init__(nan_strategy="disable")
            self.measure = measure

        def update(self, output, target) -> None:  # type: ignore[override]
            super().update(self.measure(output, target))

    return PerImageMean


def higher_is_better(name: str) -> bool:
    """'val/psnr', 'val/ssim' and 'val/haarpsi' improve upwards; losses, errors and colour
    differences ('val/loss', 'train/l1', 'val/de00', 'val/dcf') downwards."""
    return name.rsplit("/", 1)[-1] in HIGHER_IS_BETTER
