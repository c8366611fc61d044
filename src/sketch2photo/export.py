"""s2p-export: write a trained network as a deployable file, with its preprocessing beside it.

    s2p-export ckpt_path=<file.ckpt> format=onnx|torchscript|safetensors [output=<file>]

The exported network takes float32 (batch, 3, size, size) in [-1, 1] with any batch size and
returns the same shape. `<output>.json` says how to get there from an image file and back. The
export is checked against the Lightning model before the command reports success.

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

from sketch2photo import __version__, checkpoints
from sketch2photo.cli import USAGES, command
from sketch2photo.errors import UserError, require_keys

log = logging.getLogger("sketch2photo.export")

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
NEEDS = {"onnx": ("onnx", "onnxscript", "onnxruntime"), "safetensors": ("safetensors",)}
INPUT_NAME, OUTPUT_NAME = "sketch", "photo"
TOLERANCE = 1e-4  # max abs difference from the Lightning model, on the [-1, 1] scale


def export(ckpt_path: str | Path, format: str, output: str | Path | None = None) -> Path:
    """Export the checkpoint's network; return the model file (its sidecar is <file>.json)."""
    if format not in SUFFIXES:
        raise UserError(f"format={format!r} must be one of {', '.join(SUFFIXES)}.")
    missing = [name for name in NEEDS.get(format, ()) if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"format={format} needs {', '.join(missing)}: pip install -e .[export]")
    checkpoint = checkpoints.read(ckpt_path)
    module = checkpoints.load_module(ckpt_path, checkpoint)
    path = Path(output) if output else Path(ckpt_path).with_suffix(SUFFIXES[format])
    path.parent.mkdir(parents=True, exist_ok=True)
    size = module.hparams.image_size
    example = torch.rand(2, 3, size, size) * 2 - 1
    if format == "onnx":
        write_onnx(module.net, example, path)
    elif format == "torchscript":
        write_torchscript(module.net, example, path)
    else:
        from safetensors.torch import save_file  # the optional `export` extra

        save_file({name: tensor.contiguous() for name, tensor in module.net.state_dict().items()}, str(path))
    sidecar = path.with_name(path.name + ".json")
    card = model_card(module, path, format, ckpt_path, checkpoint.get(checkpoints.DATA_HPARAMS) or {})
    sidecar.write_text(json.dumps(card, indent=2) + "\n")

    probe = sketch_like(3, size)  # another batch size than the example: the batch axis is dynamic
    with torch.inference_mode():
        expected = module(probe)
    difference = (run_exported(path, format, probe) - expected).abs().max().item()
    if difference > TOLERANCE:
        raise RuntimeError(f"{path} differs from the checkpoint's model by {difference:.2e} (max abs); please report this.")
    log.info("wrote %s and %s (max abs difference from the checkpoint's model: %.1e)", path, sidecar, difference)
    return path


def sketch_like(batch: int, size: int) -> torch.Tensor:
    """Random input like a sketch in [-1, 1]: mostly white paper with marks, so that a U-Net's
    background options have a background to find."""
    return torch.where(torch.rand(batch, 1, size, size) < 0.8, 1.0, torch.rand(batch, 3, size, size) * 2 - 1)


def write_onnx(net: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """The torch.export-based exporter (the default since torch 2.9), batch axis dynamic, one file."""
    for name in ("onnxscript", "onnx_ir"):  # their INFO lines are the exporter's internal passes
        logging.getLogger(name).setLevel(logging.WARNING)
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        net, (example,), path, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False,
    )


def write_torchscript(net: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """Traced: the networks are plain feed-forward, with no data-dependent control flow."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)  # deprecated upstream, still supported
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        torch.jit.trace(net, example).save(str(path))


def run_exported(path: Path, format: str, sketch: torch.Tensor) -> torch.Tensor:
    """Run an exported file the way a deployment would: onnxruntime, plain torch.jit.load, or
    the network rebuilt from the safetensors file and its card, as s2p-predict does."""
    if format == "safetensors":
        with torch.inference_mode():
            return checkpoints.load_module(path)(sketch)
    if format == "onnx":
        import onnxruntime  # the optional `export` extra

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: sketch.numpy()})[0])
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")(sketch)


def model_card(module, path: Path, format: str, ckpt_path: str | Path, data: dict) -> dict:
    """The sidecar JSON: what goes in and out, and how to get there from an image file. `network`,
    `image_size`, `channels_last` and `data` (the training data settings, for s2p-eval) are what
    checkpoints.read takes from it with a safetensors file."""
    size = module.hparams.image_size
    shape = ["batch", 3, size, size]
    return {
        "model": path.name,
        "format": format,
        "checkpoint": str(ckpt_path),
        "sketch2photo_version": __version__,
        "network": module.hparams.net,
        "image_size": size,
        "channels_last": module.hparams.channels_last,
        "data": data,
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


def main(cfg: DictConfig) -> None:
    require_keys(cfg, USAGES["export"])
    export(cfg.ckpt_path, cfg.format, cfg.output)


if __name__ == "__main__":
    command("export", main)()
