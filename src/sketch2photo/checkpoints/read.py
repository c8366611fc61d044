"""The one place that opens checkpoints: read them safely, check they are ours, compare their
network with a config, take their weights or data settings, rebuild the trained module.

A checkpoint is data from whoever handed it over. It is read with `weights_only=True` (tensors and
plain containers only, so no pickle can run code). Before the module is rebuilt from the config
inside it (load_module: eval, predict, export), every `_target_` in that config must be a network
of this package, a `torch.optim` optimizer or a `torch.optim.lr_scheduler` scheduler, and a
pix2pix checkpoint's `discriminator` the PatchGAN. Training (resume, ckpt_path, init_from)
instantiates from the user's own config, never from the file's.

A pix2pix checkpoint (model=pix2pix: its config has a `discriminator`) is served by its generator
alone: load_module gives the same ColorizationModule as for a regression model, with the generator
as its network, so every command that colours or scores works on it unchanged.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from sketch2photo.checkpoints.aliases import upgrade_checkpoint
from sketch2photo.checkpoints.locate import checkpoint_file
from sketch2photo.checkpoints.targets import (
    check_targets,
    network_target,
    optimizer_target,
    scheduler_target,
)
from sketch2photo.errors import UserError, unwrap
from sketch2photo.module import ColorizationModule
from sketch2photo.nets import network_defaults
from sketch2photo.nets.patchgan import PatchGAN

HPARAMS, DATA_HPARAMS = "hyper_parameters", "datamodule_hyper_parameters"
MAX_IMAGE_SIZE = 4096  # from a file: one 4096 px sketch is 200 MB as float, one of 65536 px 51 GB
MAX_CARD_BYTES = 1_000_000
DISCRIMINATOR = f"{PatchGAN.__module__}.{PatchGAN.__qualname__}"
# What inference takes from a GAN's config: the generator and how its input is laid out
GENERATOR_HPARAMS = ("net", "image_size", "channels_last", "loss", "ssim_weight")


def read_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict:
    """Load a checkpoint file (or a safetensors export with its model card; a run dir: its best,
    else last, checkpoint) safely, check that it is one of ours, and bring one written by an earlier
    version up to date (aliases.py); one clear UserError otherwise."""
    path = checkpoint_file(path, key)
    checkpoint = (
        read_safetensors(path, key) if path.suffix == ".safetensors" else read_torch_file(path, key)
    )
    hparams = checkpoint.get(HPARAMS) if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not isinstance(hparams.get("net"), dict):
        raise UserError(
            f"{key}={path} is not a sketch2photo checkpoint (it carries no model config)."
        )
    return upgrade_checkpoint(checkpoint, f"{key}={path}")


def read_torch_file(path: Path, key: str) -> Any:
    try:
        return torch.load(
            path, map_location="cpu", weights_only=True, mmap=True
        )  # tensors read when used
    except Exception as error:
        unsafe = re.search(
            r"GLOBAL ([\w.]+)", str(error)
        )  # weights_only refused to import this: nothing ran
        if isinstance(error, pickle.UnpicklingError) and unsafe:
            raise UserError(
                f"{key}={path} may not be safe to open: it asks to unpickle {unsafe[1]}, not only weights and "
                "settings, so it was refused unread. Use checkpoints written by s2p-train, or a safetensors "
                "export (s2p-export format=safetensors)."
            ) from None
        # a truncated file, a zip error, a text file: the same thing to the user
        reason = (
            "not a PyTorch file, or damaged"
            if isinstance(error, pickle.UnpicklingError)
            else str(error).strip()
        )
        raise UserError(
            f"{key}={path} is not a readable checkpoint ({type(error).__name__}: {reason})."
        ) from None


def read_safetensors(path: Path, key: str) -> dict:
    """s2p-export format=safetensors: the network's weights, and <file>.json (its model card) beside
    them, read into the shape of a checkpoint."""
    card_path = path.with_name(path.name + ".json")
    if not card_path.is_file():
        raise UserError(
            f"{key}={path} needs its model card {card_path} beside it (s2p-export writes both)."
        )
    try:
        from safetensors.torch import load_file  # the optional `export` extra
    except ImportError:
        raise UserError(
            f"{key}={path}: reading safetensors needs the safetensors package: pip install -e .[export] (or sketch2photo[export])"
        ) from None
    if card_path.stat().st_size > MAX_CARD_BYTES:
        raise UserError(
            f"{key}={path}: its model card {card_path} is {card_path.stat().st_size} bytes, more "
            f"than the {MAX_CARD_BYTES} a card takes (s2p-export writes about 3,000); refused unread."
        )
    try:
        card = json.loads(card_path.read_text())
        weights = load_file(path)
        hparams = {
            "net": card["network"],
            "image_size": card["image_size"],
            "channels_last": card.get("channels_last", False),
        }
    except Exception as error:  # bad JSON, a missing key, a truncated tensor file
        raise UserError(
            f"{key}={path} with {card_path.name} is not a readable export ({type(error).__name__}: {error})."
        ) from None
    return {
        HPARAMS: hparams,
        DATA_HPARAMS: card.get("data") or {},
        "sketch2photo_version": card.get("sketch2photo_version"),
        "state_dict": {f"net.{name}": tensor for name, tensor in weights.items()},
    }


MODEL_PARTS = {
    "net": network_target,
    "optimizer": optimizer_target,
    "scheduler": scheduler_target,
    "discriminator": lambda target: target == DISCRIMINATOR,
}


def check_hparams_targets(hparams: dict, path: Path, key: str) -> None:
    """Refuse any `_target_` that is not a network of this package, an optimizer, a scheduler or
    (as `discriminator`) the PatchGAN."""
    check_targets(
        hparams,
        lambda place, target: place in MODEL_PARTS and MODEL_PARTS[place](target),
        f"{key}={path}",
        "a sketch2photo network, a torch.optim optimizer, a torch.optim.lr_scheduler scheduler "
        "or the PatchGAN discriminator",
        root=HPARAMS,
    )


def is_gan(hparams: dict) -> bool:
    """Whether a checkpoint's config is model=pix2pix's: it has a discriminator."""
    return "discriminator" in hparams


def check_network_matches(
    checkpoint: dict,
    wanted_net: dict,
    path: str | Path,
    key: str = "ckpt_path",
    wanted_gan: bool = False,
) -> None:
    """The checkpoint's network must be the one the config asks for (defaults filled in on both
    sides), and to continue training (not init_from) the same kind of model."""
    saved_net = checkpoint[HPARAMS]["net"]
    if key != "init_from" and is_gan(checkpoint[HPARAMS]) != wanted_gan:
        kinds = ("a regression model", "a pix2pix model")
        raise UserError(
            f"{key}={path} holds {kinds[is_gan(checkpoint[HPARAMS])]}, and this run trains "
            f"{kinds[wanted_gan]}; select the same model=..., or start from its generator's "
            f"weights with init_from={path}."
        )
    if network_defaults(saved_net) != network_defaults(wanted_net):
        raise UserError(
            f"{key}={path} holds a different model ({saved_net}) from this run's model.net ({wanted_net}). "
            f"Select the same model (e.g. model=unet with the same depth/width), or start without {key}."
        )


def network_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The network's state dict (for init_from): the module's `net.*` entries without the prefix."""
    return {
        name.removeprefix("net."): tensor
        for name, tensor in checkpoint["state_dict"].items()
        if name.startswith("net.")
    }


# What s2p-eval takes from a file's data settings. Not synthetic_pairs (a file must not make the
# command write a dataset where it chooses), nor workers and threads (this machine's business).
DATA_SETTINGS = (
    "data_dir",
    "image_size",
    "layout",
    "ab_order",
    "split",
    "val_fraction",
    "test_fraction",
    "folds",
    "fold",
    "split_seed",
    "on_bad_file",
    "batch_size",
)


def data_settings(checkpoint: dict, path: str | Path) -> dict:
    """The PairedSketchDataModule arguments the model was trained with, those of DATA_SETTINGS."""
    saved = checkpoint.get(DATA_HPARAMS) or {}
    if not isinstance(saved, dict) or not saved:
        raise UserError(
            f"ckpt_path={path} has no data settings; give them all on the command line, "
            "e.g. data.data_dir=<pairs> data.image_size=<the model's size> subset=all."
        )
    chosen = {name: saved[name] for name in DATA_SETTINGS if name in saved}
    if not all(isinstance(value, (str, int, float, bool, type(None))) for value in chosen.values()):
        raise UserError(f"ckpt_path={path}: its data settings are not plain values; refused.")
    if "image_size" in chosen:
        check_image_size(chosen["image_size"], f"ckpt_path={path}: data.image_size")
    return chosen


def check_image_size(size: Any, where: str) -> None:
    """A model's side read from a file, before anything of that size is allocated."""
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= MAX_IMAGE_SIZE:
        raise UserError(
            f"{where}={size!r} must be a whole number from 8 to {MAX_IMAGE_SIZE} (the model's side "
            "in pixels); refused before anything was allocated."
        )


def check_network_fits_weights(checkpoint: dict, path: str | Path) -> None:
    """The network the file's config builds must have exactly the file's weights: built first on
    the meta device (shapes, no memory), so that a config asking for gigabytes more than the file
    holds is refused before anything is allocated."""
    try:
        with torch.device("meta"):
            net = instantiate(checkpoint[HPARAMS]["net"])
    except Exception as error:  # a config the classes refuse
        cause = unwrap(error)
        raise UserError(
            f"ckpt_path={path}: the model config in it does not build a sketch2photo network "
            f"({type(cause).__name__}: {cause})."
        ) from None
    wanted = {f"net.{name}": tuple(value.shape) for name, value in net.state_dict().items()}
    held = {
        name: tuple(value.shape)
        for name, value in checkpoint["state_dict"].items()
        if name.startswith("net.") and isinstance(value, torch.Tensor)
    }
    if wanted != held:
        name = min(key for key in wanted.keys() | held.keys() if wanted.get(key) != held.get(key))
        raise UserError(
            f"ckpt_path={path}: its network config does not match its weights (at {name}, the "
            f"config builds {wanted.get(name, 'nothing')}, the file holds {held.get(name, 'nothing')}); "
            "refused before the network was built."
        )


def load_module(path: str | Path, checkpoint: dict | None = None) -> ColorizationModule:
    """The trained module, rebuilt from the config inside its checkpoint: no user config needed
    (a pix2pix checkpoint's generator alone). Pass `checkpoint` when read_checkpoint(path) has
    already been called."""
    checkpoint = checkpoint or read_checkpoint(path)
    hparams, state = checkpoint[HPARAMS], checkpoint["state_dict"]
    check_hparams_targets(hparams, Path(path), "ckpt_path")
    check_image_size(hparams.get("image_size", 128), f"ckpt_path={path}: image_size")
    check_network_fits_weights(checkpoint, path)
    if is_gan(hparams):  # the generator is the model; the discriminator served training only
        hparams = {name: hparams[name] for name in GENERATOR_HPARAMS if name in hparams}
        state = {"net." + name: tensor for name, tensor in network_weights(checkpoint).items()}
    try:
        module = ColorizationModule(**{**hparams, "compile": False})
        module.load_state_dict(state)
    except UserError:
        raise
    except Exception as error:  # a config the classes refuse, weights of another shape
        cause = unwrap(error)
        raise UserError(
            f"ckpt_path={path}: the model config and weights in it do not build a sketch2photo model "
            f"({type(cause).__name__}: {cause})."
        ) from None
    return module.eval()
