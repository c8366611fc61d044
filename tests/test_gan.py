"""model=pix2pix: the PatchGAN, the adversarial losses and schedule, a training step that moves both
networks, its checkpoints (served by the generator alone), init_from a regression model, the
allow-list, and the warning when the discriminator wins."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch import Trainer

from sketch2photo.checkpoints.read import load_module, read_checkpoint
from sketch2photo.checks import check_training_config
from sketch2photo.commands.train import train
from sketch2photo.errors import UserError, unwrap
from sketch2photo.gan import AdversarialLoss, Pix2PixModule, linear_decay
from sketch2photo.module import ColorizationModule
from sketch2photo.nets.patchgan import PatchGAN

# The tiny pix2pix every test here trains: the tests' U-Net (depth 2, width 8), a narrow PatchGAN
TINY_GAN = [
    "model=pix2pix",
    "model.net.depth=2",
    "model.net.width=8",
    "model.discriminator.ndf=8",
]


def test_the_patchgan_sees_70_pixels_with_3_layers():
    patchgan = PatchGAN(in_channels=6)
    assert patchgan.receptive_field == 70
    assert PatchGAN(in_channels=6, n_layers=1).receptive_field == 16
    # what the number says: the centre logit's gradient reaches a 70-pixel square, and no further
    image = torch.zeros(1, 6, 128, 128, requires_grad=True)
    logits = patchgan.eval()(image)
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    rows, columns = image.grad.abs().sum(dim=(0, 1)).nonzero(as_tuple=True)
    assert rows.max() - rows.min() + 1 <= 70 and columns.max() - columns.min() + 1 <= 70
    assert rows.max() - rows.min() + 1 > 34  # more than n_layers=2 would see
    widths = [m.out_channels for m in patchgan.model if isinstance(m, torch.nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 1]
    assert [
        m.out_channels
        for m in PatchGAN(in_channels=6, ndf=8, n_layers=2).model
        if isinstance(m, torch.nn.Conv2d)
    ] == [8, 16, 32, 1]


def test_adversarial_losses_on_known_logits():
    zeros, big = torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 10.0)
    vanilla = AdversarialLoss("vanilla")
    assert vanilla.discriminator(zeros, zeros).item() == pytest.approx(math.log(2))
    assert vanilla.discriminator(big, -big).item() == pytest.approx(0.0, abs=1e-4)  # D wins
    assert vanilla.generator(zeros).item() == pytest.approx(math.log(2))
    lsgan = AdversarialLoss("lsgan")
    assert lsgan.discriminator(zeros + 1, zeros).item() == 0.0
    assert lsgan.generator(zeros).item() == 1.0
    assert lsgan.threshold == 0.5
    hinge = AdversarialLoss("hinge")
    assert hinge.discriminator(zeros, zeros).item() == 1.0
    assert hinge.discriminator(zeros + 1, zeros - 1).item() == 0.0
    assert hinge.generator(zeros + 3).item() == -3.0


def test_the_rate_decays_linearly_over_the_second_half():
    decay = linear_decay(10, 0.5)
    assert [decay(epoch) for epoch in range(5)] == [1.0] * 5
    assert [decay(epoch) for epoch in range(5, 10)] == pytest.approx(
        [5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]
    )
    assert linear_decay(10, 1.0)(9) == 1.0
    assert linear_decay(None, 0.5)(100) == 1.0  # trained by steps: no end to decay to


@pytest.mark.parametrize("gan_loss", ["vanilla", "lsgan", "hinge"])
def test_a_training_step_moves_both_networks_and_logs_both_losses(train_config, gan_loss):
    cfg = train_config(*TINY_GAN, f"model.gan_loss={gan_loss}", "model.net.hint_input=true")
    model = instantiate(cfg.model, _recursive_=False, _convert_="all")
    assert isinstance(model, Pix2PixModule)
    assert model.discriminator.model[0].in_channels == 3 + 4 + 3  # sketch, hint map, image
    # parameters, not state_dict(): batch norm's running statistics change in a forward alone
    before = {name: value.detach().clone() for name, value in model.named_parameters()}
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=instantiate(cfg.data, _convert_="all"))
    changed = {
        name.split(".")[0]
        for name, value in model.named_parameters()
        if not torch.equal(value, before[name])
    }
    assert changed == {"net", "discriminator"}
    logged = trainer.callback_metrics
    for name in ("train/d_loss", "train/g_loss", "train/d_real_accuracy", "train/d_fake_accuracy"):
        assert torch.isfinite(logged[name]), name
    assert 0 <= logged["train/d_real_accuracy"] <= 1
    assert logged["train/g_loss"] == pytest.approx(
        float(logged["train/g_adversarial"] + 100 * logged["train/g_pixel"]), rel=1e-5
    )


def test_rates_schedules_and_both_optimizers_are_checkpointed(train_config, tmp_path):
    train(
        train_config(
            *TINY_GAN,
            "trainer.max_epochs=4",
            "model.lr=4e-4",
            "model.d_lr=1e-4",
            "data.batch_size=4",
        )
    )
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(checkpoint["optimizer_states"]) == 2 and len(checkpoint["lr_schedulers"]) == 2
    g_schedule, d_schedule = checkpoint["lr_schedulers"]
    # the 4th epoch (index 3) ran at 1 - (3 - 2 + 1) / (4 - 2 + 1) = 1/3 of each rate
    assert g_schedule["_last_lr"] == pytest.approx([4e-4 / 3])
    assert d_schedule["_last_lr"] == pytest.approx([1e-4 / 3])
    assert [group["betas"] for group in checkpoint["optimizer_states"][0]["param_groups"]] == [
        (0.5, 0.999)
    ]
    assert {name.split(".")[0] for name in checkpoint["state_dict"]} == {"net", "discriminator"}


def test_a_checkpoint_is_served_by_its_generator(train_config, tmp_path):
    train(train_config(*TINY_GAN, "trainer.max_epochs=1", "model.net.hint_input=true"))
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    served = load_module(path)
    assert type(served) is ColorizationModule and served.takes_hints
    assert not any(name.startswith("discriminator") for name in served.state_dict())
    trained = Pix2PixModule(**read_checkpoint(path)["hyper_parameters"])
    trained.load_state_dict(read_checkpoint(path)["state_dict"])
    sketch, hints = torch.rand(2, 3, 32, 32) * 2 - 1, torch.zeros(2, 4, 32, 32)
    with torch.inference_mode():
        assert torch.equal(served(sketch, hints), trained.eval()(sketch, hints))


def test_init_from_a_regression_model_starts_the_generator_there(
    train_config, tiny_checkpoint, tmp_path
):
    # a rate so small that the weights stay where they started
    train(train_config(*TINY_GAN, f"init_from={tiny_checkpoint}", "model.lr=1e-12"))
    start = read_checkpoint(tiny_checkpoint)["state_dict"]
    trained = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["state_dict"]
    weights = [name for name in start if name.endswith(".weight")]
    assert weights
    for name in weights:
        assert torch.allclose(trained[name], start[name], atol=1e-6), name
    with pytest.raises(UserError, match=r"holds a regression model.*init_from="):
        train(train_config(*TINY_GAN, f"ckpt_path={tiny_checkpoint}"))


def test_the_allow_list_admits_the_patchgan_and_nothing_more(train_config, tmp_path):
    train(train_config(*TINY_GAN, "trainer.max_epochs=1"))
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert load_module(tmp_path / "run" / "checkpoints" / "last.ckpt", checkpoint)
    for place, target in (
        ("discriminator", "os.system"),
        ("discriminator", "sketch2photo.nets.unet.UNet"),
        ("net", "sketch2photo.nets.patchgan.PatchGAN"),
    ):
        edited = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
        edited["hyper_parameters"][place]["_target_"] = target
        path = tmp_path / f"{place}-{target}.ckpt"
        torch.save(edited, path)
        with pytest.raises(UserError, match=rf"asks to instantiate '{target}' \(at {place}\)"):
            load_module(path)


def test_the_discriminator_winning_is_warned_once(caplog):
    model = Pix2PixModule(
        net={"_target_": "sketch2photo.nets.unet.UNet", "depth": 2, "width": 8},
        discriminator={"_target_": "sketch2photo.nets.patchgan.PatchGAN", "ndf": 8},
        d_wins_epochs=3,
        image_size=32,
    )
    with caplog.at_level(logging.WARNING, logger="sketch2photo.train"):
        for d_loss in (0.01, 0.01, 0.3, 0.01, 0.01):  # interrupted: no warning yet
            model.watch_discriminator(d_loss)
        assert not caplog.records
        for d_loss in (0.01, 0.001, 0.0):
            model.watch_discriminator(d_loss)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "won outright for 3 epochs" in message
    assert "model.d_lr=2e-05" in message and "model.gan_loss=lsgan" in message


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.gan_loss=wgan", "model.gan_loss='wgan' must be one of vanilla, lsgan, hinge"),
        ("model.d_lr=-1", "model.d_lr=-1 must be a positive number"),
        ("model.betas=[0.5]", "model.betas=[0.5] must be two numbers"),
        ("model.decay_start=2", "model.decay_start=2 must be in [0, 1]"),
        ("model.discriminator.n_layers=0", "model.discriminator.n_layers=0 must be a positive"),
        (
            "trainer.gradient_clip_val=1",
            "trainer.gradient_clip_val=1 does not apply to model=pix2pix",
        ),
        (
            "trainer.accumulate_grad_batches=2",
            "trainer.accumulate_grad_batches=2 does not apply to model=pix2pix",
        ),
    ],
)
def test_bad_gan_settings_are_one_clear_line(train_config, override, message):
    cfg = train_config(*TINY_GAN, override)
    with pytest.raises(Exception) as refused:
        check_training_config(cfg)  # the CLI's precheck, before torch
        instantiate(cfg.model, _recursive_=False, _convert_="all")
    error = unwrap(refused.value)
    assert isinstance(error, UserError) and message in str(error)
