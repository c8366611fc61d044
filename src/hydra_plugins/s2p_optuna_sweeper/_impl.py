"""The Optuna sweeper's work: Optuna's ask and tell around batches of jobs that the configured Hydra
launcher runs (basic, joblib, submitit). Optuna is the engine; this only translates.

The study lives in a storage, so a sweep can stop and go on:
- `n_trials` is the size of the study, not of this process's share. A rerun of a killed sweep, or
  a second worker on the same study, asks for trials until the study holds `n_trials` (complete,
  pruned, failed, or running in some worker).
- In a database (SQLite, PostgreSQL) each running trial has a heartbeat. A trial whose heartbeat
  stops (its sweep was killed) is failed by the next worker that looks, and re-queued with the same
  parameters (Optuna's fail_stale_trials and RetryHeartbeatStaleTrialCallback); the killed attempt
  does not count towards `n_trials`. A worker that has nothing left to ask waits for the trials
  still running elsewhere, so that one of them killed is still retried. A journal file keeps no
  heartbeat: there a killed trial stays RUNNING and counts.
- A seeded sampler that finds trials in its study is seeded with seed + their number: a rerun
  does not draw the first run's values again. Workers started together with one seed draw the
  same values: leave sampler.seed unset for them.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

from sketch2photo.errors import UnknownMetric, UserError
from sketch2photo.runs.study import open_storage

from ._search_space import SearchSpace, search_space

log = logging.getLogger(__name__)
# Heartbeats and retries are marked experimental in Optuna 5.1, and meant for study.optimize():
# with ask and tell, this sweeper records the heartbeats itself (heartbeats() below).
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with")


class OptunaSweeperImpl(Sweeper):
    def __init__(
        self,
        sampler: Any,
        pruner: Any,
        direction: str,
        storage: str,
        study_name: str,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        heartbeat_interval: int | None,
        grace_period: int | None,
        retry_killed: int,
        params: DictConfig | None,
    ) -> None:
        for key, value, low in (("n_trials", n_trials, 1), ("n_jobs", n_jobs, 1)):
            if not isinstance(value, int) or value < low:
                raise UserError(f"hydra.sweeper.{key}={value!r} must be a whole number >= {low}.")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise UserError(
                f"hydra.sweeper.max_failure_rate={max_failure_rate} must be in [0, 1]: the share "
                "of a batch's trials that may fail before the search stops."
            )
        self.sampler, self.pruner, self.direction = sampler, pruner, direction
        self.storage, self.study_name = storage, study_name
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.heartbeat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(
                max_retry=retry_killed
            )
            if heartbeat_interval
            else None,
        }
        self.params = params
        self.job_idx = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        optuna.logging.disable_default_handler()  # Optuna's lines go to Hydra's log instead
        optuna.logging.enable_propagation()

    def sweep(self, arguments: list[str]) -> None:
        sampler, n_trials = self.sampler, self.n_trials
        try:
            space = search_space(
                [f"{key}={value}" for key, value in (self.params or {}).items()] + list(arguments),
                self.hydra_context.config_loader,
            )
            if isinstance(sampler, functools.partial):  # GridSampler: its grid is the space
                grid = space.grid()
                sampler = sampler(grid)
                n_trials = min(n_trials, math.prod(len(values) for values in grid.values()))
        except ValueError as error:
            raise UserError(str(error)) from None
        location = absolute(self.storage)
        storage = open_storage(location, **(self.heartbeat if "://" in location else {}))
        study = optuna.create_study(
            study_name=self.study_name,
            storage=storage,
            sampler=sampler,
            pruner=self.pruner,
            direction=self.direction,
            load_if_exists=True,
        )
        if study.direction.name.lower() != self.direction:
            metric = OmegaConf.select(self.config, "optimized_metric", default=None)
            raise UserError(
                f"study {self.study_name} in {shown(location)} was made to "
                f"{study.direction.name.lower()}, but optimized_metric={metric} is to be "
                f"{self.direction}d: give this search another hydra.sweeper.study_name."
            )
        found = len(study.get_trials(deepcopy=False))
        seed = OmegaConf.select(self.config, "hydra.sweeper.sampler.seed", default=None)
        if found and seed is not None and not isinstance(sampler, functools.partial):
            # A seeded sampler in a new process would draw the first run's values again
            study.sampler = instantiate(self.config.hydra.sweeper.sampler, seed=seed + found)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        self.record_study(sweep_dir, study, location)
        study_id = storage.get_study_id_from_name(study.study_name)
        interval = self.heartbeat["heartbeat_interval"] if "://" in location else None
        waited = False
        while True:
            batch = self.next_batch_size(study, n_trials)
            if batch == 0:
                running = [t.number for t in counted(study) if t.state == TrialState.RUNNING]
                if not (running and interval):
                    break
                if not waited:
                    log.info("waiting for trial(s) %s, still running in other workers", running)
                waited = True
                time.sleep(interval)
                continue
            trials, trial_ids = [], []
            for _ in range(batch):
                # its first heartbeat at once: Optuna never counts a trial without one as stale,
                # so a worker killed here would leave one that the others wait for
                trials.append(trial := study.ask(space.distributions))
                trial_ids.append(
                    storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
                )
                if interval:
                    storage.record_heartbeat(trial_ids[-1])
            for trial in trials:
                trial.set_user_attr("run_dir", str((sweep_dir / str(trial.number)).resolve()))
            with heartbeats(storage, trial_ids, interval):
                returns = self.launcher.launch(
                    [self.job_overrides(space, trial, location, study) for trial in trials],
                    initial_job_idx=self.job_idx,
                )
            self.job_idx += len(returns)
            failures = [
                error
                for trial, result in zip(trials, returns, strict=True)
                if (error := self.tell(study, trial, result)) is not None
            ]
            if len(failures) / len(returns) > self.max_failure_rate:
                raise UserError(
                    f"{len(failures)} of {len(returns)} trial(s) in a batch failed, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate}; the first: "
                    f"{failures[0]}"
                )
        self.record_results(sweep_dir, study, location)

    def next_batch_size(self, study: optuna.Study, n_trials: int) -> int:
        """How many trials to ask for now: up to n_jobs, while the study holds fewer than n_trials
        (a re-queued trial is asked for again whatever the count)."""
        fail_stale_trials(study)
        trials = counted(study)
        waiting = sum(trial.state == TrialState.WAITING for trial in trials)
        return min(self.n_jobs, max(0, n_trials - len(trials)) + waiting)

    def job_overrides(
        self, space: SearchSpace, trial: optuna.Trial, location: str, study: optuna.Study
    ) -> list[str]:
        """The trial's parameters, then where its job reports (runs/study.py): the study, and the
        trial's number, which also names its run dir."""
        return [
            *space.overrides(trial.params),
            f"++optuna_trial={trial.number}",
            f"hydra.sweeper.storage={quoted(location)}",
            f"hydra.sweeper.study_name={quoted(study.study_name)}",
            f"hydra.sweep.subdir={trial.number}",
        ]

    def tell(self, study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> Exception | None:
        """Record the job's outcome in the study; the error of a failed trial."""
        if result.status == JobStatus.COMPLETED:
            try:
                value = float(result.return_value)
                error = None if math.isfinite(value) else ValueError(f"the metric is {value}")
            except (TypeError, ValueError):
                error = ValueError(f"s2p-train returned {result.return_value!r}, not a number")
            if error is None:
                study.tell(trial, value, skip_if_finished=True)
                return None
        else:
            error = result._return_value  # the job's exception; .return_value would print it
            if isinstance(error, optuna.TrialPruned):
                study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
                return None
        trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:1000])
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        log.warning("trial %d failed: %s", trial.number, error)
        if isinstance(error, UnknownMetric):  # every trial would fail the same way
            raise error
        return error

    def record_study(self, sweep_dir: Path, study: optuna.Study, location: str) -> None:
        """The sweep's config (multirun.yaml, as Hydra's basic sweeper writes it) and where its
        study is (study.yaml), before the first trial."""
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        done = counted(study)
        OmegaConf.save(
            {
                "study_name": study.study_name,
                "storage": shown(location),
                "dashboard": f"optuna-dashboard {shown(location)}",
            },
            sweep_dir / "study.yaml",
        )
        log.info(
            "Study %s in %s: %s; %d trial(s) wanted. See it: optuna-dashboard %s",
            study.study_name,
            shown(location),
            f"resumed with {len(done)} trial(s)" if done else "new",
            self.n_trials,
            shown(location),
        )

    def record_results(self, sweep_dir: Path, study: optuna.Study, location: str) -> None:
        states = [trial.state for trial in counted(study)]
        counts = {
            label: states.count(state)
            for label, state in (
                ("complete", TrialState.COMPLETE),
                ("pruned", TrialState.PRUNED),
                ("failed", TrialState.FAIL),
                ("running", TrialState.RUNNING),
            )
        }
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "storage": shown(location),
            "trials": counts,
        }
        if counts["complete"]:
            best = study.best_trial
            results.update(best_trial=best.number, best_params=best.params, best_value=best.value)
            log.info("Best trial %d: %s = %s", best.number, best.params, best.value)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info(
            "Study %s: %s",
            study.study_name,
            ", ".join(f"{count} {state}" for state, count in counts.items()),
        )


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's trials less the attempts that were killed and re-queued."""
    trials = study.get_trials(deepcopy=False)
    killed = {
        number for t in trials for number in RetryHeartbeatStaleTrialCallback.retry_history(t)
    }
    return [trial for trial in trials if trial.number not in killed]


@contextmanager
def heartbeats(storage, trial_ids: Sequence[int], interval: int | None) -> Iterator[None]:
    """Record the running trials' heartbeats while their jobs run (a database storage only)."""
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            for trial_id in trial_ids:
                try:
                    storage.record_heartbeat(trial_id)
                except Exception as error:  # a busy database: the next beat may get through
                    log.warning("heartbeat of trial id %d not recorded: %s", trial_id, error)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def absolute(storage: str) -> str:
    """The storage with an absolute path (a SQLite file or a journal), its folder made: the jobs
    may run elsewhere, and a rerun from the same folder finds the same file."""
    prefix = "sqlite:///"
    if storage.startswith(prefix) or "://" not in storage:
        path = Path(storage.removeprefix(prefix)).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"{prefix}{path}" if storage.startswith(prefix) else str(path)
    return storage


def shown(storage: str) -> str:
    """The storage as it may be printed: a database URL without its password."""
    if "://" not in storage:
        return storage
    from sqlalchemy.engine import make_url

    return make_url(storage).render_as_string(hide_password=True)


def quoted(value: str) -> str:
    """A Hydra override value that stays this string (a URL may hold ':', '@', '&' or '?')."""
    return "'" + value.replace("'", "\\'") + "'"
