"""The Hydra sweeper plugin `hydra/sweeper=optuna` (configs/hydra/sweeper/optuna.yaml).

Hydra imports every module of the hydra_plugins namespace when a command starts, so this one only
names the class: Optuna is imported by _impl.py, once a sweep uses it."""

from __future__ import annotations

from typing import Any

from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from sketch2photo.errors import UserError


class OptunaSweeper(Sweeper):
    def __init__(self, **config: Any) -> None:
        from ._impl import OptunaSweeperImpl

        self.sweeper = OptunaSweeperImpl(**config)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        try:
            return self.sweeper.sweep(arguments)
        except UserError as error:  # Hydra prints a CompactHydraException's message alone
            raise CompactHydraException(str(error)) from None
