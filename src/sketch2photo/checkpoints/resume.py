"""resume=<run dir>: continue a stopped or killed run, in its own dir, with its saved config (the
names an earlier version saved brought up to date: aliases.py).

A run dir is data from whoever handed it over, as a checkpoint is. Before anything in it is
instantiated, its config is resolved (only with the resolvers the project's configs use) and every
`_target_` in it must be one that the project's configs, or the --config-dir given now, can name
(targets.py, the check checkpoints go through too); what it writes must stay inside the run dir.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sketch2photo.checkpoints.aliases import upgrade_run_config, written_before_recut
from sketch2photo.checkpoints.locate import checkpoint_file
from sketch2photo.checkpoints.read import MODEL_PARTS as CHECKPOINT_PARTS
from sketch2photo.checkpoints.read import check_image_size, read_checkpoint
from sketch2photo.checkpoints.targets import (
    check_resolvers,
    check_targets,
    targets_named_in,
)
from sketch2photo.config import CONFIG_DIR, sweep_run_name
from sketch2photo.errors import UserError
from sketch2photo.runs.run_dir import typed_overrides

log = logging.getLogger(__name__)

# The resolvers of the project's configs; oc.create and oc.decode, which build configs out of
# strings, are not among them.
RUN_DIR_RESOLVERS = {
    "hydra",
    "now",
    "oc.env",
    "oc.select",
    "s2p_run_dir",
    "s2p_if_resuming",
    "s2p_direction",
    "s2p_sweep_run",
}
# Where any torch.optim optimizer or scheduler and any sketch2photo network may be named, as in a
# checkpoint (read.py's table, under model.): `model.optimizer._target_=torch.optim.SGD` on the
# first run's command line.
MODEL_PARTS = {f"model.{place}": allowed for place, allowed in CHECKPOINT_PARTS.items()}
WRITTEN_PATHS = ("dirpath", "save_dir", "default_root_dir")  # callbacks', loggers', the Trainer's
# file and folder names joined onto those paths: a plain name keeps them inside
WRITTEN_NAMES = ("filename", "name", "version", "sub_dir", "prefix")


def resume_config(cfg: DictConfig) -> tuple[DictConfig, str | None]:
    """(the config to run, the checkpoint to continue from). Without resume=: cfg and its ckpt_path.

    With resume=<run dir>: that run's .hydra/config.yaml, checked and resolved, and
    checkpoints/last.ckpt. Plain value overrides given with it (e.g. trainer.max_epochs=1000) are
    applied on top.
    """
    if not cfg.get("resume"):
        given = cfg.get("ckpt_path")  # a run dir too: a sweep's jobs skip cli.py's precheck
        return cfg, str(checkpoint_file(given)) if given else None
    run_dir = Path(cfg.resume)
    saved_path, last = run_dir / ".hydra" / "config.yaml", run_dir / "checkpoints" / "last.ckpt"
    if not saved_path.is_file():
        raise UserError(
            f"resume={run_dir}: there is no .hydra/config.yaml; give the dir of a run made by s2p-train."
        )
    if not last.is_file():
        raise UserError(
            f"resume={run_dir}: no checkpoints/last.ckpt yet (the run stopped before its first save); start it again."
        )
    source = f"resume={run_dir}: its .hydra/config.yaml"
    try:
        saved = OmegaConf.load(saved_path)
    except (OSError, ValueError, OmegaConfBaseException) as error:
        raise UserError(f"{source} is not a readable config ({error}).") from None
    if not isinstance(saved, DictConfig):
        raise UserError(f"{source} is not a config of keys and values.")
    changes = [override for override in typed_overrides() if override.key_or_group != "resume"]
    for change in changes:
        if (
            change.is_add()
            or change.is_delete()
            or isinstance(OmegaConf.select(saved, change.key_or_group, default=None), DictConfig)
        ):
            raise UserError(
                f"resume continues {run_dir} with its saved config; only value changes such as "
                f"trainer.max_epochs=... can be added, not {change.input_line!r}."
            )
    for change in changes:
        OmegaConf.update(saved, change.key_or_group, change.value(), merge=True)
    keep_sweep_run_name(saved, run_dir)  # before the check: the name is read from the run dir
    check_resolvers(OmegaConf.to_container(saved, resolve=False), RUN_DIR_RESOLVERS, source)
    upgrade_run_config(
        saved, written_before_recut(read_checkpoint(last, key="resume")), f"resume={run_dir}"
    )
    saved.resume = str(run_dir)
    typed_targets = {
        change.value()
        for change in changes
        if change.key_or_group.split(".")[-1] == "_target_"  # the user's choice, typed now
    }
    resolved = checked_run_config(saved, run_dir, source, typed_targets)
    check_run_data(resolved, cfg, source)
    log.info("resuming %s from %s", run_dir, last)
    return resolved, str(last)


def keep_sweep_run_name(saved: DictConfig, run_dir: Path) -> None:
    """A sweep job resumed alone keeps its TensorBoard run (the folder its events are in, named by
    what the sweep varied), read from the job's .hydra/hydra.yaml; the name is then checked like
    any written name (check_written_paths)."""
    logger = saved.get("logger")
    tensorboard = logger.get("tensorboard") if isinstance(logger, DictConfig) else None
    if not isinstance(tensorboard, DictConfig):
        return
    if OmegaConf.to_container(tensorboard, resolve=False).get("version") != "${s2p_sweep_run:}":
        return
    try:
        job = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml")
    except (OSError, ValueError, OmegaConfBaseException):
        return  # no saved job: the events stay in the run dir, as a single run's
    mode = OmegaConf.select(job, "hydra.mode", default=None, throw_on_resolution_failure=False)
    name = OmegaConf.select(
        job, "hydra.job.override_dirname", default=None, throw_on_resolution_failure=False
    )
    if str(mode) == "MULTIRUN" and isinstance(name, str):
        tensorboard.version = sweep_run_name(name)


def checked_run_config(
    saved: DictConfig, run_dir: Path, source: str, typed_targets: set
) -> DictConfig:
    """The run's config resolved (its resolvers already checked), once every `_target_` and written
    path in it is allowed: what is checked is what gets instantiated."""
    try:
        resolved = OmegaConf.to_container(saved, resolve=True)
    except OmegaConfBaseException as error:
        raise UserError(f"{source} does not resolve ({error}).") from None
    named = targets_named_in(config_folders(), leave_out=run_dir) | typed_targets
    check_targets(
        resolved,
        lambda place, target: (
            target in named or (place in MODEL_PARTS and MODEL_PARTS[place](target))
        ),
        source,
        "named by sketch2photo's configs or by a --config-dir given now (a run trained with "
        "your own --config-dir resumes with the same --config-dir)",
    )
    check_written_paths(resolved, run_dir, source)
    return OmegaConf.create(resolved)


def config_folders() -> list[Path]:
    """The folders this command composed its config from: the project's and any --config-dir."""
    sources = HydraConfig.get().runtime.config_sources if HydraConfig.initialized() else []
    folders = [Path(source.path) for source in sources if source.schema == "file"]
    return folders or [Path(CONFIG_DIR)]


def check_written_paths(config, run_dir: Path, source: str, place: str = "") -> None:
    """Checkpoints, logs and the Trainer's root go inside the run dir, nowhere else: paths inside
    it, plain names joined onto them, no positional arguments (`_args_`, which the project's
    configs never use) that could pass a path unnamed, and no study storage of the run's own."""
    if isinstance(config, dict):
        for name, value in config.items():
            where = f"{place}.{name}" if place else str(name)
            reason = _writes_outside(name, value, run_dir)
            if reason:
                raise UserError(
                    f"{source} sets {where}={value}, {reason}; refused, nothing was written."
                )
            check_written_paths(value, run_dir, source, where)
    elif isinstance(config, list):
        for index, item in enumerate(config):
            check_written_paths(item, run_dir, source, f"{place}[{index}]")


def check_run_data(resolved: DictConfig, cfg: DictConfig, source: str) -> None:
    """The run's data settings within what a checkpoint may ask for; synthetic pairs, which are
    written, only into this project's data folder."""
    data = resolved.get("data") or {}
    check_image_size(data.get("image_size", 128), f"{source} sets data.image_size")
    data_root = Path(cfg.paths.data_dir)
    if data.get("synthetic_pairs") and not _inside(str(data.get("data_dir")), data_root):
        raise UserError(
            f"{source} writes synthetic pairs to data.data_dir={data.get('data_dir')}, outside "
            f"this project's data folder {data_root}; refused, nothing was written."
        )


def _writes_outside(name: str, value, run_dir: Path) -> str | None:
    """Why setting `name` to `value` could write outside run_dir, if it could."""
    if name == "_args_":
        return "positional arguments, which could pass a path unnamed (the project's configs name every argument)"
    if not isinstance(value, str) and not (name == "storage" and value is not None):
        return None
    if name in WRITTEN_PATHS and not _inside(value, run_dir):
        return f"which is outside the run dir {run_dir}"
    if name in WRITTEN_NAMES and not _plain_name(value):
        return f"not a plain name: a path could lead it out of the run dir {run_dir}"
    if name == "storage" and value != _sweep_storage():
        return "a study storage of the run's own (only a sweep's job reports to a study)"
    return None


def _sweep_storage() -> str | None:
    """The study storage this command was given (a sweep's job), if any."""
    if not HydraConfig.initialized():
        return None
    return OmegaConf.select(HydraConfig.get(), "sweeper.storage", default=None)


def _plain_name(value: str) -> bool:
    return "/" not in value and "\\" not in value and value not in (".", "..")


def _inside(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())
