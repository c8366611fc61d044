"""Writing checkpoints atomically: a kill at any moment leaves the previous file or the new one."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file in the same folder, fsync, then rename over the old file.

    A kill at any moment leaves either the previous checkpoint or the new one, never half a file.
    (Lightning's default stages the file in the system temp dir and moves it, which is a copy
    when that is another filesystem.) Ctrl-C during the write is held until the file is in place.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
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
    if threading.current_thread() is not threading.main_thread() or previous in (
        None,
        signal.SIG_IGN,
    ):
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
