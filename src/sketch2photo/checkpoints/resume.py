"""resume=<run dir>: continue a stopped or killed run, in its own dir, with its saved config (the
names an earlier version saved brought up to date: aliases.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sketch2photo.checkpoints.aliases import upgrade_run_config, written_before_recut
from sketch2photo.checkpoints.read import read_checkpoint
from sketch2photo.errors import UserError
from sketch2photo.runs.run_dir import typed_overrides

log = logging.getLogger(__name__)


def resume_config(cfg: DictConfig) -> tuple[DictConfig, str | None]:
    """(the config to run, the checkpoint to continue from). Without resume=: cfg and its ckpt_path.

    With resume=<run dir>: that run's .hydra/config.yaml and checkpoints/last.ckpt. Plain value
    overrides given with it (e.g. trainer.max_epochs=1000) are applied on top.
    """
    if not cfg.get("resume"):
        return cfg, cfg.get("ckpt_path")
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
    saved = OmegaConf.load(saved_path)
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
    upgrade_run_config(
        saved, written_before_recut(read_checkpoint(last, key="resume")), f"resume={run_dir}"
    )
    saved.resume = str(run_dir)
    log.info("resuming %s from %s", run_dir, last)
    return saved, str(last)
