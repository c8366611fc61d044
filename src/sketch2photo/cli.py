"""How every s2p-* command starts: Hydra composes the project's configs, then the command runs.

The console scripts point at the table at the end (`s2p-train = sketch2photo.cli:train`). A
command's own module is imported only once Hydra has composed the config: torch and Lightning are
not loaded for `--help`, `--cfg` or a config that fails to compose, and the prechecks (checks.py)
answer a bad value before they are.

A UserError ends a single run with its message and exit status 1, no traceback. Inside a
multirun it is re-raised, so Hydra records that job as failed and the other jobs still run.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import hydra
from hydra._internal.utils import run_and_report
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from sketch2photo.checks import (
    USAGES,
    check_added_keys,
    check_eval_config,
    check_eval_paths,
    check_litdata,
    check_optuna_sweeper,
    check_predict_paths,
    check_training_config,
    check_training_paths,
    use_checkpoint_files,
)
from sketch2photo.config import CONFIG_DIR
from sketch2photo.did_you_mean import nearest_names
from sketch2photo.errors import UserError, disk_full, require_keys, unwrap
from sketch2photo.runs.run_dir import (
    check_no_links,
    in_multirun,
    name_runs_by_sweep,
    remove_refused_run,
)
from sketch2photo.runs.sweep_summary import SweepStart, sweep_summary

log = logging.getLogger("sketch2photo")
# Hydra prints a command line it refuses (a key the config lacks: "To append to your config use
# +key=...") and exits. Set to 1, it raises the error instead, so that entry() can answer a
# near-miss of a known key with the project's did-you-mean line alone.
FULL_ERROR = "HYDRA_FULL_ERROR"

# Lightning's lines that tell a user of these commands nothing: the model line names the device,
# the summary says which weights were tested, and the litlogger tip is an advertisement.
NOISE_LOG_LINES = (
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "💡 Tip:",
    "`Trainer.fit` stopped:",
    "Restoring states from the checkpoint path",
    "Loaded model weights from the checkpoint",
    "Restored all states from the checkpoint",
    "setup plugin ",
)
NOISE_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning 2.6's own use of torch's pytree API
    r"Checkpoint directory .* exists and is not empty",  # resume=<run dir> writes into its own dir on purpose
    r"The given buffer is not writable",  # data=streaming: litdata's tensors over a memory-mapped chunk, only read
    r"Your `IterableDataset` has `__len__` defined",  # data=streaming: litdata splits the pairs among workers itself
)
NOISE_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "alembic.runtime.plugins",
)  # "setup plugin ..." x7 when the Optuna sweeper imports optuna


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
    (the console and the run's log file) should get these records instead: once, and in
    train.log."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def command(
    config_name: str,
    body: str,
    precheck: Callable[[DictConfig], None] | None = None,
    list_keys: tuple[str, ...] = (),
    arguments: Callable[[list[str]], list[str]] | None = None,
) -> Callable[[], Any]:
    """An s2p-* entry point: compose `config_name`, run `precheck` (plain values, no torch), then
    `body` ("module:function"). `list_keys` take a comma list without brackets (`hints=0,1,3`),
    which Hydra outside -m refuses as an ambiguous sweep; `arguments` rewrites the command line
    first (s2p-compare's older style)."""
    started, hydra_raises = [], []

    def run(cfg: DictConfig) -> Any:
        started.append(True)
        if hydra_raises == [True]:
            os.environ.pop(FULL_ERROR, None)  # the job's own errors: reported by Hydra as usual
        ran_body = False
        silence_known_noise()
        try:
            check_added_keys(cfg)
            if (
                precheck is not None and not in_multirun()
            ):  # a sweep job records its failure in its own dir instead
                precheck(cfg)
            ran_body = True
            module, name = body.split(":")
            function = getattr(
                importlib.import_module(module), name
            )  # torch and Lightning load here
            if "lightning" in sys.modules:
                use_hydra_logging_for_lightning()
            return function(cfg)
        except KeyboardInterrupt:
            log.warning("Interrupted (Ctrl-C).")
            sys.exit(130)
        except SystemExit as exit:
            if (
                type(exit).__name__ == "SIGTERMException"
            ):  # Lightning's, after saving: status 0 otherwise
                sys.exit(128 + signal.SIGTERM)
            raise
        except Exception as error:
            cause = unwrap(error)
            cause = disk_full(cause, then=_after_disk_full(config_name)) or cause
            if not isinstance(cause, UserError):
                raise
            log.error("%s", cause)
            if in_multirun():
                raise cause from None
            if not ran_body:  # refused by the prechecks, before any work
                remove_refused_run(Path(HydraConfig.get().runtime.output_dir))
            sys.exit(1)

    run.__module__ = body.split(":")[0]  # Hydra names the job (train.log, hydra.job.name) after it
    hydra_main = hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)(
        run
    )

    def entry() -> Any:
        silence_known_noise()  # here too: a sweeper's imports log before any job runs
        if arguments is not None:
            sys.argv[1:] = arguments(sys.argv[1:])
        multirun = bool({"-m", "--multirun"} & set(sys.argv))
        if list_keys and not multirun:
            sys.argv[1:] = [_as_list(argument, list_keys) for argument in sys.argv[1:]]
        if multirun:
            sys.argv[1:] = name_runs_by_sweep(sys.argv[1:])
        try:
            check_optuna_sweeper(sys.argv[1:])
            if config_name == "train":
                check_no_links(sys.argv[1:])
        except UserError as error:
            print(error, file=sys.stderr)
            sys.exit(1)
        raising = FULL_ERROR not in os.environ  # else the user asked for Hydra's full tracebacks
        hydra_raises[:] = [raising]
        if raising:
            os.environ[FULL_ERROR] = "1"  # Hydra raises a command line it refuses, until run()
        try:
            return hydra_main()
        except (HydraException, OmegaConfBaseException) as error:  # what Hydra would report
            if not raising:
                raise
            os.environ.pop(FULL_ERROR, None)
            hint = not started and nearest_names(CONFIG_DIR, config_name, sys.argv[1:])
            if hint:  # a near-miss of a known key: the project's line instead of Hydra's `+` advice
                print(hint, file=sys.stderr)
                sys.exit(1)
            run_and_report(partial(_raise, error))  # Hydra's own report, then exit status 1
        finally:
            if SweepStart.sweep_dirs:
                print(sweep_summary(SweepStart.sweep_dirs.pop()))

    return entry


def _raise(error: BaseException) -> None:
    raise error


def _after_disk_full(config_name: str) -> str:
    if config_name != "train":
        return "run the command again"
    run_dir = HydraConfig.get().runtime.output_dir
    return f"continue the run from its last checkpoint, which is kept: s2p-train resume={run_dir}"


def _as_list(argument: str, keys: tuple[str, ...]) -> str:
    key, _, value = argument.partition("=")
    return (
        f"{key}=[{value}]"
        if key in keys and "," in value and not value.startswith("[")
        else argument
    )


def requires(name: str, *then: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    """A precheck: every required key (`???`) of the command is given, then the checks `then`."""

    def precheck(cfg: DictConfig) -> None:
        require_keys(cfg, USAGES[name])
        for check in then:
            check(cfg)

    return precheck


def all_of(*checks: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    def precheck(cfg: DictConfig) -> None:
        for check in checks:
            check(cfg)

    return precheck


def compare_arguments(arguments: list[str]) -> list[str]:
    """s2p-compare's older argparse style as Hydra overrides: `DIR --metric X --out Y` -> `dir=DIR
    metric=X out=Y`. A bare word after one of Hydra's own flags (`--cfg job`) is that flag's
    value."""
    translated, words, previous = [], iter(arguments), ""
    dir_given = any(word.startswith("dir=") for word in arguments)
    for word in words:
        option, equals, value = word.partition("=")
        if option in ("--metric", "--out"):
            word = f"{option[2:]}={_quoted(value if equals else next(words, ''))}"
        elif not (equals or dir_given or word.startswith("-") or previous.startswith("-")):
            word, dir_given = f"dir={_quoted(word)}", True
        translated.append(word)
        previous = word
    return translated


def _quoted(value: str) -> str:
    """A Hydra override value that stays the string it is: a path may hold spaces, commas or a
    '~'."""
    return "'" + value.replace("'", "\\'") + "'"


def _pack_precheck(cfg: DictConfig) -> None:
    requires("pack")(cfg)
    check_litdata()


# The one entry table: console script -> config, body, precheck.
train = command(
    "train",
    "sketch2photo.commands.train:main",
    all_of(check_training_config, check_training_paths),
)
evaluate = command(
    "eval",
    "sketch2photo.commands.evaluate:main",
    all_of(check_eval_config, check_eval_paths),
    list_keys=("hints",),
)
predict = command(
    "predict", "sketch2photo.commands.predict:main", requires("predict", check_predict_paths)
)
export = command(
    "export", "sketch2photo.commands.export:main", requires("export", use_checkpoint_files)
)
app = command("app", "sketch2photo.commands.app:main", requires("app", use_checkpoint_files))
compare = command(
    "compare",
    "sketch2photo.commands.compare:main",
    requires("compare"),
    arguments=compare_arguments,
)
make_pairs = command("make_pairs", "sketch2photo.commands.make_pairs:main", requires("make_pairs"))
pack = command("pack", "sketch2photo.commands.pack:main", _pack_precheck)
