"""What a run leaves behind in metrics.json: status, final metrics, per-epoch history, timing.

Written by s2p-train (through RunRecord, also when a run fails) and s2p-eval, read by s2p-compare
and the benchmarks. s2p-compare imports this module, so it imports nothing heavy at the top.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from sketch2photo.errors import UserError, unwrap
from sketch2photo.runs.run_dir import in_multirun, remove_refused_run

RECORD_NAME = "metrics.json"
log = logging.getLogger(__name__)


class RunRecord:
    """metrics.json around one training run, whatever happens inside the block:

        with RunRecord(run_dir, resuming=...) as record:
            ...
            record.trainer, record.history = trainer, history   # as soon as they exist
            ...
            record.metrics = final_metrics

    The block ends `ok`, `interrupted` (Ctrl-C, SIGTERM), `pruned` (an Optuna trial stopped by its
    study's pruner) or `failed` with the error; the exception still propagates. A resumed run that
    stops before it trains keeps the earlier record.
    """

    def __init__(self, run_dir: str | Path, resuming: bool = False):
        self.run_dir = Path(run_dir)
        self.earlier = read_record(self.run_dir) if resuming else None
        self.trainer = None
        self.history = None
        self.metrics: dict[str, float] = {}
        self.best: dict = {}  # the epoch best.ckpt holds, and its monitored value
        self.weights: dict[str, str] = {}  # stage -> the weights its metrics come from

    def __enter__(self) -> RunRecord:
        self.started = time.time()
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        from lightning.fabric.utilities.rank_zero import (
            rank_zero_only,  # imported once a run has started
        )

        status, message = "ok", None
        if isinstance(
            error, SystemExit
        ):  # Lightning exits after Ctrl-C, and on SIGTERM, once the interrupt checkpoint is saved
            status = (
                "interrupted" if self.trainer is not None and self.trainer.interrupted else "failed"
            )
        elif isinstance(
            error, KeyboardInterrupt
        ):  # before fit started; Lightning handles it during fit
            status = "interrupted"
        elif is_pruned(error):  # stopped by the Optuna study's pruner (runs/study.py)
            status = "pruned"
        elif error is not None:
            cause = unwrap(error)
            status, message = "failed", f"{type(cause).__name__}: {cause}"
        trainer = self.trainer
        trained = trainer is not None and trainer.global_step > (self.earlier or {}).get(
            "global_step", 0
        )
        if self.earlier and not trained and status != "ok":
            log.warning(
                "the resumed run stopped before training; %s keeps the earlier run's record",
                self.run_dir,
            )
        elif (
            trainer is None
            and isinstance(unwrap(error), UserError)
            and not self.earlier
            and not in_multirun()
        ):
            remove_refused_run(self.run_dir)  # a config refused before any work leaves no run dir
        elif rank_zero_only.rank == 0:
            self._write(
                error,
                {
                    "status": status,
                    "error": message,
                    **({"dry_run": True} if trainer is not None and trainer.fast_dev_run else {}),
                    "metrics": self.metrics,
                    "weights": self.weights,
                    "best_epoch": self.best.get("epoch"),
                    "best": self.best,
                    "epochs": trainer.current_epoch if trainer else 0,
                    "global_step": trainer.global_step if trainer else 0,
                    "world_size": trainer.world_size if trainer else 1,
                    "wall_time_s": round(time.time() - self.started, 3),
                    "history": self.history.rows if self.history else [],
                },
            )
        return False

    def _write(self, error: BaseException | None, record: dict[str, Any]) -> None:
        """Write metrics.json; when the run failed already (a full disk), that error is the one to
        report, not this write's."""
        try:
            write_record(self.run_dir, record)
        except OSError as write_error:
            if error is None:
                raise
            log.debug("%s not written: %s", self.run_dir / RECORD_NAME, write_error)


def is_pruned(error: BaseException | None) -> bool:
    optuna = sys.modules.get("optuna")  # imported by any run that a pruner can stop
    return optuna is not None and isinstance(error, optuna.TrialPruned)


def _jsonable(value: Any) -> Any:
    """JSON has no NaN or inf: write them as strings ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def write_record(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Atomically write <run_dir>/metrics.json."""
    path = Path(run_dir) / RECORD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    text = json.dumps(_jsonable(record), indent=2, default=str, allow_nan=False) + "\n"
    try:
        partial.write_text(text)
        os.replace(partial, path)
    except OSError as error:  # a full disk: name the file, which a write error does not
        raise OSError(error.errno, error.strerror, str(path)) from None
    return path


def read_record(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RECORD_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def finished(run_dir: str | Path) -> bool:
    """The run ended with status ok (the benchmarks skip such runs when run again)."""
    record = read_record(run_dir)
    return record is not None and record.get("status") == "ok"
