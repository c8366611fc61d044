"""'did you mean ...?' for a key or group on the command line that the config does not have.

Run only after Hydra has refused a command line, so it costs nothing when there is no mistake.
"""

from __future__ import annotations

import difflib

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from omegaconf import DictConfig, OmegaConf

MISSING_KEY = object()


def nearest_names(config_dir: str, config_name: str, args: list[str]) -> str:
    """'did you mean ...?' for each key or group on the command line that the config does not
    have."""
    try:
        overrides = OverridesParser.create().parse_overrides(
            [arg for arg in args if not arg.startswith("-")]
        )
    except Exception:  # Hydra has already said what is wrong with the syntax
        return ""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir):
        loader = GlobalHydra.instance().config_loader()
        groups = loader.list_groups("")
        chosen = [
            o.input_line
            for o in overrides
            if o.key_or_group in groups and o.value_type is ValueType.ELEMENT
        ]
        try:
            cfg = compose(config_name, overrides=chosen)
        except Exception:  # a bad group choice: Hydra has listed the options
            cfg = compose(config_name)
    keys = list(dotted_keys(cfg))
    hints = []
    for override in overrides:
        name = override.key_or_group
        if (
            override.is_add()
            or name.startswith("hydra")
            or name in groups
            or OmegaConf.select(cfg, name, default=MISSING_KEY) is not MISSING_KEY
        ):
            continue
        parent, _, leaf = name.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
        if isinstance(
            node, DictConfig
        ):  # a misspelt last part: its siblings (and the groups, at the top)
            siblings = list(dict.fromkeys([*node.keys(), *([] if parent else groups)]))
            close = [
                f"{parent}.{match}" if parent else match
                for match in difflib.get_close_matches(leaf, siblings, n=3, cutoff=0.6)
            ]
        else:  # the parent is misspelt too
            close = difflib.get_close_matches(name, keys, n=3, cutoff=0.6)
        if close:
            value = override.input_line.split("=", 1)[1] if "=" in override.input_line else ""
            hints.append(
                f"{name}: did you mean "
                + " or ".join(f"{c}={value}" if value else c for c in close)
                + "?"
            )
    return "\n".join(hints)


def dotted_keys(cfg: DictConfig, prefix: str = ""):
    for key in cfg.keys():
        path = f"{prefix}{key}"
        yield path
        value = cfg._get_node(key)
        if isinstance(value, DictConfig) and not value._is_missing() and not value._is_none():
            yield from dotted_keys(value, f"{path}.")
