"""How every s2p-* command starts: Hydra composes the project's configs, then the command runs.

The console scripts point here (`s2p-train = sketch2photo.cli:train`), and the command's own module
is imported only once Hydra has composed the config: torch and Lightning are not loaded for
`--help`, `--cfg` or a config that fails to compose.

A UserError ends a single run with its message and exit status 1, no traceback. Inside a
multirun it is re-raised, so Hydra records that job as failed and the other jobs still run.
"""

from __future__ import annotations

import functools
import importlib
import logging
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

from sketch2photo.checks import check_eval_config, check_litdata, check_training_config
from sketch2photo.did_you_mean import nearest_names
from sketch2photo.errors import UserError, require_keys, unwrap
from sketch2photo.metrics import higher_is_better
from sketch2photo.run_dir import in_multirun, remove_refused_run
from sketch2photo.sweep_summary import SweepStart, sweep_summary

CONFIG_DIR = str(Path(__file__).resolve().parent / "configs")  # shipped inside the package; ./configs links here
log = logging.getLogger("sketch2photo")


def _resume_dir(default: str, *, _root_: DictConfig) -> str:
    """hydra.run.dir: the run being resumed (resume=<run dir>), else a new dir."""
    return OmegaConf.select(_root_, "resume", default=None) or default


def _if_resuming(then: str, otherwise: str, *, _root_: DictConfig) -> str:
    return then if OmegaConf.select(_root_, "resume", default=None) else otherwise


def _direction(metric: str) -> str:
    """hydra.sweeper.direction for optimized_metric: maximize val/psnr, minimize val/loss."""
    return "maximize" if higher_is_better(metric) else "minimize"


OmegaConf.register_new_resolver("s2p_run_dir", _resume_dir, replace=True)
OmegaConf.register_new_resolver("s2p_if_resuming", _if_resuming, replace=True)
OmegaConf.register_new_resolver("s2p_direction", _direction, replace=True)


def typed_overrides() -> list[Override]:
    """What the user typed on the command line, parsed by Hydra's own override grammar."""
    return OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))


# Lightning's lines that tell a user of these commands nothing: the model line names the device,
# the summary says which weights were tested, and the litlogger tip is an advertisement.
NOISE_LOG_LINES = (
    "GPU available:", "TPU available:", "HPU available:", "💡 Tip:", "`Trainer.fit` stopped:",
    "Restoring states from the checkpoint path", "Loaded model weights from the checkpoint",
    "Restored all states from the checkpoint", "setup plugin ",
)
NOISE_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning 2.6's own use of torch's pytree API
    r"Checkpoint directory .* exists and is not empty",   # resume=<run dir> writes into its own dir on purpose
    r"The given buffer is not writable",  # data=streaming: litdata's tensors over a memory-mapped chunk, only read
    r"Your `IterableDataset` has `__len__` defined",  # data=streaming: litdata splits the pairs among workers itself
)


NOISE_LOGGERS = ("lightning.pytorch.utilities.rank_zero",
                 "alembic.runtime.plugins")  # "setup plugin ..." x7 when the Optuna sweeper imports optuna


def silence_known_noise() -> None:
    """Filters scoped to the known messages above, in every process and job that runs a command."""
    for pattern in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in NOISE_LOGGERS:
        logging.getLogger(name).addFilter(_not_noise)


def _not_noise(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(NOISE_LOG_LINES)


def use_hydra_logging_for_lightning() -> None:
    """Lightning gives its loggers their own stderr handler (and stops propagation) when it is
    imported before logging is set up, as `python -m sketch2photo.train` does. Hydra's handlers
    (the console and the run's log file) should get these records instead: once, and in train.log."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def command(config_name: str, body: str | Callable[[DictConfig], Any],
            precheck: Callable[[DictConfig], None] | None = None, list_keys: tuple[str, ...] = ()) -> Callable[[], Any]:
    """An s2p-* entry point: compose `config_name`, run `precheck` (plain values, no torch), then
    `body` ("module:function", or the function itself). `list_keys` take a comma list without
    brackets (`hints=0,1,3`), which Hydra outside -m refuses as an ambiguous sweep."""
    started = []

    def run(cfg: DictConfig) -> Any:
        started.append(True)
        ran_body = False
        silence_known_noise()
        try:
            if precheck is not None and not in_multirun():  # a sweep job records its failure in its own dir instead
                precheck(cfg)
            ran_body = True
            function = body if callable(body) else _load(body)
            if "lightning" in sys.modules:
                use_hydra_logging_for_lightning()
            return function(cfg)
        except KeyboardInterrupt:
            log.warning("Interrupted (Ctrl-C).")
            sys.exit(130)
        except SystemExit as exit:
            if type(exit).__name__ == "SIGTERMException":  # Lightning's, after saving: status 0 otherwise
                sys.exit(128 + signal.SIGTERM)
            raise
        except Exception as error:
            cause = unwrap(error)
            if not isinstance(cause, UserError):
                raise
            log.error("%s", cause)
            if in_multirun():
                raise cause from None
            if not ran_body:  # refused by the prechecks, before any work
                remove_refused_run(Path(HydraConfig.get().runtime.output_dir))
            sys.exit(1)

    # Hydra names the job (train.log, hydra.job.name) after the function's module
    if callable(body):
        run = functools.wraps(body)(run)
    else:
        run.__module__ = body.split(":")[0]
    hydra_main = hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)(run)

    def entry() -> Any:
        silence_known_noise()  # here too: a sweeper's imports log before any job runs
        if list_keys and not {"-m", "--multirun"} & set(sys.argv):
            sys.argv[1:] = [_as_list(argument, list_keys) for argument in sys.argv[1:]]
        try:
            return hydra_main()
        except SystemExit as exit:
            if exit.code == 1 and not started:  # Hydra refused the command line: say what was meant
                hint = nearest_names(CONFIG_DIR, config_name, sys.argv[1:])
                if hint:
                    print(hint, file=sys.stderr)
            raise
        finally:
            if SweepStart.sweep_dirs:
                print(sweep_summary(SweepStart.sweep_dirs.pop()))

    return entry


def _as_list(argument: str, keys: tuple[str, ...]) -> str:
    key, _, value = argument.partition("=")
    return f"{key}=[{value}]" if key in keys and "," in value and not value.startswith("[") else argument


def requires(usage: str) -> Callable[[DictConfig], None]:
    """A precheck: every required key (`???`) is given."""
    return lambda cfg: require_keys(cfg, usage)


def _load(body: str) -> Callable[[DictConfig], Any]:
    module, name = body.split(":")
    return getattr(importlib.import_module(module), name)  # torch and Lightning load here, after composition


USAGES = {
    "predict": "s2p-predict ckpt_path=<file.ckpt or .safetensors> input=<sketch file or folder> output=<folder> "
               "[keep_size=true] [hints=<hint file or folder>]",
    "app": "s2p-app ckpt_path=<file.ckpt or .safetensors> [data.data_dir=<pairs>] [host=127.0.0.1] [port=7860]",
    "export": "s2p-export ckpt_path=<file.ckpt> format=onnx|torchscript|safetensors [output=<file>]",
    "make_pairs": "s2p-make-pairs photos=<folder of colour images> out=<new folder> [size=256]",
    "pack": "s2p-pack data.data_dir=<pairs> out=<new folder or s3://bucket/prefix> [data.image_size=128]",
}

train = command("train", "sketch2photo.train:main", precheck=check_training_config)
evaluate = command("eval", "sketch2photo.evaluate:main", precheck=check_eval_config, list_keys=("hints",))
predict = command("predict", "sketch2photo.predict:main", precheck=requires(USAGES["predict"]))
app = command("app", "sketch2photo.app:main", precheck=requires(USAGES["app"]))
export = command("export", "sketch2photo.export:main", precheck=requires(USAGES["export"]))
make_pairs = command("make_pairs", "sketch2photo.make_pairs:main", precheck=requires(USAGES["make_pairs"]))
pack = command("pack", "sketch2photo.pack:main", precheck=lambda cfg: (requires(USAGES["pack"])(cfg), check_litdata()))
