"""Checkpoints that survive being killed: atomic writes, and a save on Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file in the same folder, fsync, then rename over the old file.

    A kill at any moment leaves either the previous checkpoint or the new one, never half a file.
    (Lightning's default stages the file in the system temp dir and moves it, which is a copy
    when that is another filesystem.) Ctrl-C during the write is held until the file is in place.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        with interrupts_held_back():
            try:
                with open(partial, "wb") as file:
                    torch.save(checkpoint, file)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)


@contextmanager
def interrupts_held_back():
    """Deliver a Ctrl-C that arrives inside the block only once the block is done.

    Raised inside torch.save's writer, KeyboardInterrupt comes out as a RuntimeError
    ("unexpected pos"), so the run would crash instead of saving and stopping cleanly.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (None, signal.SIG_IGN):
        yield  # SIG_IGN: Lightning is already shutting down after a Ctrl-C
        return
    received = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        signal.raise_signal(signal.SIGINT)


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
    `resume=<run dir>` continues from there.

    Only once training has started: before that the model may not hold the resumed weights yet,
    and saving it would overwrite a good last.ckpt.
    """

    def __init__(self) -> None:
        self.training_started = False

    def on_train_start(self, trainer, pl_module) -> None:
        self.training_started = True

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or not self.training_started:
            return
        if trainer.fast_dev_run:
            return
        path = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        trainer.save_checkpoint(path)
        log.warning("Interrupted: saved %s (epoch %d). Resume with: s2p-train resume=%s",
                    path, trainer.current_epoch, trainer.default_root_dir)
