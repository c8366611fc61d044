"""ColorizationModule: the network, its loss, optimizer and metrics."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch import LightningModule
from torch import Tensor
from torchmetrics import MeanMetric
from torchmetrics.functional.image import structural_similarity_index_measure

from sketch2photo import __version__
from sketch2photo.checkpoints.aliases import upgrade_checkpoint
from sketch2photo.checks import check_model
from sketch2photo.errors import UserError
from sketch2photo.metrics import DATA_RANGE, image_metrics

STEP = "step"


def epoch_metrics(logged: dict) -> dict[str, float]:
    """Logged metrics as floats, without the x-axis value logged as STEP."""
    return {name: float(value) for name, value in logged.items() if name != STEP}


class TrainingDiverged(UserError):
    """The loss became NaN or inf."""


class ColorizationModule(LightningModule):
    """Maps a sketch (B, 3, H, W) in [-1, 1] to a colour image in [-1, 1].

    `net`, `optimizer` and `scheduler` are Hydra configs (dicts with `_target_`), instantiated here,
    so the checkpoint carries them and eval, predict and export need no config of their own
    (configs/model/base.yaml has the defaults; no optimizer: a module for inference only). `net`
    may also be a ready nn.Module, which is not saved: s2p-eval's baselines.
    """

    def __init__(
        self,
        net: dict | torch.nn.Module,
        optimizer: dict | None = None,
        lr: float = 1e-3,
        scheduler: dict | None = None,
        loss: str = "mse",
        ssim_weight: float = 0.84,
        image_size: int = 128,
        channels_last: bool = True,
        compile: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(
            logger=False, ignore=["net"] if isinstance(net, torch.nn.Module) else None
        )
        check_model(lr, loss)
        self.net = net if isinstance(net, torch.nn.Module) else instantiate(net)
        multiple = self.net.size_multiple
        if image_size % multiple:
            raise UserError(
                f"data.image_size={image_size} does not fit {type(self.net).__name__}: it must be a multiple of "
                f"{multiple} (the network halves the size {multiple.bit_length() - 1} times). "
                f"Try data.image_size={max(multiple, round(image_size / multiple) * multiple)}."
            )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        if compile:
            self.net.compile()
        self.val_metrics = image_metrics("val/")
        self.test_metrics = image_metrics("test/")
        self.lpips: torch.nn.Module | None = None
        # The mean loss over all pairs. Not self.log(sync_dist=True): its mean miscounts shards of
        # unequal size, e.g. 3 val pairs on 2 DDP ranks (Lightning issue #21859).
        self.mean_loss = torch.nn.ModuleDict(
            {stage: MeanMetric(nan_strategy="disable") for stage in ("val", "test")}
        )
        self.register_buffer("loss_is_finite", torch.tensor(True), persistent=False)

    def score_lpips(self, network: torch.nn.Module) -> None:
        """Score LPIPS too in validation and test, with metrics.lpips_network(<weights file>)."""
        self.lpips = network
        self.val_metrics = image_metrics("val/", network)
        self.test_metrics = image_metrics("test/", network)

    @property
    def takes_hints(self) -> bool:
        """Whether the network takes a hint map (model.net.hint_input): the checkpoint says so."""
        return self.net.takes_hints

    def forward(self, sketch: Tensor, hints: Tensor | None = None) -> Tensor:
        sketch = sketch.contiguous(memory_format=self.memory_format)
        if not self.takes_hints:
            return self.net(sketch)
        return self.net(
            sketch, None if hints is None else hints.contiguous(memory_format=self.memory_format)
        )

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        if self.hparams.loss == "mse":
            return F.mse_loss(output, target)
        l1 = F.l1_loss(output, target)
        if self.hparams.loss == "l1":
            return l1
        ssim = structural_similarity_index_measure(output, target, data_range=DATA_RANGE)
        weight = self.hparams.ssim_weight
        return (1.0 - weight) * l1 + weight * (1.0 - ssim)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        output = self(batch["sketch"], batch.get("hints"))
        loss = self.loss(output, batch["photo"])
        self.loss_is_finite &= torch.isfinite(loss.detach())  # stays on device: no sync per step
        size = len(output)
        # sync_dist: reduced once at epoch end (on_step=False). Unlike val (see mean_loss), training
        # shards are equal in size (DistributedSampler pads them), so the mean of the ranks' means
        # is the mean.
        self.log(
            "train/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
            sync_dist=True,
        )
        if self.hparams.loss != "mse":
            self.log(
                "train/mse",
                F.mse_loss(output.detach(), batch["photo"]),
                on_step=False,
                on_epoch=True,
                batch_size=size,
                sync_dist=True,
            )
        return loss

    def _evaluate(self, batch: dict, stage: str, metrics) -> Tensor:
        output = self(
            batch["sketch"], batch.get("hints")
        ).contiguous()  # some torchmetrics .view() their input
        size = len(output)
        loss = self.loss(output, batch["photo"])
        if stage == "val":
            self.loss_is_finite &= torch.isfinite(loss)
        self.mean_loss[stage].update(
            loss.expand(size)
        )  # once per pair (nan_strategy="disable" drops weights)
        self.log(f"{stage}/loss", self.mean_loss[stage], on_epoch=True, batch_size=size)
        metrics.update(output, batch["photo"])
        self.log_dict(metrics, on_epoch=True, batch_size=size)
        return output

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._evaluate(
            batch, "test", self.test_metrics
        )  # s2p-eval's per-image rows read the outputs

    def predict_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self(batch["sketch"], batch.get("hints"))

    def configure_optimizers(self) -> Any:
        if not self.hparams.optimizer:
            raise UserError(
                "this model was loaded for inference and has no optimizer config; "
                "train from a .ckpt written by s2p-train, or with init_from=<file.ckpt>."
            )
        optimizer = instantiate(self.hparams.optimizer)(self.net.parameters(), lr=self.hparams.lr)
        if not self.hparams.scheduler:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": instantiate(self.hparams.scheduler)(optimizer),
        }

    # -- divergence: stop with a clear message and never checkpoint NaN weights -------------
    def raise_if_diverged(self, check_weights: bool = False) -> None:
        """One device sync per call: at epoch end, and before each checkpoint write (with the
        weights, which an inf/NaN gradient step can spoil while the loss that produced it was still
        finite)."""
        finite = bool(self.loss_is_finite)
        if finite and check_weights:
            finite = bool(torch.stack([torch.isfinite(p).all() for p in self.parameters()]).all())
        if not finite:
            raise TrainingDiverged(
                f"the loss became NaN or inf in epoch {self.current_epoch + 1}; training stopped. "
                f"The last good checkpoint (if any) is kept in {self.trainer.default_root_dir}/checkpoints. "
                f"Lower model.lr (now {self.hparams.lr}) or check the data."
            )

    # TensorBoard's x-axis is the epoch (Lightning takes a logged "step" as the step), so that runs
    # of any batch size line up; the value never reaches metrics.json (see epoch_metrics)
    def on_train_epoch_end(self) -> None:
        self.log(STEP, float(self.current_epoch + 1))
        self.raise_if_diverged()

    def on_validation_epoch_end(self) -> None:
        self.log(STEP, float(self.current_epoch + 1))

    def on_test_epoch_end(self) -> None:
        self.log(STEP, float(max(self.current_epoch, 1)))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Trainer.fit(ckpt_path=...) of a checkpoint from an earlier version: its weights' names as
        today's."""
        upgrade_checkpoint(checkpoint, "ckpt_path")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.raise_if_diverged(check_weights=True)
        checkpoint["sketch2photo_version"] = __version__
