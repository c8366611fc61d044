"""What a training run reports: the model line at the start, its HPARAMS entry in TensorBoard, and
the console summary at the end (which weights each number comes from, and where to look)."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams

from sketch2photo.nets import network_name
from sketch2photo.runs.run_dir import in_multirun, typed_overrides

log = logging.getLogger("sketch2photo.train")

# HPARAMS columns every run has, whatever its model, so that runs of different models line up
FIXED_HPARAMS = {
    "model": "model.net._target_",
    "lr": "model.lr",
    "loss": "model.loss",
    "batch_size": "data.batch_size",
    "image_size": "data.image_size",
    "max_epochs": "trainer.max_epochs",
    "seed": "seed",
    "augment": "data.augment.enabled",
}


def log_model_line(model, trainer) -> None:
    parameters = sum(p.numel() for p in model.parameters())
    name = network_name(model.hparams.net)
    if "discriminator" in model.hparams:  # pix2pix: the count is both networks'
        name += " against " + model.hparams.discriminator["_target_"].rsplit(".", 1)[-1]
    log.info(
        "model: %s, %.2f M parameters, on %s, precision %s",
        name,
        parameters / 1e6,
        trainer.strategy.root_device,
        trainer.precision,
    )


def record_attribution(run_dir: Path, attribution: str | None) -> None:
    """A run on someone else's data names it and its licence: in the log and in ATTRIBUTION.txt."""
    if not attribution:
        return
    log.info("data attribution: %s", attribution)
    if rank_zero_only.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "ATTRIBUTION.txt").write_text(attribution + "\n")


def hyperparameters(cfg: DictConfig) -> dict:
    """The keys the user typed (overrides), then the short fixed set, which every run has under the
    same names (a typed key of that set shows there); plain values TensorBoard can show."""
    typed = {
        override.key_or_group: OmegaConf.select(cfg, override.key_or_group, default=None)
        for override in typed_overrides()
        if not override.is_delete()
        and not override.key_or_group.startswith("hydra")
        and override.key_or_group not in FIXED_HPARAMS.values()
    }
    fixed = {name: OmegaConf.select(cfg, key, default=None) for name, key in FIXED_HPARAMS.items()}
    net = OmegaConf.select(cfg, "model.net", default=None)
    fixed["model"] = (
        network_name(OmegaConf.to_container(net))
        if isinstance(net, DictConfig)
        else str(fixed["model"])
    )
    chosen = {
        **{key: value for key, value in typed.items() if not isinstance(value, DictConfig)},
        **fixed,
    }
    return {
        key: value if isinstance(value, (bool, int, float, str)) else str(value)
        for key, value in chosen.items()
    }


def log_hyperparameters(trainer, cfg: DictConfig, metrics: dict[str, float]) -> None:
    """One HPARAMS row per run, with the final train/ and val/ metrics (TensorBoard reads a metric's
    value from its scalars; test/* has none). Only the session is written, not a per-run
    experiment summary: TensorBoard then takes the columns from all runs in the logdir together."""
    params = hyperparameters(cfg)
    metrics = {name: value for name, value in metrics.items() if not name.startswith("test/")}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger) and metrics:
            _, session_start, session_end = hparams(params, metrics)
            writer = logger.experiment._get_file_writer()
            writer.add_summary(session_start)
            writer.add_summary(session_end)
            logger.finalize("success")


def print_summary(
    run_dir: Path, metrics: dict[str, float], weights: dict[str, str], dry_run: bool
) -> None:
    if rank_zero_only.rank != 0:
        return
    for stage in ("train", "val", "test"):
        shown = ", ".join(
            f"{name}={value:.4g}"
            for name, value in sorted(metrics.items())
            if name.startswith(f"{stage}/")
        )
        if shown:
            log.info("final %s/* (%s): %s", stage, weights.get(stage, "last epoch"), shown)
    if dry_run:
        log.info(
            "dry run (trainer.fast_dev_run): no checkpoints, sample grids or TensorBoard events were saved; %s holds its config, log and metrics.json",
            run_dir,
        )
        return
    log.info("run dir: %s (checkpoints/, samples/, metrics.json, .hydra/config.yaml)", run_dir)
    log.info("sample grids: %s", run_dir / "samples")
    log.info("TensorBoard: tensorboard --logdir %s", run_dir.parent if in_multirun() else run_dir)
