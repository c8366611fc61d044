"""Sample grids, the seed's Output.png made properly: rows of sketches, outputs and targets."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid, save_image


def sample_grid(sketches: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] batches of n images -> one (3, H', W') image in [0, 1] with rows sketch | output | target."""
    images = torch.cat([rows.detach().float().cpu() for rows in (sketches, outputs, targets)])
    return make_grid(images, nrow=len(sketches), padding=2, normalize=True, value_range=(-1, 1), pad_value=1.0)


class SampleGrids(Callback):
    """Every `every_n_epochs` (and at the end of fit) write samples/epoch_XXXX.png and a TensorBoard image."""

    def __init__(self, every_n_epochs: int = 20, num_samples: int = 8):
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.batch: dict | None = None
        self.last_written = 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1  # epochs completed
        if self.every_n_epochs > 0 and epoch % self.every_n_epochs == 0:
            self.write(trainer, pl_module, epoch)

    def on_fit_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch != self.last_written:  # current_epoch counts completed epochs here
            self.write(trainer, pl_module, trainer.current_epoch)

    def write(self, trainer, pl_module, epoch: int) -> None:
        if not trainer.is_global_zero or self.num_samples <= 0:
            return
        if self.batch is None:
            self.batch = trainer.datamodule.sample_batch(self.num_samples)
        sketches = self.batch["sketch"].to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        with torch.inference_mode():
            outputs = pl_module(sketches)
        pl_module.train(was_training)
        grid = sample_grid(sketches, outputs, self.batch["photo"])
        path = Path(trainer.default_root_dir) / "samples" / f"epoch_{epoch:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, global_step=trainer.global_step)
        self.last_written = epoch
