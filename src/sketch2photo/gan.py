"""Pix2PixModule: pix2pix (Isola et al. 2017), a generator trained against a PatchGAN.

    sketch [+ hints] -> generator (any of model.net: the U-Net in its background and hint
                        conditioning) -> fake
    discriminator (nets/patchgan.py) on (sketch [+ hints], real or fake): a logit per patch
    D: its adversarial loss on real and fake;  G: adversarial loss + loss_weight * model.loss

A pixel loss alone averages the colours a sketch could have into grey-brown; the discriminator
calls that fake. The generator is everything inference needs: checkpoints/read.py's load_module
serves it alone to s2p-eval, s2p-predict, s2p-export and s2p-app. Validation, test and metrics are
ColorizationModule's. Optimisation is manual, as Lightning's GAN example: two Adam optimizers, one
step each per batch, toggled so that each backward reaches only its own network.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from torch import Tensor, nn

from sketch2photo.checks import check_gan
from sketch2photo.hints import HINT_CHANNELS
from sketch2photo.module import ColorizationModule

log = logging.getLogger("sketch2photo.train")
WATCH_KEY = "sketch2photo_discriminator_watch"  # the checkpoint's entry for the warning's state


class AdversarialLoss:
    """vanilla (binary cross-entropy on logits, pix2pix's) | lsgan (least squares) | hinge, on the
    discriminator's logits; and where a logit counts as "real" for D's accuracy."""

    def __init__(self, kind: str):
        self.kind = kind
        self.threshold = 0.5 if kind == "lsgan" else 0.0  # lsgan's labels are 0 and 1 themselves

    def discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        if self.kind == "hinge":
            return 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())
        return 0.5 * (self._towards(real, 1.0) + self._towards(fake, 0.0))

    def generator(self, fake: Tensor) -> Tensor:
        return -fake.mean() if self.kind == "hinge" else self._towards(fake, 1.0)

    def _towards(self, logits: Tensor, label: float) -> Tensor:
        target = torch.full_like(logits, label)
        if self.kind == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(logits, target)


def init_normal(network: nn.Module, gain: float) -> None:
    """pix2pix's init: convolution weights N(0, gain), norm scales N(1, gain), biases 0."""
    for layer in network.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, gain)
        elif isinstance(layer, (nn.BatchNorm2d, nn.InstanceNorm2d)) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, gain)
        else:
            continue
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def linear_decay(max_epochs: int | None, decay_start: float):
    """pix2pix's schedule: the rate stays, then falls linearly towards 0 from epoch
    decay_start * max_epochs on (to 1/(n + 1) of it in the last of the n decaying epochs)."""
    if not max_epochs or max_epochs < 0:  # trained by steps or time: no known end to decay to
        return lambda epoch: 1.0
    start = round(decay_start * max_epochs)
    return lambda epoch: 1.0 - max(0, epoch - start + 1) / (max_epochs - start + 1)


class Pix2PixModule(ColorizationModule):
    """net: the generator's config (as model=unet's); discriminator: the PatchGAN's, given its
    in_channels here; lr: both networks' Adam rate, d_lr (None: lr) the discriminator's; betas:
    Adam's; gan_loss: vanilla | lsgan | hinge; loss, ssim_weight: the pixel loss (as
    ColorizationModule's), weighted by loss_weight (pix2pix's lambda: 100); init_gain: N(0, gain)
    init of both networks (None: PyTorch's own); decay_start: the fraction of trainer.max_epochs
    after which both rates fall linearly to 0 (1.0: never); d_wins_loss, d_wins_epochs: warn once
    when D's epoch loss stays under d_wins_loss for d_wins_epochs epochs in a row."""

    def __init__(
        self,
        net: dict,
        discriminator: dict,
        lr: float = 2e-4,
        d_lr: float | None = None,
        betas: tuple[float, float] = (0.5, 0.999),
        gan_loss: str = "vanilla",
        loss: str = "l1",
        loss_weight: float = 100.0,
        ssim_weight: float = 0.84,
        init_gain: float | None = 0.02,
        decay_start: float = 0.5,
        d_wins_loss: float = 0.05,
        d_wins_epochs: int = 5,
        image_size: int = 128,
        channels_last: bool = False,
        compile: bool = False,
    ):
        check_gan(d_lr, betas, gan_loss, loss_weight, init_gain, decay_start)
        super().__init__(
            net,
            lr=lr,
            loss=loss,
            ssim_weight=ssim_weight,
            image_size=image_size,
            channels_last=channels_last,
            compile=compile,
        )
        # this class's arguments, without those of the parent's that it has not
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler"])
        self.automatic_optimization = False
        condition = 3 + HINT_CHANNELS * self.takes_hints
        self.discriminator = instantiate(discriminator, in_channels=condition + 3)
        if init_gain:
            init_normal(self.net, init_gain)
            init_normal(self.discriminator, init_gain)
        self.adversarial = AdversarialLoss(gan_loss)
        self.d_wins_streak, self.warned_d_wins = 0, False

    def condition(self, batch: dict) -> Tensor:
        """What D sees beside the image: the sketch, and the hint map if the generator takes one."""
        sketch = batch["sketch"]
        if not self.takes_hints:
            return sketch
        hints = batch.get("hints")
        if hints is None:
            hints = sketch.new_zeros(sketch.shape[0], HINT_CHANNELS, *sketch.shape[2:])
        return torch.cat([sketch, hints.to(sketch.dtype)], dim=1)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        g_optimizer, d_optimizer = self.optimizers()
        condition, photo = self.condition(batch), batch["photo"]
        fake = self(batch["sketch"], batch.get("hints"))
        with self.toggled_optimizer(d_optimizer):
            real_logits = self.discriminator(torch.cat([condition, photo], dim=1))
            fake_logits = self.discriminator(torch.cat([condition, fake.detach()], dim=1))
            d_loss = self.adversarial.discriminator(real_logits, fake_logits)
            self.step(d_optimizer, d_loss)
        with self.toggled_optimizer(g_optimizer):
            g_adversarial = self.adversarial.generator(
                self.discriminator(torch.cat([condition, fake], dim=1))
            )
            g_pixel = self.loss(fake, photo)
            g_loss = g_adversarial + self.hparams.loss_weight * g_pixel
            self.step(g_optimizer, g_loss)
        self.loss_is_finite &= torch.isfinite(g_loss.detach()) & torch.isfinite(d_loss.detach())
        threshold = self.adversarial.threshold
        losses = {
            "train/loss": g_loss,  # G's objective: what a checkpoint without validation monitors
            "train/g_loss": g_loss,
            "train/g_adversarial": g_adversarial,
            "train/g_pixel": g_pixel,
            "train/d_loss": d_loss,
            "train/d_real_accuracy": (real_logits > threshold).float().mean(),
            "train/d_fake_accuracy": (fake_logits <= threshold).float().mean(),
        }
        # per epoch, reduced over DDP ranks once at its end (shards are equal: see the parent's)
        self.log_dict(
            {name: value.detach() for name, value in losses.items()},
            on_step=False,
            on_epoch=True,
            batch_size=len(photo),
            sync_dist=True,
        )

    def step(self, optimizer, loss: Tensor) -> None:
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()

    def configure_optimizers(self):
        betas = tuple(self.hparams.betas)
        g_optimizer = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, betas=betas)
        d_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=self.hparams.d_lr or self.hparams.lr, betas=betas
        )
        decay = linear_decay(self.trainer.max_epochs, self.hparams.decay_start)
        schedulers = [
            torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (g_optimizer, d_optimizer)
        ]
        return [g_optimizer, d_optimizer], schedulers

    def on_train_epoch_start(self) -> None:
        """Manual optimisation steps no scheduler: each is brought to the epoch about to run, which
        also holds after a resume, whenever in the epoch the checkpoint was written."""
        for scheduler in self.lr_schedulers():
            while scheduler.last_epoch < self.current_epoch:
                scheduler.step()

    def on_train_epoch_end(self) -> None:
        d_loss = self.trainer.callback_metrics.get("train/d_loss")
        if d_loss is not None:
            self.watch_discriminator(float(d_loss))
        super().on_train_epoch_end()

    def watch_discriminator(self, d_loss: float) -> None:
        """Warn once when D has won outright (its loss near 0) for d_wins_epochs epochs in a row."""
        won = d_loss < self.hparams.d_wins_loss
        self.d_wins_streak = self.d_wins_streak + 1 if won else 0
        if self.d_wins_streak < self.hparams.d_wins_epochs or self.warned_d_wins:
            return
        self.warned_d_wins = True
        if rank_zero_only.rank == 0:
            log.warning(
                "the discriminator has won outright for %d epochs (train/d_loss %.3g < "
                "model.d_wins_loss=%g): it tells real from generated so easily that the generator "
                "learns little from it. Usual remedies: a lower discriminator rate (model.d_lr=%g), "
                "a smaller discriminator (model.discriminator.n_layers=2 or "
                "model.discriminator.ndf=32), model.gan_loss=lsgan, or more data "
                "(data.augment.enabled=true).",
                self.d_wins_streak,
                d_loss,
                self.hparams.d_wins_loss,
                (self.hparams.d_lr or self.hparams.lr) / 10,
            )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[WATCH_KEY] = {"streak": self.d_wins_streak, "warned": self.warned_d_wins}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        watch = checkpoint.get(WATCH_KEY) or {}
        self.d_wins_streak = int(watch.get("streak", 0))
        self.warned_d_wins = bool(watch.get("warned", False))
