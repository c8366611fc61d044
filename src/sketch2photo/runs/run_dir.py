"""The run dir Hydra made for this command: whether it is one job of a multirun, what was typed for
it, removing it when the command was refused before any work, and refusing to resume one that
holds links."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException
from hydra.types import RunMode

from sketch2photo.errors import UserError

EXCLUDE_KEYS = "hydra.job.config.override_dirname.exclude_keys"


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def typed_overrides() -> list[Override]:
    """What the user typed on the command line, parsed by Hydra's own override grammar."""
    return OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))


def remove_refused_run(run_dir: Path) -> None:
    """Delete a run dir that holds only what Hydra wrote (.hydra/, the log), and its parents that
    this leaves empty, up to the working directory."""
    cwd = Path.cwd().resolve()
    if not run_dir.is_dir() or run_dir.resolve() in (cwd, *cwd.parents):  # the tools run in "."
        return
    if any(p.name != ".hydra" and p.suffix != ".log" for p in run_dir.iterdir()):
        return
    shutil.rmtree(run_dir)
    for parent in run_dir.resolve().parents:
        if parent == cwd or cwd not in parent.parents or any(parent.iterdir()):
            break
        parent.rmdir()


def typed_value(arguments: list[str], key: str):
    """The value given to `key` among command-line arguments, parsed by Hydra's override grammar
    (quotes and escapes included) before Hydra has run; None when it is not there."""
    parser = OverridesParser.create()
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument:  # Hydra's flags (-m, --config-dir)
            continue
        try:
            override = parser.parse_override(argument)
        except OverrideParseException:
            continue  # Hydra itself reports it, with its own message
        if override.key_or_group == key:
            return override.value()
    return None


def check_no_links(arguments: list[str]) -> None:
    """resume=<run dir>: refuse a run dir holding links, before Hydra writes its logs and configs
    into it (a link there would take those writes elsewhere)."""
    given = typed_value(arguments, "resume")
    if not isinstance(given, str) or not Path(given).is_dir():
        return
    for folder, folders, files in os.walk(given, followlinks=False):
        for name in [*folders, *files]:
            path = Path(folder) / name
            if path.is_symlink():
                raise UserError(
                    f"resume={given}: {path} is a link to {os.readlink(path)}: refused, links in "
                    "a run dir are not followed (it may point at a file you need). Remove it, or "
                    "copy the run dir without links."
                )


def name_runs_by_sweep(arguments: list[str]) -> list[str]:
    """A multirun's command line, with Hydra told to leave each key typed with one value out of
    hydra.job.override_dirname, which then names what the sweep varies (config.py's
    s2p_sweep_run, TensorBoard's run names). Unchanged when it does not parse: Hydra says why."""
    typed = [argument for argument in arguments if "=" in argument and argument[0] != "-"]
    try:
        overrides = OverridesParser.create().parse_overrides(typed)
    except Exception:
        return arguments
    if any(override.key_or_group.startswith(EXCLUDE_KEYS) for override in overrides):
        return arguments  # the user's own choice
    fixed = [
        override.key_or_group
        for override in overrides
        if not override.is_sweep_override() and not override.key_or_group.startswith("hydra.")
    ]
    return [*arguments, f"{EXCLUDE_KEYS}=[{','.join(fixed)}]"]
