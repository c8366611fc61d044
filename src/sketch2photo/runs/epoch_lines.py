"""One log line per epoch when there is no progress bar (output sent to a file, or
trainer.enable_progress_bar=false): what a bar would show, without a line per step."""

from __future__ import annotations

import logging

from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_only

from sketch2photo.module import epoch_metrics

log = logging.getLogger("sketch2photo.train")


class EpochLines(Callback):
    @rank_zero_only
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.progress_bar_callback is not None or trainer.sanity_checking:
            return
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        metrics = epoch_metrics(trainer.callback_metrics)
        log.info(
            "epoch %d%s: %s",
            trainer.current_epoch + 1,
            epochs,
            ", ".join(f"{name}={value:.4g}" for name, value in sorted(metrics.items())),
        )
