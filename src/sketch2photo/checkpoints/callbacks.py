"""The checkpoint callbacks: last.ckpt every epoch and at the end, and the save on Ctrl-C or
SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class LastCheckpoint(ModelCheckpoint):
    """checkpoints/last.ckpt, what `resume=<run dir>` continues from: every `every_n_epochs` epochs
    and at the end of training, so that the final epochs are saved whatever max_epochs is.

    Not Lightning's save_last, which writes last.ckpt only when the monitored checkpoint is written.
    """

    def __init__(self, dirpath: str, every_n_epochs: int = 1):
        super().__init__(
            dirpath=dirpath,
            filename="last",
            monitor=None,
            save_top_k=1,
            every_n_epochs=every_n_epochs,
            enable_version_counter=False,
        )

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
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
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
        if (
            self.previous_handler is not None
            and signal.getsignal(signal.SIGINT) == self._request_stop
        ):
            signal.signal(signal.SIGINT, self.previous_handler)
        self.previous_handler = None

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore_handler()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore_handler()  # only if still ours: after a Ctrl-C Lightning ignores SIGINT while it shuts down
        if (
            not isinstance(exception, (KeyboardInterrupt, SIGTERMException))
            or not self.training_started
        ):
            return
        if trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.path)
        log.warning(
            "Interrupted: saved %s (epoch %d). Resume with: s2p-train resume=%s",
            self.path,
            trainer.current_epoch,
            trainer.default_root_dir,
        )
