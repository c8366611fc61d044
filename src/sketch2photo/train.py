"""s2p-train: instantiate data, model and trainer from the config, fit, test, write metrics.json.

Returns the value of `optimized_metric` (default val/psnr) for Hydra sweepers such as Optuna.
"""

from __future__ import annotations

import inspect
import logging
import signal
import time
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning.pytorch import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from sketch2photo.cli import hydra_command, in_multirun, use_hydra_logging_for_lightning
from sketch2photo.errors import UserError, unwrap
from sketch2photo.scaleout import keep_ddp_children_in_this_run, parallel_job_resources

log = logging.getLogger("sketch2photo.train")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and test) one run and record the outcome in metrics.json, whatever happens."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from sketch2photo.run_record import read_record, write_record

    cfg, ckpt_path = resume_config(cfg)
    run_dir = Path(cfg.paths.run_dir)
    earlier = read_record(run_dir) if cfg.get("resume") else None
    outcome: dict[str, Any] = {"status": "failed", "error": None, "metrics": {}}
    started = time.time()
    try:
        fit_and_test(cfg, ckpt_path, outcome)
        outcome["status"] = "ok"
    except SystemExit as exc:  # Lightning exits after Ctrl-C and on SIGTERM, once CheckpointOnInterrupt has saved
        trainer = outcome.get("trainer")
        outcome["status"] = "interrupted" if trainer is not None and trainer.interrupted else "failed"
        if isinstance(exc, SIGTERMException):  # a SystemExit with status 0 otherwise
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    except KeyboardInterrupt:  # before training started (Lightning handles it once fit runs)
        outcome["status"] = "interrupted"
        raise
    except BaseException as exc:
        cause = unwrap(exc)
        outcome["error"] = f"{type(cause).__name__}: {cause}"
        raise
    finally:
        trainer = outcome.get("trainer")
        trained = trainer is not None and trainer.global_step > (earlier or {}).get("global_step", 0)
        if earlier and not trained and outcome["status"] != "ok":
            log.warning("the resumed run stopped before training; %s keeps the earlier run's record", run_dir)
        elif rank_zero_only.rank == 0:
            trainer, history = outcome.pop("trainer", None), outcome.pop("history", None)
            write_record(run_dir, {
                **outcome,
                "epochs": trainer.current_epoch if trainer else 0,
                "global_step": trainer.global_step if trainer else 0,
                "world_size": trainer.world_size if trainer else 1,
                "wall_time_s": round(time.time() - started, 3),
                "history": history.rows if history else [],
            })
    report(run_dir, outcome["metrics"])
    return outcome["metrics"]


def fit_and_test(cfg: DictConfig, ckpt_path: str | None, outcome: dict[str, Any]) -> None:
    import lightning.pytorch as pl

    from sketch2photo.checkpointing import AtomicCheckpointIO

    use_hydra_logging_for_lightning()
    check_trainer_config(cfg)
    threads, gpu = parallel_job_resources(cfg)
    if threads:
        torch.set_num_threads(threads)
    log.info("torch threads: %d", torch.get_num_threads())
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, _recursive_=False, _convert_="all")
    if ckpt_path:
        check_checkpoint_matches(ckpt_path, cfg)
    elif cfg.get("init_from"):  # when resuming, the checkpoint holds the weights
        start_from_weights(model, cfg.init_from, cfg)
    datamodule.setup("fit")  # decode and validate the whole dataset before any training
    trainer_overrides: dict[str, Any] = {"devices": [gpu]} if gpu is not None else {}
    if not datamodule.has("val"):
        monitor_train_loss_instead(cfg)
        trainer_overrides["limit_val_batches"] = 0

    outcome["history"] = history = MetricHistory()
    callbacks = [*instantiate_all(cfg.get("callbacks")), history]
    loggers = instantiate_all(cfg.get("logger"))
    outcome["trainer"] = trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()],
        default_root_dir=cfg.paths.run_dir, **trainer_overrides,
    )
    with keep_ddp_children_in_this_run(trainer):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        last_epoch = {k: v for k, v in (history.rows[-1] if history.rows else {}).items() if k != "epoch"}
        # resuming an already finished run logs nothing new: keep its last epoch's metrics
        outcome["metrics"] = metrics = {**last_epoch, **scalars(trainer.callback_metrics)}
        if cfg.get("test") and datamodule.has("test"):
            tested = trainer.test(model, datamodule=datamodule, ckpt_path=test_weights(trainer, datamodule))
            metrics.update(scalars(tested[0]))
    if trainer.is_global_zero:
        log_hyperparameters(trainer, cfg, metrics)


class MetricHistory(Callback):
    """Epoch-level metrics, one row per epoch; kept in checkpoints so a resumed run continues it."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        row = {"epoch": trainer.current_epoch + 1}
        row.update({name: float(value) for name, value in trainer.callback_metrics.items()})
        self.rows.append(row)

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        # Resuming restores earlier epochs; trainer.test(ckpt_path="best") restores an older state,
        # which must not drop the epochs this process has recorded since.
        by_epoch = {row["epoch"]: row for row in state["rows"]}
        by_epoch.update({row["epoch"]: row for row in self.rows})
        self.rows = [by_epoch[epoch] for epoch in sorted(by_epoch)]


# -- config checks and resume -------------------------------------------------------------------
def resume_config(cfg: DictConfig) -> tuple[DictConfig, str | None]:
    """resume=<run dir>: continue that run, in that dir, with its saved config and last checkpoint.

    Plain value overrides given with it (e.g. trainer.max_epochs=1000) are applied on top.
    """
    if not cfg.get("resume"):
        return cfg, cfg.get("ckpt_path")
    run_dir = Path(cfg.resume)
    saved_path, last = run_dir / ".hydra" / "config.yaml", run_dir / "checkpoints" / "last.ckpt"
    if not saved_path.is_file():
        raise UserError(f"resume={run_dir}: there is no .hydra/config.yaml; give the dir of a run made by s2p-train.")
    if not last.is_file():
        raise UserError(f"resume={run_dir}: no checkpoints/last.ckpt yet (the run stopped before its first save); start it again.")
    saved = OmegaConf.load(saved_path)
    changes = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
    for change in changes:
        key = change.split("=", 1)[0]
        if isinstance(OmegaConf.select(saved, key, default=None), DictConfig) or key.startswith(("+", "~")):
            raise UserError(
                f"resume continues {run_dir} with its saved config; only value changes such as "
                f"trainer.max_epochs=... can be added, not {change!r}."
            )
    resumed = OmegaConf.merge(saved, OmegaConf.from_dotlist(changes))
    resumed.resume = str(run_dir)
    log.info("resuming %s from %s", run_dir, last)
    return resumed, str(last)


def check_trainer_config(cfg: DictConfig) -> None:
    epochs = cfg.trainer.get("max_epochs")
    if epochs is not None and (not isinstance(epochs, int) or epochs <= 0):
        raise UserError(f"trainer.max_epochs={epochs!r} must be a positive integer (the seed used 640).")
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator} needs a CUDA GPU, but torch finds none on this machine. "
            "Use trainer=cpu, or trainer=auto to take a GPU only when there is one."
        )


def check_checkpoint_matches(ckpt_path: str, cfg: DictConfig, key: str = "ckpt_path") -> dict:
    from sketch2photo.module import read_checkpoint

    checkpoint = read_checkpoint(ckpt_path, key)
    saved_net = checkpoint["hyper_parameters"]["net"]
    wanted = OmegaConf.to_container(cfg.model.net, resolve=True)
    if with_defaults(saved_net) != with_defaults(wanted):
        raise UserError(
            f"{key}={ckpt_path} holds a different model ({saved_net}) from this run's model.net ({wanted}). "
            f"Select the same model (e.g. model=unet with the same depth/width), or start without {key}."
        )
    return checkpoint


def with_defaults(net: dict) -> dict:
    """A network config with its class's default arguments filled in, so that a checkpoint saved
    before an option existed matches a config that gives the option its default."""
    try:
        parameters = inspect.signature(get_class(net["_target_"])).parameters.values()
    except Exception:  # an unknown class: the configs are compared as they are
        return net
    return {**{p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}, **net}


def start_from_weights(model, ckpt_path: str, cfg: DictConfig) -> None:
    """init_from: the network starts from a checkpoint's weights (fine-tuning); the optimizer,
    epochs and data order start afresh, in this run's own directory."""
    model.net.load_state_dict(state_dict_of_net(check_checkpoint_matches(ckpt_path, cfg, key="init_from")))


def state_dict_of_net(checkpoint: dict) -> dict:
    return {name.removeprefix("net."): tensor for name, tensor in checkpoint["state_dict"].items() if name.startswith("net.")}


def monitor_train_loss_instead(cfg: DictConfig) -> None:
    """No validation split (e.g. data.split=none): 'best' means the lowest train/loss."""
    with open_dict(cfg):
        for name, callback in (cfg.get("callbacks") or {}).items():
            if not callback or not str(callback.get("monitor", "")).startswith("val/"):
                continue
            if "ModelCheckpoint" in callback._target_:
                callback.monitor, callback.mode = "train/loss", "min"
            else:
                log.warning("callbacks.%s monitors %s but there is no validation split: disabled", name, callback.monitor)
                cfg.callbacks[name] = None


def instantiate_all(group: DictConfig | None) -> list:
    return [instantiate(item) for item in (group or {}).values() if item and "_target_" in item]


# -- results ---------------------------------------------------------------------------------------
def test_weights(trainer, datamodule) -> str | None:
    """Test the best checkpoint when the test split is separate from validation; when they are the
    same pairs (cross-validation folds), picking by them would be optimistic, so test the final weights."""
    best = getattr(trainer.checkpoint_callback, "best_model_path", "")
    separate = datamodule.sets.get("test") is not datamodule.sets.get("val")
    return "best" if best and separate and datamodule.has("val") else None


def scalars(metrics: dict) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}


def log_hyperparameters(trainer, cfg: DictConfig, metrics: dict[str, float]) -> None:
    """One HPARAMS entry per run: the flattened config with the final metrics (no hp_metric placeholder)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    params = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("data", "model", "trainer")}
    params["seed"] = cfg.seed
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger) and metrics:
            logger.log_hyperparams(params, metrics=metrics, step=trainer.global_step)
            logger.finalize("success")


def report(run_dir: Path, metrics: dict[str, float]) -> None:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:
        return
    shown = ", ".join(f"{name}={value:.4g}" for name, value in sorted(metrics.items()))
    log.info("final metrics: %s", shown)
    log.info("run dir: %s (checkpoints/, samples/, metrics.json, .hydra/config.yaml)", run_dir)
    log.info("sample grids: %s", run_dir / "samples")
    log.info("TensorBoard: tensorboard --logdir %s", run_dir.parent if in_multirun() else run_dir)


@hydra_command("train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    value = metrics.get(cfg.get("optimized_metric") or "", None)
    return value


if __name__ == "__main__":
    main()
