"""Networks: the seed's autoencoder exactly, U-Net shapes, sizes checked against depth."""

import pytest
import torch
from torch import nn

from helpers import outlined_sketch, serpentine_sketch
from sketch2photo.errors import UserError
from sketch2photo.module import ColorizationModule
from sketch2photo.nets.autoencoder import SeedAutoencoder
from sketch2photo.nets.conditioning import ConditionedGenerator
from sketch2photo.nets.unet import UNet
from sketch2photo.regions import background_mask

AUTOENCODER = {"_target_": "sketch2photo.nets.autoencoder.SeedAutoencoder"}


def test_autoencoder_is_the_seed_network():
    net = SeedAutoencoder()
    layers = [
        (type(m).__name__, getattr(m, "in_channels", None), getattr(m, "out_channels", None))
        for m in net.modules()
        if not isinstance(m, nn.Sequential) and m is not net
    ]
    assert layers == [
        ("Conv2d", 3, 64),
        ("ReLU", None, None),
        ("Conv2d", 64, 128),
        ("ReLU", None, None),
        ("ConvTranspose2d", 128, 64),
        ("ReLU", None, None),
        ("ConvTranspose2d", 64, 3),
        ("Tanh", None, None),
    ]
    for conv in (m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))):
        assert conv.kernel_size == (4, 4)
        assert conv.stride == (2, 2)
        assert conv.padding == (1, 1)
    # the seed's state_dict keys, so its weights load as they are
    assert list(net.state_dict()) == [
        "encoder.0.weight",
        "encoder.0.bias",
        "encoder.2.weight",
        "encoder.2.bias",
        "decoder.0.weight",
        "decoder.0.bias",
        "decoder.2.weight",
        "decoder.2.bias",
    ]
    out = net(torch.rand(2, 3, 128, 128) * 2 - 1)
    assert out.shape == (2, 3, 128, 128)
    assert out.abs().max() <= 1


@pytest.mark.parametrize("depth, size", [(1, 16), (3, 32), (5, 64)])
@pytest.mark.parametrize("norm", ["none", "batch", "instance"])
def test_unet_shapes(depth, size, norm):
    net = UNet(
        depth=depth,
        width=8,
        norm=norm,
        dropout=0.5,
        upsample="bilinear" if depth == 3 else "transpose",
    )
    assert net.size_multiple == 2**depth
    out = net(torch.rand(2, 3, size, size))
    assert out.shape == (2, 3, size, size)
    assert out.abs().max() <= 1


@pytest.mark.parametrize(
    "net, size, hint",
    [
        (AUTOENCODER, 130, "multiple of 4"),
        ({"_target_": "sketch2photo.nets.unet.UNet", "depth": 4}, 72, "multiple of 16"),
    ],
)
def test_image_size_checked_against_the_network(net, size, hint):
    with pytest.raises(UserError, match=f"data.image_size={size}.*{hint}"):
        ColorizationModule(net=net, image_size=size)


def test_bad_model_settings():
    with pytest.raises(UserError, match="model.lr=0"):
        ColorizationModule(net=AUTOENCODER, lr=0)
    with pytest.raises(UserError, match="model.loss='huber'"):
        ColorizationModule(net=AUTOENCODER, loss="huber")
    with pytest.raises(UserError, match="model.net.norm='layer'"):
        UNet(norm="layer")


@pytest.mark.parametrize("loss", ["mse", "l1", "l1+ssim"])
def test_losses(loss):
    module = ColorizationModule(net=AUTOENCODER, loss=loss, image_size=32)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    assert module.loss(target, target).item() == pytest.approx(
        0.0, abs=1e-5
    )  # perfect output, zero loss
    output = torch.zeros_like(target, requires_grad=True)
    value = module.loss(output, target)
    assert value.item() > 0
    value.backward()  # differentiable, including the SSIM term
    assert output.grad.abs().sum() > 0


def test_background_mask_is_the_paper_outside_the_lines():
    mask = background_mask(outlined_sketch())[0, 0]
    assert mask.shape == (32, 32)
    assert mask.dtype == torch.bool
    assert mask[0, 0]
    assert mask[20, 5]
    assert mask[31, 31]  # outside both figures
    assert not mask[5:14, 5:14].any()  # inside the square
    assert not mask[20:29, 22:27].any()
    assert not mask[24, 19:30].any()  # inside the diamond
    assert not mask[4, 4:15].any()  # the lines themselves
    leaky = background_mask(outlined_sketch(gap=True))[0, 0]
    assert leaky[5:14, 5:14].all()  # a gap in the outline lets the fill in


def test_background_mask_is_the_same_traced():
    traced = torch.jit.trace(
        background_mask, -torch.ones(1, 3, 32, 32)
    )  # no paper: eagerly, 8 steps would do
    serpentine = serpentine_sketch()
    assert background_mask(serpentine)[0, 0, 3:29, 7:29].all()  # the corridor's far side is reached
    lines = torch.where(
        torch.rand(3, 3, 32, 32) > 0.3, 1.0, -1.0
    )  # random line art: many enclosed pockets
    for sketch in (serpentine, lines):
        assert torch.equal(traced(sketch), background_mask(sketch))


def test_background_threshold():
    grey = torch.full((1, 3, 8, 8), 0.6)  # brightness 0.8 in [0, 1]
    assert background_mask(grey, threshold=0.7).all()
    assert not background_mask(grey, threshold=0.9).any()


def test_unet_background_options():
    sketch = outlined_sketch().repeat(2, 1, 1, 1)
    both = ConditionedGenerator(
        depth=2, width=8, background_input=True, background_fill=True
    ).eval()
    assert both.generator.down[0][0].in_channels == 4
    output = both(sketch)
    background = background_mask(sketch).expand_as(output)
    assert output.shape == (2, 3, 32, 32)
    assert (output[background] == 1).all()
    assert (output[~background] < 1).all()
    seen = []
    both.generator.down[0][0].register_forward_pre_hook(lambda conv, inputs: seen.append(inputs[0]))
    both(sketch)
    assert torch.equal(seen[0][:, :3], sketch)
    assert torch.equal(seen[0][:, 3:], background_mask(sketch) * 2.0 - 1)
    input_only = ConditionedGenerator(depth=2, width=8, background_input=True).eval()
    input_only.load_state_dict(both.state_dict())  # the same weights: only the fill differs
    unfilled = input_only(sketch)
    assert torch.equal(unfilled[~background], output[~background])
    assert (unfilled[background] < 1).all()
    with pytest.raises(UserError, match=r"model.net.background_threshold=1.5 must be in \(0, 1\)"):
        ConditionedGenerator(background_threshold=1.5)
