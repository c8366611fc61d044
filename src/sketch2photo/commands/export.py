"""s2p-export: write a trained network as a deployable file, with its preprocessing beside it.

    s2p-export ckpt_path=<run dir or file.ckpt> format=onnx|torchscript|safetensors [output=<file>]

The exported network takes float32 (batch, 3, size, size) in [-1, 1] with any batch size and
returns the same shape; a model trained with colour hints (model.net.hint_input=true) takes the
hint map as a second input `hints`, float32 (batch, 4, size, size): RGB in [-1, 1] (0 where there is
no hint), then a mask, 1 where there is one. `<output>.json` says how to get there from an image
file and back. The export is checked against the Lightning model, on a probe with hints when the
model takes them, before the command reports success.

safetensors is the format to hand to others: the network's weights as tensors only, and the
model card JSON that s2p-predict and s2p-eval rebuild the network from (its `network` must name a
sketch2photo network). Neither file can run code when opened.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig

from sketch2photo import __version__
from sketch2photo.checkpoints.locate import checkpoint_file
from sketch2photo.checkpoints.read import DATA_HPARAMS, load_module, read_checkpoint
from sketch2photo.checks import USAGES
from sketch2photo.data.corpora.synthetic import generate_pairs
from sketch2photo.data.images import sketch_to_input, to_model_range
from sketch2photo.errors import UserError, require_keys
from sketch2photo.hints import HINT_CHANNELS
from sketch2photo.hints.simulate import HintSampler
from sketch2photo.outputs import check_writes

log = logging.getLogger("sketch2photo.export")

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
NEEDS = {"onnx": ("onnx", "onnxscript", "onnxruntime"), "safetensors": ("safetensors",)}
INPUT_NAME, HINTS_NAME, OUTPUT_NAME = "sketch", "hints", "photo"
TOLERANCE = 1e-4  # max abs difference from the Lightning model, on the [-1, 1] scale


def export(ckpt_path: str | Path, format: str, output: str | Path | None = None) -> Path:
    """Export the checkpoint's network; return the model file (its sidecar is <file>.json)."""
    if format not in SUFFIXES:
        raise UserError(f"format={format!r} must be one of {', '.join(SUFFIXES)}.")
    ckpt_path = checkpoint_file(ckpt_path)  # a run dir too: a sweep's jobs skip cli.py's precheck
    missing = [name for name in NEEDS.get(format, ()) if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"format={format} needs {', '.join(missing)}: pip install -e .[export]")
    path = Path(output) if output else Path(ckpt_path).with_suffix(SUFFIXES[format])
    sidecar = path.with_name(path.name + ".json")
    ckpt = Path(ckpt_path)
    check_writes(
        [path, sidecar],
        {ckpt: "ckpt_path", ckpt.with_name(ckpt.name + ".json"): "the model card"},
        path.parent,
        given=path,
    )
    checkpoint = read_checkpoint(ckpt_path)
    module = load_module(ckpt_path, checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = module.hparams.image_size
    example = (
        hinted_probe(2, size, seed=1)
        if module.takes_hints
        else (torch.rand(2, 3, size, size) * 2 - 1,)
    )
    if format == "onnx":
        write_onnx(module.net, example, path, optimize=not module.takes_hints)
    elif format == "torchscript":
        write_torchscript(module.net, example, path)
    else:
        from safetensors.torch import save_file  # the optional `export` extra

        save_file(
            {name: tensor.contiguous() for name, tensor in module.net.state_dict().items()},
            str(path),
        )
    card = model_card(module, path, format, ckpt_path, checkpoint.get(DATA_HPARAMS) or {})
    sidecar.write_text(json.dumps(card, indent=2) + "\n")

    # another batch size than the example: the batch axis is dynamic
    probe = hinted_probe(3, size) if module.takes_hints else (sketch_like(3, size),)
    with torch.inference_mode():
        expected = module(*probe)
    difference = (run_exported(path, format, *probe) - expected).abs().max().item()
    if difference > TOLERANCE:
        raise RuntimeError(
            f"{path} differs from the checkpoint's model by {difference:.2e} (max abs); please report this."
        )
    log.info(
        "wrote %s and %s (max abs difference from the checkpoint's model: %.1e)",
        path,
        sidecar,
        difference,
    )
    return path


def sketch_like(batch: int, size: int) -> torch.Tensor:
    """Random input like a sketch in [-1, 1]: mostly white paper with marks, so that a U-Net's
    background options have a background to find."""
    return torch.where(
        torch.rand(batch, 1, size, size) < 0.8, 1.0, torch.rand(batch, 3, size, size) * 2 - 1
    )


def hinted_probe(batch: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(sketches, hint map): synthetic drawings, whose outlines enclose regions for the hints to
    spread over, and three patches inside the figure of each in its photo's colours. Eager
    spreading runs until it stops and exported graphs a fixed H + W steps: on shapes like these
    both reach every pixel, so the parity check covers the spreading too."""
    sketches, photos = generate_pairs(batch, size, seed=seed, colours="random")
    sketches, photos = sketch_to_input(sketches).contiguous(), to_model_range(photos)
    sampler = HintSampler(min_size=2, max_size=4)
    return sketches, sampler.draw(photos, sketches, torch.Generator().manual_seed(seed), count=3)


def write_onnx(
    net: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path, optimize: bool = True
) -> None:
    """The torch.export-based exporter (the default since torch 2.9), batch axis dynamic, one file.

    optimize=False for hint models: their H + W unrolled spreading steps take onnxscript's optimiser
    minutes at 32 px and, growing faster than the graph, most of an hour at 128 px."""
    for name in ("onnxscript", "onnx_ir"):  # their INFO lines are the exporter's internal passes
        logging.getLogger(name).setLevel(logging.WARNING)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():  # sketch and hints share the batch axis on purpose
        warnings.filterwarnings(
            "ignore", message=r"# The axis name: batch will not be used", category=UserWarning
        )
        torch.onnx.export(
            net,
            example,
            path,
            input_names=list(input_names(len(example))),
            output_names=[OUTPUT_NAME],
            dynamic_shapes=tuple({0: batch} for _ in example),
            dynamo=True,
            external_data=False,
            verbose=False,
            optimize=optimize,
        )


def write_torchscript(net: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    """Traced: the networks' only data-dependent control flow, the flood fills' early stop, takes a
    fixed H + W steps when traced (regions.py, hints/spread.py)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.", category=FutureWarning
        )  # deprecated upstream, still supported
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        torch.jit.trace(net, example).save(str(path))


def input_names(count: int) -> tuple[str, ...]:
    return (INPUT_NAME, HINTS_NAME)[:count]


def run_exported(path: Path, format: str, *inputs: torch.Tensor) -> torch.Tensor:
    """Run an exported file on (sketch,) or (sketch, hints) the way a deployment would: onnxruntime,
    plain torch.jit.load, or the network rebuilt from the safetensors file and its card, as
    s2p-predict does."""
    if format == "safetensors":
        with torch.inference_mode():
            return load_module(path)(*inputs)
    if format == "onnx":
        import onnxruntime  # the optional `export` extra

        options = onnxruntime.SessionOptions()
        options.log_severity_level = (
            3  # errors only: its constant-folding notes on an unoptimised graph are not ours to fix
        )
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        feeds = {
            name: tensor.numpy()
            for name, tensor in zip(input_names(len(inputs)), inputs, strict=True)
        }
        return torch.from_numpy(session.run([OUTPUT_NAME], feeds)[0])
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")(*inputs)


def model_card(module, path: Path, format: str, ckpt_path: str | Path, data: dict) -> dict:
    """The sidecar JSON: what goes in and out, and how to get there from an image file. `network`,
    `image_size`, `channels_last` and `data` (the training data settings, for s2p-eval) are what
    read_checkpoint takes from it with a safetensors file."""
    size = module.hparams.image_size
    shape = ["batch", 3, size, size]
    card = {
        "model": path.name,
        "format": format,
        "checkpoint": str(ckpt_path),
        "sketch2photo_version": __version__,
        "network": module.hparams.net,
        "image_size": size,
        "channels_last": module.hparams.channels_last,
        "data": data,
        "takes_hints": module.takes_hints,
        "input": {"name": INPUT_NAME, "shape": shape, "dtype": "float32", "range": [-1.0, 1.0]},
        "output": {"name": OUTPUT_NAME, "shape": shape, "dtype": "float32", "range": [-1.0, 1.0]},
        "preprocessing": [
            "decode the sketch; composite any transparency on white; 16-bit images are scaled to 8-bit",
            "convert to grey: Pillow mode 'L' (L = 0.299 R + 0.587 G + 0.114 B)",
            f"resize to {size}x{size} with bicubic filtering (Pillow Image.Resampling.BICUBIC)",
            "x / 127.5 - 1 (uint8 [0, 255] to float [-1, 1])",
            "copy the grey channel to 3 channels; layout NCHW",
        ],
        "postprocessing": [
            "(y + 1) * 127.5, round, clip to [0, 255], uint8; channels are R, G, B",
            "optionally resize back to the sketch's own size, bicubic",
        ],
    }
    if module.takes_hints and format != "safetensors":
        card["hints_input"] = {
            "name": HINTS_NAME,
            "shape": ["batch", HINT_CHANNELS, size, size],
            "dtype": "float32",
            "channels": [
                "R in [-1, 1], 0 where there is no hint",
                "G, likewise",
                "B, likewise",
                "mask: 1 where there is a hint, else 0",
            ],
            "no_hints": "all zeros",
            "preprocessing": [
                "a hint layer with the sketch's aspect ratio: pixels with alpha > 0 are hints in their colour",
                f"onto the {size}x{size} grid: a cell is a hint where any pixel in it is one (mask 1), "
                "in their alpha-weighted mean colour; x / 127.5 - 1",
            ],
        }
    return card


def main(cfg: DictConfig) -> None:
    require_keys(cfg, USAGES["export"])
    export(cfg.ckpt_path, cfg.format, cfg.output)
