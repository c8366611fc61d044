"""Sample grids: a few pairs as rows of sketch | output | target, written to samples/ and
TensorBoard."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image, ImageDraw, ImageFont
from torchvision.transforms.v2.functional import pil_to_tensor, to_pil_image
from torchvision.utils import make_grid, save_image

from sketch2photo.hints import with_hints

ROW_LABELS = ("sketch", "output", "target")
LABEL_WIDTH, TITLE_HEIGHT = 52, 14  # px of the margins that carry the labels


def sample_grid(
    sketches: torch.Tensor,
    outputs: torch.Tensor,
    targets: torch.Tensor,
    title: str = "",
    column_notes: list[str] | None = None,
) -> torch.Tensor:
    """float [-1, 1] batches of n images -> one (3, H', W') image in [0, 1]: rows sketch | output |
    target, labelled on the left, with `title` above and a note over each column that has one."""
    images = torch.cat([rows.detach().float().cpu() for rows in (sketches, outputs, targets)])
    grid = to_pil_image(
        make_grid(
            images,
            nrow=len(sketches),
            padding=2,
            normalize=True,
            value_range=(-1, 1),
            pad_value=1.0,
        )
    )
    canvas = Image.new("RGB", (grid.width + LABEL_WIDTH, grid.height + TITLE_HEIGHT), "white")
    canvas.paste(grid, (LABEL_WIDTH, TITLE_HEIGHT))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    row_height, column_width = grid.height / 3, (grid.width - 2) / len(sketches)
    for row, label in enumerate(ROW_LABELS):
        draw.text((3, TITLE_HEIGHT + (row + 0.5) * row_height - 6), label, fill="black", font=font)
    draw.text((3, 1), title, fill="black", font=font)
    for column, note in enumerate(column_notes or []):
        if note:
            draw.text(
                (LABEL_WIDTH + 4 + column * column_width, 1), note, fill=(200, 0, 0), font=font
            )
    return pil_to_tensor(canvas).float() / 255


class SampleGrids(Callback):
    """Every `every_n_epochs` (and at the end of fit) write samples/epoch_XXXX.png and a TensorBoard
    image."""

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
        if (
            not trainer.is_global_zero or self.num_samples <= 0 or trainer.fast_dev_run
        ):  # a dry run saves nothing
            return
        if self.batch is None:
            self.batch = trainer.datamodule.sample_batch(self.num_samples)
        sketches = self.batch["sketch"].to(pl_module.device)
        hints = self.batch.get("hints")
        hints = hints.to(pl_module.device) if hints is not None else None
        was_training = pl_module.training
        pl_module.eval()
        with torch.inference_mode():
            outputs = pl_module(sketches, hints)
        if hints is not None:  # the sketch row shows the hints painted on it
            sketches = with_hints(sketches, hints)
        pl_module.train(was_training)
        notes = ["train" if from_train else "" for from_train in self.batch["from_train"]]
        grid = sample_grid(
            sketches, outputs, self.batch["photo"], f"epoch {epoch}", notes if any(notes) else None
        )
        path = Path(trainer.default_root_dir) / "samples" / f"epoch_{epoch:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(
                    "samples", grid, global_step=epoch
                )  # the epoch, as the scalars
        self.last_written = epoch
