"""A trial job's link to its Optuna study (hparams_search=optuna): the storage the study lives in,
and the callback that reports `optimized_metric` to it after every validation epoch and stops the
run when the study's pruner says so.

The sweeper runs the trial as an ordinary s2p-train job, here or on another machine, and tells it
which trial it is: `optuna_trial=<number>`, with hydra.sweeper.storage and study_name.
"""

from __future__ import annotations

import difflib
import logging
import time
from typing import Any

from lightning.pytorch import Callback

from sketch2photo.errors import UnknownMetric
from sketch2photo.metrics import NO_BETTER
from sketch2photo.module import epoch_metrics

log = logging.getLogger(__name__)


def open_storage(storage: str, **heartbeat: Any):
    """A database URL (sqlite:///<file>, postgresql://<user>@<host>/<db>) or the path of a journal
    file (Optuna's JournalFileBackend: a shared filesystem is all its workers need). `heartbeat`
    goes to RDBStorage; a journal keeps none."""
    import optuna

    if "://" not in storage:
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    # SQLite's own wait for a lock is 5 s; workers and their trials write to one file
    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else None
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(storage, engine_kwargs=engine, **heartbeat)
        except (IntegrityError, OperationalError, ProgrammingError):
            # Workers started together on an empty database race to create Optuna's tables
            # (PostgreSQL: a duplicate CREATE TYPE, SQLite: "table ... already exists"); the
            # loser finds them made a moment later.
            if attempt == 2:
                raise
            time.sleep(1 + attempt)


class ReportToStudy(Callback):
    """After every validation epoch (every training epoch when there is no validation), report
    `metric` to trial `trial` of the study, and stop training when the pruner prunes it. A name
    the run does not log fails at the first report. Without a trial (not in a sweep) it only
    checks the name."""

    def __init__(
        self,
        storage: str | None,
        study_name: str | None,
        trial: int | None,
        metric: str,
        pruner: Any = None,
    ) -> None:
        self.storage, self.study_name, self.number = storage, study_name, trial
        self.metric = metric
        self.pruner = pruner
        self.trial = None
        self.pruned_at: int | None = None  # the epoch the pruner stopped the run after

    def setup(self, trainer, pl_module, stage: str) -> None:
        if (
            stage != "fit"
            or self.number is None
            or not trainer.is_global_zero
            or self.trial is not None
        ):
            return
        if self.storage is None:  # e.g. resume=<a trial's dir>: Hydra's sweeper is not Optuna's
            log.info("trial %d of no study here: this run reports to none", self.number)
            return
        import optuna

        storage = open_storage(self.storage)
        study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=self.pruner)
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(self.study_name), self.number
        )
        state = storage.get_trial(trial_id).state
        if state != optuna.trial.TrialState.RUNNING:  # e.g. resume=<the dir of a pruned trial>
            log.warning(
                "trial %d of study %s is %s: this run reports nothing to it",
                self.number,
                self.study_name,
                state.name,
            )
            return
        self.trial = optuna.trial.Trial(study, trial_id)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._report(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.enable_validation:
            self._report(trainer)

    def _report(self, trainer) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if value is None or self.metric.split("/")[-1] in NO_BETTER:
            raise UnknownMetric(self._unknown(sorted(epoch_metrics(trainer.callback_metrics))))
        prune = False
        if self.trial is not None:
            epoch = trainer.current_epoch + 1  # epochs trained, as in metrics.json's history
            self.trial.report(float(value), step=epoch)
            prune = self.trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):  # every DDP rank stops with rank 0
            self.pruned_at = trainer.current_epoch + 1
            trainer.should_stop = True
            log.info(
                "trial %d pruned after epoch %d (%s %.4g)",
                self.number,
                self.pruned_at,
                self.metric,
                float(value),
            )

    def _unknown(self, logged: list[str]) -> str:
        if self.metric.split("/")[-1] in NO_BETTER:
            return (
                f"optimized_metric={self.metric} has no better direction: it describes the "
                "output (its colourfulness), it does not score it; use val/dcf (how far the "
                "colourfulness is from the truth's), val/de00 or val/psnr."
            )
        if self.metric.startswith("test/"):
            return (
                f"optimized_metric={self.metric}: a search reads its metric after every epoch, "
                "and choosing settings by the test split would overstate them; use "
                f"optimized_metric=val/{self.metric.split('/', 1)[1]}."
            )
        close = difflib.get_close_matches(self.metric, logged, n=1)
        return (
            f"optimized_metric={self.metric} is not a metric of this run"
            + (f" (did you mean {close[0]}?)" if close else "")
            + f"; after a validation epoch it has: {', '.join(logged)}."
        )


def pruned_after(trainer) -> int | None:
    """The epoch after which the study's pruner stopped this run; None when it did not."""
    report = next((c for c in trainer.callbacks if isinstance(c, ReportToStudy)), None)
    return None if report is None else report.pruned_at


def raise_if_pruned(trainer) -> None:
    """Raise optuna.TrialPruned when the study's pruner stopped this run: the sweeper records the
    trial as pruned, and so does metrics.json (runs/record.py)."""
    epoch = pruned_after(trainer)
    if epoch is not None:
        import optuna

        raise optuna.TrialPruned(f"pruned after epoch {epoch}")
