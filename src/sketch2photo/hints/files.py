"""Users' colour hints: a hint file (PNG or JSON), a drawing layer, a list of dots, as one hint map.

A PNG's pixels with alpha > 0 are hints in their colour, at any size with the sketch's aspect ratio
(a layer painted over the sketch; one that is nearly all hints is a picture, and is refused). JSON
is [{"x": .., "y": .., "color": "#rrggbb", "radius": ..}] in the sketch's pixel coordinates. Either
becomes a (4, S, S) hint map at the model's size S.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageColor, ImageDraw
from torch import Tensor

from sketch2photo.data.images import BadImageError, bands, read_image
from sketch2photo.errors import UserError
from sketch2photo.hints import HINT_CHANNELS

HINT_SUFFIXES = (".png", ".json")
HintSource = Path | str | Image.Image | list | Tensor | None


HINT_LIST_FORMAT = '[{"x": .., "y": .., "color": "#rrggbb", "radius": ..}] in the sketch\'s pixels'
MAX_DOTS = 1000  # each dot is drawn at the sketch's size: a list of millions would take hours
MAX_JSON_BYTES = 1_000_000  # 1000 dots take under 100 KB
# A hint layer with more of its pixels hints than this is refused: a flattened picture or a layer
# painted on white, not hints. Lines are >= 3.7% of the pixels of every sketch measured (the 20 real
# ones, 200 OpenMoji test glyphs), so flat colours in every region, lines left clear, stay below it.
MAX_HINT_SHARE = 0.99


def read_hint_file(
    path: Path, sketch_size: tuple[int, int], image_size: int, sketch_path: Path | None = None
) -> Tensor:
    """A user's hint PNG or JSON -> (4, image_size, image_size) hint map for a sketch of
    `sketch_size` (width, height) pixels. UserError names the file when it cannot be used."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            if path.stat().st_size > MAX_JSON_BYTES:
                raise ValueError(f"{path.stat().st_size} bytes, more than {MAX_JSON_BYTES}")
            points = json.loads(path.read_text())
        except (
            OSError,
            ValueError,
            RecursionError,
        ) as error:  # RecursionError: JSON nested thousands deep
            raise UserError(
                f"{path}: not readable JSON ({error}). Expected {HINT_LIST_FORMAT}."
            ) from None
        return hints_from_points(points, sketch_size, image_size, source=str(path))
    try:
        image = read_image(path, flatten=False)
    except BadImageError as error:
        raise UserError(
            f"{path}: not a readable hint image ({error.reason}). Give a PNG with transparency, or JSON."
        ) from None
    return hints_from_image(
        image,
        sketch_size,
        image_size,
        source=str(path),
        sketch_name=None if sketch_path is None else str(sketch_path),
    )


def hints_from_image(
    image: Image.Image,
    sketch_size: tuple[int, int],
    image_size: int,
    source: str = "the hint image",
    sketch_name: str | None = None,
) -> Tensor:
    """A hint layer whose pixels with alpha > 0 are hints in their colour, of any size with the
    sketch's aspect ratio -> (4, image_size, image_size). `source` and `sketch_name` name them in
    errors."""
    if image.mode not in ("RGBA", "LA", "La", "PA", "RGBa") and not (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info
    ):
        raise UserError(
            f"{source}: a hint image needs transparency (mode {image.mode} has none): its transparent "
            "pixels are 'no hint'. Save it as a PNG with alpha, or give the hints as JSON "
            f"{HINT_LIST_FORMAT}."
        )
    if not _same_aspect(image.size, sketch_size):
        sketch = f"its sketch {sketch_name}" if sketch_name else "the sketch"
        raise UserError(
            f"{source} is {image.width}x{image.height} but {sketch} is {sketch_size[0]}x{sketch_size[1]}: "
            "a hint image must have the sketch's aspect ratio (scale it, do not crop or stretch it)."
        )
    share = _hint_share(image)
    if share > MAX_HINT_SHARE:
        amount = "all" if share == 1 else f"{math.floor(share * 1000) / 10:g}%"
        raise UserError(
            f"{source}: {amount} of its pixels are hints (alpha > 0), so it is a picture, not a hint "
            "layer. Paint the hints on a transparent layer (alpha 0 = no hint) and save that layer "
            f"alone as a PNG with alpha, or give the hints as JSON {HINT_LIST_FORMAT}."
        )
    return _at_model_size(image, image_size)


def hints_from_points(
    points, sketch_size: tuple[int, int], image_size: int, source: str = "the hint list"
) -> Tensor:
    """A JSON-like list of {"x", "y", "color", "radius" (default 2)} in the sketch's pixels ->
    (4, S, S)."""
    width, height = sketch_size
    try:
        if not isinstance(points, list):
            raise ValueError("the top level must be a list")
        if len(points) > MAX_DOTS:
            raise ValueError(f"{len(points)} dots, more than {MAX_DOTS}")
        canvas = Image.new("RGBA", sketch_size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(canvas)
        for number, hint in enumerate(points):
            if not isinstance(hint, dict):
                raise ValueError(f"hint {number} is not an object {{...}}")
            missing = [key for key in ("x", "y", "color") if key not in hint]
            if missing:
                raise ValueError(f"hint {number} has no {', '.join(missing)}")
            x, y, radius = float(hint["x"]), float(hint["y"]), float(hint.get("radius", 2))
            if not isinstance(hint["color"], str):
                raise ValueError(f"hint {number}: color {hint['color']!r} is not a string")
            colour = (*ImageColor.getrgb(hint["color"])[:3], 255)
            if not (0 <= x < width and 0 <= y < height):
                raise ValueError(
                    f"hint {number} at ({x:g}, {y:g}) is outside the {width}x{height} sketch"
                )
            if not 0 <= radius < math.inf:
                raise ValueError(f"hint {number}: radius {radius:g} is not a size in pixels")
            radius = min(
                radius, max(width, height)
            )  # larger covers the sketch all the same, and takes Pillow seconds
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
            draw.point(
                (round(x), round(y)), fill=colour
            )  # Pillow draws no ellipse under 1 px: a hint is never empty
    except (ValueError, TypeError, OverflowError) as error:  # OverflowError: 1e400 as an int
        raise UserError(
            f"{source}: not a hint list ({error}). Expected {HINT_LIST_FORMAT}."
        ) from None
    return _at_model_size(canvas, image_size)


def _same_aspect(size: tuple[int, int], sketch_size: tuple[int, int]) -> bool:
    """Within 1%, or half a pixel of rounding on each side (a hint layer scaled down from the
    sketch)."""
    (width, height), (sketch_width, sketch_height) = size, sketch_size
    cross, sketch_cross = width * sketch_height, height * sketch_width
    return (
        abs(cross - sketch_cross)
        <= max(cross, sketch_cross) / 100 + (sketch_width + sketch_height) / 2
    )


def _hint_share(layer: Image.Image) -> float:
    """The share of a layer's pixels that are hints (alpha > 0), a band of rows at a time."""
    clear = sum(band.convert("RGBA").getchannel("A").histogram()[0] for _, band in bands(layer))
    return 1 - clear / (layer.width * layer.height)


def _at_model_size(layer: Image.Image, image_size: int) -> Tensor:
    """A hint layer (any mode with transparency) -> (4, S, S) hint map. A cell of the model's grid
    is a hint where any pixel in it is one, in their alpha-weighted mean colour: a resize would drop
    dots that fall between its samples (nearest) or blend them with 'no hint' (bicubic).

    The cells' means are taken across each row first, a band of rows at a time, then down the
    columns: the same means as at once, at the memory of a band, not of the whole layer as float."""
    across = torch.empty(1, 4, layer.height, image_size)  # alpha-weighted RGB, then alpha
    for top, band in bands(layer):
        rgba = np.array(band.convert("RGBA"))  # a band's copy, writable for torch
        pixels = torch.from_numpy(rgba).permute(2, 0, 1)[None].float()
        pixels[:, 3:].div_(255)
        pixels[:, :3].mul_(pixels[:, 3:])
        across[:, :, top : top + band.height] = F.adaptive_avg_pool2d(
            pixels, (band.height, image_size)
        )
    cells = F.adaptive_avg_pool2d(across, image_size)
    weight = cells[:, 3:]
    colour = cells[:, :3] / weight.clamp_min(1e-12)
    mask = weight > 0
    colour = (colour / 127.5 - 1).clamp(-1, 1)
    return torch.cat([torch.where(mask, colour, 0.0), mask.float()], dim=1)[0]


def hint_image(hints: Tensor) -> Image.Image:
    """(4, H, W) hint map -> RGBA image (transparent where there is no hint): the PNG form."""
    rgb = ((hints[:3] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    alpha = (hints[3:] > 0).to(torch.uint8) * 255
    return Image.fromarray(torch.cat([rgb, alpha]).permute(1, 2, 0).numpy(), mode="RGBA")


def prepare_hints(
    source: HintSource, sketch_size: tuple[int, int], size: int, sketch_name: str | None = None
) -> Tensor | None:
    """Hints in any of the forms above, or a ready (4, size, size) hint map -> (4, size, size), or
    None for no hints. sketch_size is the sketch's own (width, height), which the hints' coordinates
    refer to."""
    if source is None:
        return None
    if isinstance(source, Tensor):
        if source.shape != (HINT_CHANNELS, size, size):
            raise UserError(
                f"a hint map must be ({HINT_CHANNELS}, {size}, {size}) at the model's size, "
                f"not {tuple(source.shape)}."
            )
        return source.float()
    if isinstance(source, Image.Image):
        return hints_from_image(source, sketch_size, size, sketch_name=sketch_name)
    if isinstance(source, list):
        return hints_from_points(source, sketch_size, size)
    if isinstance(source, (str, Path)):
        return read_hint_file(Path(source), sketch_size, size, sketch_name)
    raise TypeError(
        f"hints must be a path, a PIL image, a list of dots, a tensor or None, not {type(source).__name__}"
    )


def empty_hints(size: int) -> Tensor:
    """(4, size, size) zeros: no hint anywhere (mask 0), for a sketch without hints in a batch with
    them."""
    return torch.zeros(HINT_CHANNELS, size, size)
