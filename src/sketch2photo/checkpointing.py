"""Checkpoints that survive being killed: atomic writes, and a save on Ctrl-C."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file in the same folder, fsync, then rename over the old file.

    A kill at any moment leaves either the previous checkpoint or the new one, never half a file.
    (Lightning's default stages the file in the system temp dir and moves it, which is a copy
    when that is another filesystem.)
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        try:
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


class CheckpointOnInterrupt(Callback):
    """Ctrl-C saves checkpoints/last.ckpt, so that `resume=<run dir>` continues from there."""

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or trainer.state.fn != "fit":
            return
        path = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        trainer.save_checkpoint(path)
        log.warning("Interrupted: saved %s (epoch %d). Resume with: s2p-train resume=%s",
                    path, trainer.current_epoch, trainer.default_root_dir)
