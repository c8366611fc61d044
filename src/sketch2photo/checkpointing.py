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
from lightning.pytorch.plugins.io import TorchCheckpointIO

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
    A second Ctrl-C interrupts at once.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    received = []

    def hold(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(frame)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received and callable(previous):
        previous(signal.SIGINT, received[0])


class CheckpointOnInterrupt(Callback):
    """Ctrl-C saves checkpoints/last.ckpt, so that `resume=<run dir>` continues from there."""

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or trainer.state.fn != "fit":
            return
        path = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        trainer.save_checkpoint(path)
        log.warning("Interrupted: saved %s (epoch %d). Resume with: s2p-train resume=%s",
                    path, trainer.current_epoch, trainer.default_root_dir)
