"""The run's callbacks: metric history, sample grids, the last checkpoint and the save on interrupt."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from PIL import Image, ImageDraw, ImageFont
from torchvision.transforms.v2.functional import pil_to_tensor, to_pil_image
from torchvision.utils import make_grid, save_image

from sketch2photo.data.hints import with_hints
from sketch2photo.module import epoch_metrics

log = logging.getLogger(__name__)


class MetricHistory(Callback):
    """Epoch-level metrics, one row per epoch; kept in checkpoints so a resumed run continues it."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.rows.append({"epoch": trainer.current_epoch + 1, **epoch_metrics(trainer.callback_metrics)})

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        # Resuming restores earlier epochs; trainer.test(ckpt_path=<best>) restores an older state,
        # which must not drop the epochs this process has recorded since.
        by_epoch = {row["epoch"]: row for row in state["rows"]}
        by_epoch.update({row["epoch"]: row for row in self.rows})
        self.rows = [by_epoch[epoch] for epoch in sorted(by_epoch)]


ROW_LABELS = ("sketch", "output", "target")
LABEL_WIDTH, TITLE_HEIGHT = 52, 14  # px of the margins that carry the labels


def sample_grid(sketches: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor, title: str = "",
                column_notes: list[str] | None = None) -> torch.Tensor:
    """float [-1, 1] batches of n images -> one (3, H', W') image in [0, 1]: rows sketch | output |
    target, labelled on the left, with `title` above and a note over each column that has one."""
    images = torch.cat([rows.detach().float().cpu() for rows in (sketches, outputs, targets)])
    grid = to_pil_image(make_grid(images, nrow=len(sketches), padding=2, normalize=True, value_range=(-1, 1), pad_value=1.0))
    canvas = Image.new("RGB", (grid.width + LABEL_WIDTH, grid.height + TITLE_HEIGHT), "white")
    canvas.paste(grid, (LABEL_WIDTH, TITLE_HEIGHT))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    row_height, column_width = grid.height / 3, (grid.width - 2) / len(sketches)
    for row, label in enumerate(ROW_LABELS):
        draw.text((3, TITLE_HEIGHT + (row + 0.5) * row_height - 6), label, fill="black", font=font)
    draw.text((3, 1), title, fill="black", font=font)
    for column, note in enumerate(column_notes or []):
        if note:
            draw.text((LABEL_WIDTH + 4 + column * column_width, 1), note, fill=(200, 0, 0), font=font)
    return pil_to_tensor(canvas).float() / 255


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
        if not trainer.is_global_zero or self.num_samples <= 0 or trainer.fast_dev_run:  # a dry run saves nothing
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
        grid = sample_grid(sketches, outputs, self.batch["photo"], f"epoch {epoch}", notes if any(notes) else None)
        path = Path(trainer.default_root_dir) / "samples" / f"epoch_{epoch:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, global_step=epoch)  # the epoch, as the scalars
        self.last_written = epoch


class LastCheckpoint(ModelCheckpoint):
    """checkpoints/last.ckpt, what `resume=<run dir>` continues from: every `every_n_epochs` epochs
    and at the end of training, so that the final epochs are saved whatever max_epochs is.

    Not Lightning's save_last, which writes last.ckpt only when the monitored checkpoint is written.
    """

    def __init__(self, dirpath: str, every_n_epochs: int = 1):
        super().__init__(dirpath=dirpath, filename="last", monitor=None, save_top_k=1,
                         every_n_epochs=every_n_epochs, enable_version_counter=False)

    def on_train_end(self, trainer, pl_module) -> None:
        super().on_train_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):  # the final step is not saved yet
            self._save_checkpoint(trainer, self.format_checkpoint_name({}))


class CheckpointOnInterrupt(Callback):
    """Ctrl-C or SIGTERM (a cluster's time limit, `kill`) saves checkpoints/last.ckpt, so that
    `resume=<run dir>` continues from there. Other exceptions save nothing: a crash or a NaN must
    not overwrite the last good checkpoint.

    Only once training has started: before that the model may not hold the resumed weights yet.
    Not Lightning's OnExceptionCheckpoint: with one, fit(ckpt_path=None) resumes from its file, so
    a new run in a used dir would continue the old one, and its teardown deletes the file.

    During training a Ctrl-C stops at the end of the current batch, as Lightning does for SIGTERM.
    Raised at any bytecode, KeyboardInterrupt can leave a lock held (TensorBoard's event writer),
    and the shutdown then hangs on it. A second Ctrl-C stops at once.
    """

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self.training_started = False
        self.stop_requested = False
        self.previous_handler = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.training_started = True
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous_handler = signal.signal(signal.SIGINT, self._request_stop)

    def _request_stop(self, signum, frame) -> None:
        if self.stop_requested:  # the second Ctrl-C
            self._restore_handler()
            raise KeyboardInterrupt
        self.stop_requested = True

    def _stop_if_requested(self, *args) -> None:
        if self.stop_requested:
            self._restore_handler()
            raise KeyboardInterrupt

    on_train_batch_end = on_validation_batch_end = on_train_epoch_end = _stop_if_requested

    def _restore_handler(self) -> None:
        if self.previous_handler is not None and signal.getsignal(signal.SIGINT) == self._request_stop:
            signal.signal(signal.SIGINT, self.previous_handler)
        self.previous_handler = None

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore_handler()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore_handler()  # only if still ours: after a Ctrl-C Lightning ignores SIGINT while it shuts down
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or not self.training_started:
            return
        if trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.path)
        log.warning("Interrupted: saved %s (epoch %d). Resume with: s2p-train resume=%s",
                    self.path, trainer.current_epoch, trainer.default_root_dir)
