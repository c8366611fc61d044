"""s2p-train: instantiate data, model and trainer from the config, fit, test, write metrics.json.

Returns the value of `optimized_metric` (default val/psnr) for Hydra sweepers such as Optuna. A
trial that the study's pruner stops is not tested: it raises optuna.TrialPruned once metrics.json
and its checkpoints are written (runs/study.py).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from sketch2photo.checkpoints.read import (
    check_network_matches,
    is_gan,
    network_weights,
    read_checkpoint,
)
from sketch2photo.checkpoints.resume import resume_config
from sketch2photo.checkpoints.write import AtomicCheckpointIO
from sketch2photo.checks import check_epochs
from sketch2photo.errors import UserError
from sketch2photo.metrics import lpips_network
from sketch2photo.module import epoch_metrics
from sketch2photo.precision import resolve_precision
from sketch2photo.runs.history import MetricHistory
from sketch2photo.runs.record import RunRecord
from sketch2photo.runs.report import (
    log_hyperparameters,
    log_model_line,
    print_summary,
    record_attribution,
)
from sketch2photo.runs.scaleout import keep_ddp_children_in_this_run, parallel_job_resources
from sketch2photo.runs.study import pruned_after, raise_if_pruned

log = logging.getLogger("sketch2photo.train")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and test) one run; metrics.json records the outcome, whatever happens."""
    cfg, ckpt_path = resume_config(cfg)
    run_dir = Path(cfg.paths.run_dir)
    with RunRecord(run_dir, resuming=bool(cfg.get("resume"))) as record:
        check_config(cfg)
        threads, gpu = parallel_job_resources(cfg)
        if threads:
            torch.set_num_threads(threads)
        log.info("torch threads: %d", torch.get_num_threads())
        pl.seed_everything(cfg.seed, workers=True, verbose=False)

        datamodule = instantiate(cfg.data, _convert_="all")
        model = instantiate(cfg.model, _recursive_=False, _convert_="all")
        if cfg.get("lpips_weights"):
            model.score_lpips(lpips_network(cfg.lpips_weights))
        wanted_net = OmegaConf.to_container(cfg.model.net, resolve=True)
        wanted_gan = is_gan(cfg.model)
        if ckpt_path and str(ckpt_path).endswith(".safetensors"):
            raise UserError(
                f"ckpt_path={ckpt_path}: a safetensors export holds the network's weights only, not a "
                f"training state to continue; start from it with init_from={ckpt_path}."
            )
        if (
            ckpt_path
        ):  # Lightning restores it in fit(); check first that it is ours and the same network
            check_network_matches(
                read_checkpoint(ckpt_path), wanted_net, ckpt_path, wanted_gan=wanted_gan
            )
        elif cfg.get(
            "init_from"
        ):  # fine-tuning: the network's weights only; optimizer and epochs start afresh
            start = read_checkpoint(cfg.init_from, key="init_from")
            check_network_matches(start, wanted_net, cfg.init_from, key="init_from")
            model.net.load_state_dict(network_weights(start))
        datamodule.setup("fit")  # decode and validate the whole dataset before any training
        record_attribution(run_dir, datamodule.attribution)
        trainer_overrides: dict[str, Any] = {"devices": [gpu]} if gpu is not None else {}
        strategy, devices = cfg.trainer.get("strategy", "auto"), cfg.trainer.get("devices", 1)
        if wanted_gan and (strategy == "ddp" or (strategy == "auto" and devices not in (1, "1"))):
            # each of a GAN's two backward passes per batch reaches one network only: DDP must look
            # for the parameters a pass leaves out, or it waits for their gradients forever
            trainer_overrides["strategy"] = "ddp_find_unused_parameters_true"
        trainer_overrides["precision"] = resolve_precision(
            cfg.trainer.get("precision", "32-true"), cfg.trainer.get("accelerator", "auto")
        )
        if not datamodule.has("val"):
            monitor_train_loss_instead(cfg)
            trainer_overrides["limit_val_batches"] = 0

        show_bar = cfg.trainer.get("enable_progress_bar")
        trainer_overrides["enable_progress_bar"] = show_bar = (
            sys.stdout.isatty() if show_bar is None else show_bar  # tqdm writes to stdout
        )
        callbacks = [
            callback
            for callback in instantiate_all(cfg.get("callbacks"))
            if show_bar or not isinstance(callback, ProgressBar)
        ]
        record.history = history = MetricHistory()
        record.trainer = trainer = instantiate(
            cfg.trainer,
            callbacks=[*callbacks, history],
            logger=instantiate_all(cfg.get("logger")) or False,
            plugins=[AtomicCheckpointIO()],
            default_root_dir=cfg.paths.run_dir,
            **trainer_overrides,
        )
        log_model_line(model, trainer)
        with keep_ddp_children_in_this_run(trainer):
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            # a resumed run that had already finished logs nothing new: keep its last epoch's
            # metrics
            last_epoch = {
                k: v for k, v in (history.rows[-1] if history.rows else {}).items() if k != "epoch"
            }
            record.metrics = metrics = {**last_epoch, **epoch_metrics(trainer.callback_metrics)}
            record.best = best = best_epoch(trainer, history)
            last = f"last epoch, {trainer.current_epoch}"
            record.weights = weights = {"train": last, "val": last}
            pruned = pruned_after(trainer) is not None
            if cfg.get("test") and datamodule.has("test") and not pruned:
                tested_on = test_weights(trainer, datamodule)
                tested = test_without_loggers(trainer, model, datamodule, tested_on)
                metrics.update(epoch_metrics(tested[0]))
                weights["test"] = (
                    f"best.ckpt, epoch {best.get('epoch')}"
                    if tested_on
                    else f"final weights, {last}"
                )
        if trainer.is_global_zero:
            log_hyperparameters(trainer, cfg, metrics)
        raise_if_pruned(trainer)
    print_summary(run_dir, metrics, weights, dry_run=bool(trainer.fast_dev_run))
    return metrics


def best_epoch(trainer, history: MetricHistory) -> dict:
    """The epoch best.ckpt holds and its monitored value, e.g. {"epoch": 27, "val/psnr": 16.1}."""
    checkpoint = next(
        (c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), None
    )
    if checkpoint is None or checkpoint.best_model_score is None:
        return {}
    score = float(checkpoint.best_model_score)
    epoch = next(
        (row["epoch"] for row in history.rows if row.get(checkpoint.monitor) == score), None
    )
    return {"epoch": epoch, checkpoint.monitor: score}


def check_config(cfg: DictConfig) -> None:
    check_epochs(cfg.trainer.get("max_epochs"))
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator} needs a CUDA GPU, but torch finds none on this machine. "
            "Use trainer=cpu, or trainer=auto to take a GPU only when there is one."
        )


def monitor_train_loss_instead(cfg: DictConfig) -> None:
    """No validation split (e.g. data.split=none): 'best' means the lowest train/loss."""
    with open_dict(cfg):
        for name, callback in (cfg.get("callbacks") or {}).items():
            if not callback or not str(callback.get("monitor", "")).startswith("val/"):
                continue
            if "ModelCheckpoint" in callback._target_:
                callback.monitor, callback.mode = "train/loss", "min"
            else:
                log.warning(
                    "callbacks.%s monitors %s but there is no validation split: disabled",
                    name,
                    callback.monitor,
                )
                cfg.callbacks[name] = None


def instantiate_all(group: DictConfig | None) -> list:
    return [instantiate(item) for item in (group or {}).values() if item and "_target_" in item]


def test_without_loggers(trainer, model, datamodule, ckpt_path: str | None) -> list[dict]:
    """trainer.test, its test/* metrics (one number per run) kept out of TensorBoard: they are in
    metrics.json and the summary, and SCALARS then opens on the curves (train/ sorts before val/,
    test/ before both). Other loggers a user adds (+logger.csv=...) still get them."""
    loggers = trainer.loggers
    trainer.loggers = [each for each in loggers if not isinstance(each, TensorBoardLogger)]
    try:
        return trainer.test(
            model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, verbose=False
        )
    finally:
        trainer.loggers = loggers


def test_weights(trainer, datamodule) -> str | None:
    """The best checkpoint when the test split is separate from validation. When they are the same
    pairs (cross-validation folds), picking by them would be optimistic: the final weights."""
    best = next(
        (c.best_model_path for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), ""
    )
    separate = datamodule.sets.get("test") is not datamodule.sets.get("val")
    return best if best and separate and datamodule.has("val") else None


def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric") or "", None)
