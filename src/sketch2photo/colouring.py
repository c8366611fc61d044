"""From a sketch and optional colour hints to a coloured picture: the steps s2p-predict runs per
file and what an app calls with the images it holds.

    picture = colour(load_module("best.ckpt"), Image.open("cat.png"), hints=hint_layer)

Hints are a hint file (PNG with alpha, or JSON), an RGBA image with the sketch's aspect ratio (a
drawing layer), a list of {"x", "y", "color", "radius"} in the sketch's pixels, a ready (4, S, S)
hint map, or None (hints/files.py).
"""

from __future__ import annotations

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from sketch2photo.data.images import (
    RESAMPLE,
    flatten_modes,
    sketch_tensor,
    sketch_to_input,
    to_uint8,
)
from sketch2photo.errors import UserError
from sketch2photo.hints import with_hints
from sketch2photo.hints.files import HintSource, prepare_hints


def prepare_sketch(image: Image.Image, size: int) -> Tensor:
    """A sketch image of any mode and size -> (3, size, size) float in [-1, 1], as in training
    (transparency over white, grey, bicubic resize)."""
    return sketch_to_input(sketch_tensor(flatten_modes(image), size)[None])[0]


def require_hint_model(module, given: str) -> None:
    """UserError when hints are given (`given` names them) to a model trained without them."""
    if not module.takes_hints:
        raise UserError(
            f"{given}: this checkpoint's model takes no hints (it was trained without "
            "model.net.hint_input=true). Drop the hints, or use a model trained with them."
        )


def to_picture(output: Tensor, keep_size: tuple[int, int] | None = None) -> Image.Image:
    """(3, H, W) float in [-1, 1] -> RGB image, resized (bicubic) to keep_size=(width, height) if
    given."""
    picture = Image.fromarray(to_uint8(output).permute(1, 2, 0).cpu().numpy())
    return picture.resize(keep_size, RESAMPLE) if keep_size else picture


def preview(sketch: Tensor, hints: Tensor, output: Tensor) -> Image.Image:
    """The sketch with its hints painted on it | the output, side by side:
    (3, S, S), (4, S, S), (3, S, S)."""
    painted = with_hints(sketch[None], hints[None])[0]
    return to_picture(make_grid(torch.stack([painted, output]), nrow=2, padding=2, pad_value=1.0))


def colour(
    module, sketch: Image.Image, hints: HintSource = None, keep_size: bool = True
) -> Image.Image:
    """Colour one sketch with a loaded module (checkpoints/read.py's load_module), at the sketch's
    own size (the model's output resized, bicubic) or, with keep_size=False, at the model's."""
    if hints is not None:
        require_hint_model(module, "hints")
    size = module.hparams.image_size
    hint_map = prepare_hints(hints, sketch.size, size)
    with torch.inference_mode():
        sketch_input = prepare_sketch(sketch, size)[None].to(module.device)
        output = module(
            sketch_input, None if hint_map is None else hint_map[None].to(module.device)
        )[0]
    return to_picture(output, sketch.size if keep_size else None)
