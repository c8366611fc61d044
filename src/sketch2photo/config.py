"""Where the configs live, and the resolvers they use: registered on import, before any compose."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sketch2photo.metrics import higher_is_better
from sketch2photo.runs.run_dir import in_multirun

CONFIG_DIR = str(
    Path(__file__).resolve().parent / "configs"
)  # shipped inside the package; ./configs links here
MAX_NAME_BYTES = 200  # a file name's limit is 255 on most file systems


def _resume_dir(default: str, *, _root_: DictConfig) -> str:
    """hydra.run.dir: the run being resumed (resume=<run dir>), else a new dir."""
    return OmegaConf.select(_root_, "resume", default=None) or default


def _if_resuming(then: str, otherwise: str, *, _root_: DictConfig) -> str:
    return then if OmegaConf.select(_root_, "resume", default=None) else otherwise


def _direction(metric: str) -> str:
    """hydra.sweeper.direction for optimized_metric: maximize val/psnr, minimize val/loss."""
    return "maximize" if higher_is_better(metric) else "minimize"


def _study_name(task_name: str, overrides: list[str]) -> str:
    """hydra.sweeper.study_name: the task and a hash of the overrides typed, so that the same
    command finds its study again and another command starts its own."""
    typed = "\n".join(sorted(overrides))
    return f"{task_name}-{hashlib.sha256(typed.encode()).hexdigest()[:8]}"


def _sweep_run_name() -> str:
    """logger.tensorboard.version: in a sweep, what this job's sweep overrides set (Hydra's
    hydra.job.override_dirname, the keys typed with one value left out: cli.py), e.g.
    `data.image_size=64,model.lr=0.001`, so TensorBoard names the curves by them; "" for a single
    run, whose events stay in its run dir."""
    return sweep_run_name(HydraConfig.get().job.override_dirname) if in_multirun() else ""


def sweep_run_name(override_dirname: str) -> str:
    """A sweep job's override_dirname as one folder name: a value's / is no folder, and the name
    fits the filesystem."""
    name = override_dirname.replace("/", "\u2215")
    return name.encode()[:MAX_NAME_BYTES].decode(errors="ignore")


OmegaConf.register_new_resolver("s2p_run_dir", _resume_dir, replace=True)
OmegaConf.register_new_resolver("s2p_sweep_run", _sweep_run_name, replace=True)
OmegaConf.register_new_resolver("s2p_if_resuming", _if_resuming, replace=True)
OmegaConf.register_new_resolver("s2p_direction", _direction, replace=True)
OmegaConf.register_new_resolver("s2p_study_name", _study_name, replace=True)
