"""How every s2p-* command starts: Hydra with the project's configs, and clear errors.

A UserError ends a single run with its message and exit status 1, no traceback. Inside a
multirun it is re-raised, so Hydra records that job as failed and the other jobs still run.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from sketch2photo.errors import UserError, unwrap

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")
log = logging.getLogger("sketch2photo")


def _resume_dir(default: str, *, _root_: DictConfig) -> str:
    """hydra.run.dir: the run being resumed (resume=<run dir>), else a new dir."""
    return OmegaConf.select(_root_, "resume", default=None) or default


def _if_resuming(then: str, otherwise: str, *, _root_: DictConfig) -> str:
    return then if OmegaConf.select(_root_, "resume", default=None) else otherwise


def _direction(metric: str) -> str:
    """hydra.sweeper.direction for optimized_metric: maximize val/psnr, minimize val/loss."""
    from sketch2photo.metrics import higher_is_better

    return "maximize" if higher_is_better(metric) else "minimize"


OmegaConf.register_new_resolver("s2p_run_dir", _resume_dir, replace=True)
OmegaConf.register_new_resolver("s2p_if_resuming", _if_resuming, replace=True)
OmegaConf.register_new_resolver("s2p_direction", _direction, replace=True)


def use_hydra_logging_for_lightning() -> None:
    """Lightning gives its loggers their own stderr handler (and stops propagation) when it is
    imported before logging is set up. Hydra's handlers (the console and the run's log file)
    should get these records instead: once, not twice, and in train.log."""
    import lightning  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def hydra_command(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Decorate a command body: `@hydra_command("train") def main(cfg): ...`."""

    def decorate(body: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(body)
        def run(cfg: DictConfig) -> Any:
            try:
                return body(cfg)
            except KeyboardInterrupt:
                log.warning("Interrupted (Ctrl-C).")
                sys.exit(130)
            except Exception as error:
                cause = unwrap(error)
                if not isinstance(cause, UserError):
                    raise
                log.error("%s", cause)
                if in_multirun():
                    raise cause from None
                sys.exit(1)

        return hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)(run)

    return decorate
