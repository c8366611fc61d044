"""The project's own checks of settings, on plain values: no torch here, so that cli.py runs them on
the composed config before a command loads torch and Lightning, and a bad value answers at once.
The classes call the same functions, for users who build them in Python."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sketch2photo.checkpoints.locate import checkpoint_file
from sketch2photo.commands.predict_files import list_inputs, output_paths
from sketch2photo.data.layouts import check_data_dir
from sketch2photo.errors import UserError
from sketch2photo.outputs import check_folder, check_writes
from sketch2photo.runs.run_dir import typed_overrides

LOSSES = ("mse", "l1", "l1+ssim")
GAN_LOSSES = ("vanilla", "lsgan", "hinge")
SPLITS = ("random", "none")
BAD_FILE_POLICIES = ("error", "skip")
CACHES = ("disk", "memory")
PACK_INFO = "pack.json"  # what s2p-pack writes last: a folder without it holds no finished pack
REMOTE_PREFIXES = ("s3://", "gs://", "r2://")
SUBSETS = ("test", "val", "train", "all")
BASELINES = ("mean", "white")
HINT_PLACEMENTS = (
    "random",
    "regions",
)  # hints/protocol.py's placements; here without importing torch

READS_DATA_DIR = "sketch2photo.data.datamodules.pairs.PairedSketchDataModule"  # data=sketch2photo

# The classes whose config lists every argument they take (tests/test_configs.py checks it): a key
# added to one with `+` is one it does not take
EVERY_ARGUMENT_IN_CONFIG = (
    "lightning.pytorch.Trainer",
    READS_DATA_DIR,
    "sketch2photo.module.ColorizationModule",
    "sketch2photo.gan.Pix2PixModule",
    "sketch2photo.nets.conditioning.ConditionedGenerator",
    "sketch2photo.nets.patchgan.PatchGAN",
)

# What each tool says when a required key (`???`) is missing: cli.py's precheck and the command's
# own body
USAGES = {
    "predict": "s2p-predict ckpt_path=<run dir, .ckpt or .safetensors> input=<sketch file or folder> output=<folder> "
    "[keep_size=false] [hints=<hint file or folder>]",
    "app": "s2p-app ckpt_path=<run dir, .ckpt or .safetensors> [data.data_dir=<pairs>] [host=127.0.0.1] [port=7860]",
    "export": "s2p-export ckpt_path=<run dir or .ckpt> format=onnx|torchscript|safetensors [output=<file>]",
    "compare": "s2p-compare dir=<sweep dir, run dir or outputs> [metric=val/loss] [out=<dir>]",
    "make_pairs": "s2p-make-pairs photos=<folder of colour images> out=<new folder> [size=256]",
    "pack": "s2p-pack data.data_dir=<pairs> out=<new folder or s3://bucket/prefix> [data.image_size=128]",
}


def check_epochs(max_epochs: Any) -> None:
    if max_epochs is not None and (
        not isinstance(max_epochs, int) or isinstance(max_epochs, bool) or max_epochs <= 0
    ):
        raise UserError(
            f"trainer.max_epochs={max_epochs!r} must be a positive integer "
            "(the reference experiment, `experiment=seed`, uses 640)."
        )


def check_model(lr: Any, loss: Any) -> None:
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0:
        raise UserError(
            f"model.lr={lr!r} must be a positive number (the reference experiment, `experiment=seed`, uses 1e-3)."
        )
    if loss not in LOSSES:
        raise UserError(f"model.loss={loss!r} must be one of {', '.join(LOSSES)}.")


def check_gan(
    d_lr: Any = None,
    betas: Any = (0.5, 0.999),
    gan_loss: Any = "vanilla",
    loss_weight: Any = 100.0,
    init_gain: Any = 0.02,
    decay_start: Any = 0.5,
    **_: Any,
) -> None:
    """model=pix2pix's own keys."""

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if gan_loss not in GAN_LOSSES:
        raise UserError(f"model.gan_loss={gan_loss!r} must be one of {', '.join(GAN_LOSSES)}.")
    if d_lr is not None and (not number(d_lr) or d_lr <= 0):
        raise UserError(
            f"model.d_lr={d_lr!r} must be a positive number, or null for model.lr's value."
        )
    if (
        not isinstance(betas, (list, tuple))
        or len(betas) != 2
        or not all(number(beta) and 0 <= beta < 1 for beta in betas)
    ):
        raise UserError(
            f"model.betas={betas!r} must be two numbers in [0, 1), Adam's (pix2pix: [0.5, 0.999])."
        )
    if not number(loss_weight) or loss_weight < 0:
        raise UserError(
            f"model.loss_weight={loss_weight!r} must be a number >= 0 (pix2pix's lambda: 100)."
        )
    if init_gain is not None and (not number(init_gain) or init_gain <= 0):
        raise UserError(
            f"model.init_gain={init_gain!r} must be a positive number (pix2pix: 0.02), or null "
            "for PyTorch's default init."
        )
    if not number(decay_start) or not 0 <= decay_start <= 1:
        raise UserError(
            f"model.decay_start={decay_start!r} must be in [0, 1]: the fraction of the epochs "
            "after which the rates fall linearly to 0 (pix2pix: 0.5; 1: constant)."
        )


def check_data(
    image_size: Any,
    batch_size: Any,
    on_bad_file: Any,
    num_workers: Any,
    cache: Any = "memory",
    cache_dir: Any = None,
) -> None:
    if not isinstance(image_size, int) or image_size < 8:
        raise UserError(
            f"data.image_size={image_size!r} must be an integer of at least 8 "
            "(the reference experiment, `experiment=seed`, uses 128)."
        )
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
        raise UserError(
            f"data.batch_size={batch_size!r} must be a positive integer, or null for the full batch."
        )
    if on_bad_file not in BAD_FILE_POLICIES:
        raise UserError(f"data.on_bad_file={on_bad_file!r} must be 'error' or 'skip'.")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise UserError(f"data.num_workers={num_workers} must be >= 0.")
    if cache not in CACHES:
        raise UserError(
            f"data.cache={cache!r} must be 'disk' (decode once into paths.cache_dir, shared by later runs) "
            "or 'memory' (decode into this run's RAM)."
        )
    if cache == "disk" and not cache_dir:
        raise UserError(
            "data.cache=disk needs data.cache_dir (default: paths.cache_dir); set it, or data.cache=memory."
        )


def check_split(split: Any, val_fraction: Any, test_fraction: Any, folds: Any, fold: Any) -> None:
    if split not in SPLITS:
        raise UserError(
            f"data.split={split!r} must be 'random' (val/test fractions or folds) or 'none' (train on all)."
        )
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise UserError(f"data.{key}={value!r} must be in [0, 1).")
    if val_fraction + test_fraction >= 1.0:
        raise UserError(
            f"data.val_fraction={val_fraction} + data.test_fraction={test_fraction} >= 1 leaves no training data."
        )
    if folds is not None:
        if not isinstance(folds, int) or folds < 2:
            raise UserError(
                f"data.folds={folds!r} must be an integer of at least 2, or null for no cross-validation."
            )
        if not isinstance(fold, int) or not 0 <= fold < folds:
            raise UserError(
                f"data.fold={fold!r} is out of range: with data.folds={folds} use 0..{folds - 1}."
            )


def check_augment(
    min_scale: float = 0.8,
    degrees: float = 0.0,
    translate: float = 0.0,
    p: float = 1.0,
    stop_after: float = 1.0,
    **_: Any,
) -> None:
    if not 0.0 <= stop_after <= 1.0:
        raise UserError(
            f"data.augment.stop_after={stop_after} must be a fraction of the epochs, in [0, 1]."
        )
    if not 0.0 < min_scale <= 1.0:
        raise UserError(
            f"data.augment.min_scale={min_scale} must be in (0, 1]; 1 turns crop jitter off."
        )
    for key, value, high in (
        ("translate", translate, 1.0),
        ("p", p, 1.0),
        ("degrees", degrees, 180.0),
    ):
        if not 0.0 <= value <= high:
            raise UserError(f"data.augment.{key}={value} must be in [0, {high:g}]; 0 turns it off.")


def check_litdata() -> None:
    if importlib.util.find_spec("litdata") is None:
        raise UserError(
            'data=streaming and s2p-pack need LitData, an optional extra: pip install "sketch2photo[streaming]"'
        )


def check_optuna_sweeper(arguments: list[str]) -> None:
    """An Optuna search needs this package's sweeper alone: the old hydra-optuna-sweeper (which
    pins optuna<3) registers configs of the same names, and Hydra then refuses ours."""
    if any("optuna" in argument for argument in arguments) and importlib.util.find_spec(
        "hydra_plugins.hydra_optuna_sweeper"
    ):
        raise UserError(
            "hydra-optuna-sweeper is installed: it needs optuna<3 and its configs clash with "
            "sketch2photo's own Optuna sweeper. Remove it: pip uninstall hydra-optuna-sweeper"
        )


def no_pack(input_dir: Any, reason: str) -> UserError:
    return UserError(
        f"data.input_dir={input_dir}: no packed dataset can be read there ({reason}). Pack one first with "
        f"`s2p-pack data.data_dir=<pairs> out={input_dir}`, or fix the path or the storage credentials."
    )


def check_pack_dir(input_dir: Any) -> None:
    """data=streaming from a local folder: it must hold a finished pack. (A remote one is checked
    when read.)"""
    if (
        not str(input_dir).startswith(REMOTE_PREFIXES)
        and not (Path(str(input_dir)) / PACK_INFO).is_file()
    ):
        raise no_pack(input_dir, f"{Path(str(input_dir)) / PACK_INFO} does not exist")


def check_training_config(cfg: DictConfig) -> None:
    """s2p-train's settings, before anything heavy is imported. A key the config lacks is skipped:
    the class that takes it checks it later."""
    values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    trainer, model, data = (
        values.get("trainer") or {},
        values.get("model") or {},
        values.get("data") or {},
    )
    check_epochs(trainer.get("max_epochs"))
    if "lr" in model:
        check_model(model["lr"], model.get("loss", "mse"))
    if "gan_loss" in model:
        check_gan(**model)
        for key, plain, allowed in (
            ("gradient_clip_val", "null", (None, 0)),
            ("accumulate_grad_batches", 1, (None, 1)),
        ):
            if trainer.get(key) not in allowed:
                raise UserError(
                    f"trainer.{key}={trainer[key]} does not apply to model=pix2pix, which steps its "
                    f"two optimizers itself (Lightning's manual optimization); leave it at {plain}."
                )
    if {"image_size", "split"} <= data.keys():
        check_data(
            data["image_size"],
            data.get("batch_size"),
            data.get("on_bad_file", "error"),
            data.get("num_workers", 0),
            data.get("cache", "memory"),
            data.get("cache_dir"),
        )
        check_split(
            data["split"],
            data.get("val_fraction", 0.1),
            data.get("test_fraction", 0.1),
            data.get("folds"),
            data.get("fold", 0),
        )
        augment = data.get("augment") or {}
        if augment.get("enabled"):
            check_augment(**augment)
    if "input_dir" in data:
        check_litdata()
        check_pack_dir(data["input_dir"])


def check_eval_config(cfg: DictConfig) -> None:
    """s2p-eval's own keys."""
    if cfg.subset not in SUBSETS:
        raise UserError(f"subset={cfg.subset!r} must be one of {', '.join(SUBSETS)}.")
    if bool(cfg.ckpt_path) == bool(cfg.baseline):
        raise UserError(
            "give exactly one of ckpt_path=<run dir, .ckpt or .safetensors> or baseline=mean|white."
        )
    if cfg.baseline and cfg.baseline not in BASELINES:
        raise UserError(f"baseline={cfg.baseline!r} must be one of {', '.join(BASELINES)}.")
    counts = cfg.hints if OmegaConf.is_list(cfg.hints) else [] if cfg.hints is None else [cfg.hints]
    if any(
        not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 255
        for count in counts
    ):
        raise UserError(
            f"hints={cfg.hints}: give whole numbers of hints from 0 to 255, e.g. hints=0,1,3,10,30."
        )
    if counts and cfg.baseline:
        raise UserError("hints= scores a model that takes colour hints; a baseline takes none.")
    placements = (
        list(cfg.hint_placements)
        if OmegaConf.is_list(cfg.hint_placements)
        else [cfg.hint_placements]
    )
    if not placements or any(placement not in HINT_PLACEMENTS for placement in placements):
        raise UserError(
            f"hint_placements={cfg.hint_placements}: each must be one of {', '.join(HINT_PLACEMENTS)}."
        )
    if cfg.baseline == "mean" and cfg.subset == "all":
        raise UserError(
            "baseline=mean subset=all would score the mean of all pairs on those same pairs; "
            "use subset=test or subset=val, whose mean comes from the training pairs."
        )


def use_checkpoint_files(cfg: DictConfig, keys: tuple[str, ...] = ("ckpt_path",)) -> None:
    """Each of `keys` that is set names a checkpoint file from here on: a run dir's best, else last
    (locate.py); one clear line when there is none."""
    for key in keys:
        if cfg.get(key):
            cfg[key] = str(checkpoint_file(cfg[key], key))


def check_training_paths(cfg: DictConfig) -> None:
    """s2p-train's checkpoints and dataset folder exist (not with resume=: its run's are read)."""
    if cfg.get("resume"):
        return
    use_checkpoint_files(cfg, ("ckpt_path", "init_from"))
    data = cfg.get("data") or {}
    if data.get("_target_") == READS_DATA_DIR and not data.get("synthetic_pairs"):
        check_data_dir(data.data_dir)  # data=synthetic and data=openmoji make theirs


def check_eval_paths(cfg: DictConfig) -> None:
    """s2p-eval's checkpoint, and its dataset folder where it is not the checkpoint's own."""
    use_checkpoint_files(cfg)
    typed = {override.key_or_group for override in typed_overrides()}
    if cfg.baseline or "data.data_dir" in typed:
        check_data_dir(cfg.data.data_dir)


def check_predict_paths(cfg: DictConfig) -> None:
    """s2p-predict's checkpoint, its sketches, and an output folder that overwrites none of them."""
    use_checkpoint_files(cfg)
    paths = list_inputs(Path(str(cfg.input)))
    output = Path(str(cfg.output))
    check_folder(output)
    check_writes(
        output_paths(paths, output, cfg.keep_extension),
        {**{path: "the input" for path in paths}, Path(cfg.ckpt_path): "ckpt_path"},
        output,
    )


def check_added_keys(cfg: DictConfig) -> None:
    """A key added with `+` (Hydra's advice for a key the config lacks) to a part built from a class
    that takes no such argument: one line naming it, instead of the class's TypeError. Only `+`:
    `++` also sets keys the config has, and after composition the two look alike."""
    for override in typed_overrides():
        if not override.is_add():
            continue
        parent, _, name = override.key_or_group.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None) if parent else None
        target = node.get("_target_") if isinstance(node, DictConfig) else None
        if target not in EVERY_ARGUMENT_IN_CONFIG:
            continue
        known = [key for key in node.keys() if key not in (name, "_target_")]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        value = override.input_line.split("=", 1)[1] if "=" in override.input_line else ""
        instead = f"did you mean {parent}.{close[0]}={value}?" if close else "its keys: --cfg job"
        raise UserError(
            f"{override.input_line}: {parent} ({target}) takes no argument {name!r}; {instead}"
        )
