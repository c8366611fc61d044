"""From a sketch and optional colour hints to a coloured picture: the steps s2p-predict runs per
file and what an app calls with the images it holds.

    picture = colour(checkpoints.load_module("best.ckpt"), Image.open("cat.png"), hints=hint_layer)

Hints are a hint file (PNG with alpha, or JSON: data/hints.py), an RGBA image with the sketch's
aspect ratio (a drawing layer), a list of {"x", "y", "color", "radius"} in the sketch's pixels, a
ready (4, S, S) hint map, or None.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from sketch2photo.data.hints import hints_from_image, hints_from_points, read_hint_file, with_hints
from sketch2photo.data.images import RESAMPLE, flatten_modes, sketch_tensor, sketch_to_input, to_uint8
from sketch2photo.errors import UserError
from sketch2photo.nets.hint_fill import HINT_CHANNELS

HintSource = Path | str | Image.Image | list | Tensor | None


def prepare_sketch(image: Image.Image, size: int) -> Tensor:
    """A sketch image of any mode and size -> (3, size, size) float in [-1, 1], as in training
    (transparency over white, grey, bicubic resize)."""
    return sketch_to_input(sketch_tensor(flatten_modes(image), size)[None])[0]


def prepare_hints(source: HintSource, sketch_size: tuple[int, int], size: int,
                  sketch_name: str | None = None) -> Tensor | None:
    """Hints in any of the forms above -> (4, size, size) hint map, or None for no hints.
    sketch_size is the sketch's own (width, height), which the hints' coordinates refer to."""
    if source is None:
        return None
    if isinstance(source, Tensor):
        if source.shape != (HINT_CHANNELS, size, size):
            raise UserError(f"a hint map must be ({HINT_CHANNELS}, {size}, {size}) at the model's size, "
                            f"not {tuple(source.shape)}.")
        return source.float()
    if isinstance(source, Image.Image):
        return hints_from_image(source, sketch_size, size, sketch_name=sketch_name)
    if isinstance(source, list):
        return hints_from_points(source, sketch_size, size)
    if isinstance(source, (str, Path)):
        return read_hint_file(Path(source), sketch_size, size, sketch_name)
    raise TypeError(f"hints must be a path, a PIL image, a list of dots, a tensor or None, not {type(source).__name__}")


def empty_hints(size: int) -> Tensor:
    """(4, size, size) zeros: no hint anywhere (mask 0), for a sketch without hints in a batch with them."""
    return torch.zeros(HINT_CHANNELS, size, size)


def require_hint_model(module, given: str) -> None:
    """UserError when hints are given (`given` names them) to a model trained without them."""
    if not module.takes_hints:
        raise UserError(f"{given}: this checkpoint's model takes no hints (it was trained without "
                        "model.net.hint_input=true). Drop the hints, or use a model trained with them.")


def to_picture(output: Tensor, keep_size: tuple[int, int] | None = None) -> Image.Image:
    """(3, H, W) float in [-1, 1] -> RGB image, resized (bicubic) to keep_size=(width, height) if given."""
    picture = Image.fromarray(to_uint8(output).permute(1, 2, 0).cpu().numpy())
    return picture.resize(keep_size, RESAMPLE) if keep_size else picture


def preview(sketch: Tensor, hints: Tensor, output: Tensor) -> Image.Image:
    """The sketch with its hints painted on it | the output, side by side: (3, S, S), (4, S, S), (3, S, S)."""
    painted = with_hints(sketch[None], hints[None])[0]
    return to_picture(make_grid(torch.stack([painted, output]), nrow=2, padding=2, pad_value=1.0))


def colour(module, sketch: Image.Image, hints: HintSource = None, keep_size: bool = False) -> Image.Image:
    """Colour one sketch with a loaded module (checkpoints.load_module), at the model's size or,
    with keep_size, at the sketch's own."""
    if hints is not None:
        require_hint_model(module, "hints")
    size = module.hparams.image_size
    hint_map = prepare_hints(hints, sketch.size, size)
    with torch.inference_mode():
        sketch_input = prepare_sketch(sketch, size)[None].to(module.device)
        output = module(sketch_input, None if hint_map is None else hint_map[None].to(module.device))[0]
    return to_picture(output, sketch.size if keep_size else None)
