"""Where things moved: one table from old `_target_`s and network configs to today's, used by
checkpoint reading (read.py) and resume=<run dir> (resume.py), so files written by earlier versions
still load, evaluate, predict and resume.

Until 0.2.0 the U-Net carried its own background and hint options (`sketch2photo.nets.unet.UNet`
with background_input, hint_input, ...); they now wrap any generator (nets/conditioning.py), so an
older U-Net becomes a ConditionedGenerator around today's plain U-Net, its weights under
`generator.`. The flags hint_line_fill and hint_whole_figure were dropped: they gained at most
0.15 dB (the docs' hints results). A file that set one loads without it, with a warning.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

MOVED_TARGETS = {
    # callbacks, before they shared a module
    "sketch2photo.checkpointing.LastCheckpoint": "sketch2photo.checkpoints.callbacks.LastCheckpoint",
    "sketch2photo.checkpointing.CheckpointOnInterrupt": "sketch2photo.checkpoints.callbacks.CheckpointOnInterrupt",
    "sketch2photo.samples.SampleGrids": "sketch2photo.runs.sample_grids.SampleGrids",
    # before the re-cut into commands/, checkpoints/, runs/, hints/ (0.2.0)
    "sketch2photo.callbacks.LastCheckpoint": "sketch2photo.checkpoints.callbacks.LastCheckpoint",
    "sketch2photo.callbacks.CheckpointOnInterrupt": "sketch2photo.checkpoints.callbacks.CheckpointOnInterrupt",
    "sketch2photo.callbacks.SampleGrids": "sketch2photo.runs.sample_grids.SampleGrids",
    "sketch2photo.data.datamodule.PairedSketchDataModule": "sketch2photo.data.datamodules.pairs.PairedSketchDataModule",
    "sketch2photo.data.streaming.StreamingPairsDataModule": "sketch2photo.data.datamodules.streaming.StreamingPairsDataModule",
    "sketch2photo.sweep_summary.SweepStart": "sketch2photo.runs.sweep_summary.SweepStart",
}
RECUT_VERSION = (0, 2, 0)  # checkpoints written before it hold the U-Net with its options inside
OLD_UNET = "sketch2photo.nets.unet.UNet"
CONDITIONED = "sketch2photo.nets.conditioning.ConditionedGenerator"
DROPPED_NET_KEYS = {
    "hint_line_fill": 0,
    "hint_whole_figure": False,
}  # and their defaults, which change nothing
_warned: set[str] = set()


def moved(target: Any) -> Any:
    return MOVED_TARGETS.get(target, target) if isinstance(target, str) else target


def written_before_recut(checkpoint: dict) -> bool:
    version = str(checkpoint.get("sketch2photo_version", "0"))
    try:
        return tuple(int(part) for part in version.split(".")[:3]) < RECUT_VERSION
    except ValueError:  # not a version of ours: read it as it is
        return False


def upgrade_net(net: dict, where: str) -> dict:
    """An older U-Net config as today's: the same network, wrapped (`where` names its file in the
    warning)."""
    if net.get("_target_") != OLD_UNET:
        return net
    net = dict(net)
    dropped = {key: net.pop(key) for key in DROPPED_NET_KEYS if key in net}
    set_ = ", ".join(
        f"model.net.{key}={json.dumps(value)}"
        for key, value in dropped.items()
        if value != DROPPED_NET_KEYS[key]
    )
    if set_ and set_ not in _warned:  # once, though resume reads the file more than once
        _warned.add(set_)
        log.warning(
            "%s sets %s, dropped in sketch2photo 0.2 (it gained at most 0.15 dB): loaded without, so "
            "its outputs may differ slightly.",
            where,
            set_,
        )
    return {**net, "_target_": CONDITIONED, "generator": "unet"}


def upgrade_checkpoint(checkpoint: dict, where: str) -> dict:
    """A checkpoint written before the re-cut, in today's form (in place): network config and
    weights."""
    hparams = checkpoint.get("hyper_parameters")
    if (
        not written_before_recut(checkpoint)
        or not isinstance(hparams, dict)
        or not isinstance(hparams.get("net"), dict)
    ):
        return checkpoint
    if hparams["net"].get("_target_") == OLD_UNET:
        hparams["net"] = upgrade_net(hparams["net"], where)
        state = checkpoint.get("state_dict") or {}
        checkpoint["state_dict"] = {
            name.replace("net.", "net.generator.", 1) if name.startswith("net.") else name: value
            for name, value in state.items()
        }
    return checkpoint


def upgrade_run_config(saved, written_before: bool, where: str) -> None:
    """A run dir's saved config (DictConfig, in place): moved targets, and the network as its
    checkpoint now reads (`written_before`: the run's last.ckpt predates the re-cut)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    def walk(node) -> None:
        if isinstance(node, DictConfig):
            if "_target_" in node:  # as written: an interpolation stays one, checked once resolved
                node._target_ = moved(node._get_node("_target_")._value())
            for key in node:
                walk(node._get_node(key))
        elif isinstance(node, ListConfig):
            for index in range(len(node)):
                walk(node._get_node(index))

    walk(saved)
    for callback in (saved.get("callbacks") or {}).values():
        if (
            isinstance(callback, DictConfig)
            and str(callback.get("_target_", "")).endswith("CheckpointOnInterrupt")
            and "dirpath" not in callback
        ):
            callback.dirpath = "${paths.run_dir}/checkpoints"  # the oldest had none
    net = OmegaConf.select(saved, "model.net")
    if written_before and isinstance(net, DictConfig):
        saved.model.net = upgrade_net(OmegaConf.to_container(net), where)
