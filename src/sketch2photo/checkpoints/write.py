"""Writing checkpoints atomically: a kill at any moment leaves the previous file or the new one."""

from __future__ import annotations

import os
import signal
import socket
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
    The first save into a folder removes the temporary files that killed writers left there.
    """

    def __init__(self) -> None:
        super().__init__()
        self.cleaned: set[Path] = set()

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent not in self.cleaned:
            remove_stale_partials(path.parent)
            self.cleaned.add(path.parent)
        partial = partial_path(path)
        with interrupts_held_back():
            try:
                with open(partial, "wb") as file:
                    torch.save(checkpoint, file)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(partial, path)
            except OSError as error:  # a full disk: name the file, which a write error does not
                raise OSError(error.errno, error.strerror, str(path)) from None
            finally:
                partial.unlink(missing_ok=True)


def partial_path(path: Path) -> Path:
    """Where `path` is written before it is renamed into place: named after this host and process,
    so that the next save can tell a killed writer's file from a live one's."""
    return path.with_name(f".{path.name}.partial-{socket.gethostname()}-{os.getpid()}")


def remove_stale_partials(folder: Path) -> None:
    """Remove partial checkpoints whose writer is gone: written on this host by a process that no
    longer runs (or named only by a pid, as before the host was in the name). Another host's
    are left alone: its pids are not this host's to judge."""
    host = socket.gethostname()
    for partial in folder.glob(".*.partial-*"):
        writer = partial.name.rpartition(".partial-")[2]
        named_host, _, pid = writer.rpartition("-")
        if named_host in ("", host) and pid.isdigit() and not process_runs(int(pid)):
            partial.unlink(missing_ok=True)


def process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
