"""Which `_target_`s a file someone handed over may have instantiated: the one check behind
checkpoints (read.py: a network, an optimizer, a scheduler) and run dirs (resume.py: what the
project's configs, or the user's own, can name).

hydra.utils.instantiate calls whatever a `_target_` names, at any depth, and resolves `${...}`
first. So the whole config is checked, every `_target_` in it, and a string that could still be
resolved into something else is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from hydra.utils import get_class

from sketch2photo.errors import UserError
from sketch2photo.nets import NETWORKS

Allowed = Callable[[str, Any], bool]  # (where in the config, the target) -> may it be called
NOTHING_CALLED = "refused, nothing was called."
# ${name:...}, escaped or not: OmegaConf reads \\${...} as a backslash and a live interpolation
RESOLVER = re.compile(r"\$\{\s*([\w.\-]+)\s*:")


def check_targets(
    config: dict, allowed: Allowed, source: str, allowed_are: str, root: str = ""
) -> None:
    """Refuse any `_target_` that `allowed` refuses, and any interpolation left (`root` prefixes
    its place), naming where: one UserError that starts with `source`."""
    interpolation = next((place for place, text in strings_in(config, root) if "${" in text), None)
    if interpolation:  # instantiate() would resolve it before calling: a target unseen here
        raise UserError(
            f"{source} holds an interpolation (${{...}}) at {interpolation}; {NOTHING_CALLED}"
        )
    for place, target in targets_in(config):
        if not isinstance(target, str) or not allowed(place, target):
            raise UserError(
                f"{source} asks to instantiate {target!r} (at {place}), which is not "
                f"{allowed_are}; {NOTHING_CALLED}"
            )


def check_resolvers(config: dict, allowed: set[str], source: str) -> None:
    """Refuse any resolver outside `allowed` before resolving: oc.create and oc.decode build
    configs (with `_target_`s) out of strings."""
    for place, text in strings_in(config):
        for name in RESOLVER.findall(text):
            if name not in allowed:
                raise UserError(
                    f"{source} uses the resolver {name} (at {place}), which is not one of "
                    f"{', '.join(sorted(allowed))}; {NOTHING_CALLED}"
                )


def targets_in(value: Any, place: str = "") -> Iterator[tuple[str, Any]]:
    """(where, target) for every `_target_` in a nested config."""
    if isinstance(value, dict):
        if "_target_" in value:
            yield place, value["_target_"]
        for name, item in value.items():
            if name != "_target_":
                yield from targets_in(item, _join(place, name))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from targets_in(item, f"{place}[{index}]")


def strings_in(value: Any, place: str = "") -> Iterator[tuple[str, str]]:
    """(where, text) for every string in a nested config, keys included."""
    if isinstance(value, str):
        yield place, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from strings_in(name, place)
            yield from strings_in(item, _join(place, name))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from strings_in(item, f"{place}[{index}]")


def _join(place: str, name: Any) -> str:
    return f"{place}.{name}" if place else str(name)


def targets_named_in(folders: list[Path], leave_out: Path | None = None) -> set[str]:
    """Every `_target_` the YAML files under `folders` name: what those configs can instantiate.
    Hidden folders (a run's .hydra/) and `leave_out` (the run dir being checked, which would vouch
    for itself under --config-dir .) are not config folders."""
    named: set[str] = set()
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.yaml")):
            hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
            if hidden or (leave_out and path.resolve().is_relative_to(leave_out.resolve())):
                continue
            try:
                config = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError):
                continue  # Hydra itself says what is wrong with a config it composes
            named.update(target for _, target in targets_in(config) if isinstance(target, str))
    return named


def network_target(target: Any) -> bool:
    return target in NETWORKS


def optimizer_target(target: Any) -> bool:
    return _torch_class(target, "torch.optim.", torch.optim.Optimizer)


def scheduler_target(target: Any) -> bool:
    return _torch_class(target, "torch.optim.lr_scheduler.", torch.optim.lr_scheduler.LRScheduler)


def _torch_class(target: Any, prefix: str, base: type) -> bool:
    if not isinstance(target, str) or not target.startswith(prefix):
        return False  # checked before importing: a foreign module is never imported
    try:
        found = get_class(target)
    except Exception:
        return False
    return isinstance(found, type) and issubclass(found, base)
