"""Networks. Each has `size_multiple` (the input side must be a multiple of it) and `takes_hints`
(whether forward takes a hint map as its second input).

NETWORKS is the registry of the classes a checkpoint may name as its `net._target_`; a network
added to the package is added here.
"""

from __future__ import annotations

import inspect

from sketch2photo.nets.autoencoder import SeedAutoencoder
from sketch2photo.nets.conditioning import GENERATORS, ConditionedGenerator
from sketch2photo.nets.unet import UNet

NETWORKS = {
    f"{network.__module__}.{network.__qualname__}": network
    for network in (SeedAutoencoder, UNet, ConditionedGenerator)
}


def network_name(net: dict) -> str:
    """What a run calls its network: its class, or inside the conditioning the generator's
    (UNet)."""
    target = str(net.get("_target_"))
    if NETWORKS.get(target) is ConditionedGenerator and net.get("generator", "unet") in GENERATORS:
        return GENERATORS[net.get("generator", "unet")].__name__
    return target.rsplit(".", 1)[-1]


def network_defaults(net: dict) -> dict:
    """A network config with every default argument filled in (the generator's too, inside a
    ConditionedGenerator), so that a checkpoint saved before an option existed matches a config that
    gives the option its default. An unknown class: the config as it is."""
    network = NETWORKS.get(net.get("_target_"))
    if network is None:
        return net
    defaults = _defaults(network)
    if network is ConditionedGenerator and net.get("generator", "unet") in GENERATORS:
        generator = _defaults(GENERATORS[net.get("generator", "unet")])
        defaults = {
            **{k: v for k, v in generator.items() if k not in ("in_channels", "out_channels")},
            **defaults,
        }
    return {**defaults, **net}


def _defaults(network: type) -> dict:
    parameters = inspect.signature(network).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.default is not inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD
    }
