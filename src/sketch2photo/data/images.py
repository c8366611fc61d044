"""Decoding one image file and the preprocessing that every command shares.

The reference experiment's preprocessing, kept exactly: the sketch is converted to 'L' and
replicated to 3 channels, the photo to 'RGB'; both are resized with Pillow's default (bicubic)
filter and scaled to [-1, 1] with x / 127.5 - 1. Decoding is made robust: alpha is composited on
white, 16-bit images are scaled down rather than clipped, EXIF rotation is applied.

Decoding is bounded, for files from anyone (sketches, photos, hint layers, the app's uploads): an
image larger than MAX_PIXELS is refused from its header, before anything is decoded, and mode
conversions run a band of rows at a time, so an image costs its decoded pixels and one output, not
whole-size copies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from sketch2photo.errors import UserError

RESAMPLE = (
    Image.Resampling.BICUBIC
)  # Pillow's default for resize(), which the reference experiment used
MAX_PIXELS = 8192 * 8192  # 64 megapixels: at most 256 MB decoded (RGBA)
BAND_PIXELS = 1 << 18  # pixels converted at a time: 1 MB of RGBA, 4 MB as float
FORMATS = (
    "PNG",
    "JPEG",
    "WEBP",
    "BMP",
    "GIF",
    "TIFF",
)  # the decoders Pillow may use (JPEG: MPO too)


class BadImageError(UserError):
    """A file that cannot be used as an image; the message says why."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def open_image(path: Path | str) -> Image.Image:
    """Decode a file fully into an 'L' or 'RGB' image, or raise BadImageError."""
    return read_image(path)


def read_image(
    source: Path | str | bytes,
    flatten: bool = True,
    max_pixels: int = MAX_PIXELS,
    name: str | None = None,
) -> Image.Image:
    """A file (a path, or its bytes) decoded, EXIF rotation applied: flattened to 'L' or 'RGB', or
    as it is (a layer: alpha kept). `name` names it in errors (default: the path). BadImageError
    when it is not an image, is damaged, or has more than `max_pixels` pixels."""
    path = None if isinstance(source, bytes) else Path(source)
    shown = name or str(path or "the image")
    try:
        if path is not None and path.stat().st_size == 0:
            raise BadImageError(shown, "empty file (0 bytes)")
        Image.init()  # registers every format; Image.open(formats=...) looks them up first
        with Image.open(path or BytesIO(source), formats=FORMATS) as image:
            width, height = image.size
            if width * height > max_pixels:
                side = math.isqrt(max_pixels)
                raise BadImageError(
                    shown,
                    f"too large: {width}x{height} is {width * height / 1e6:.1f} megapixels, more "
                    f"than the {side} x {side} ({max_pixels / 1e6:.1f}) accepted; scale it down",
                )
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            return flatten_modes(image) if flatten else image
    except BadImageError:
        raise
    except Image.DecompressionBombError as error:
        raise BadImageError(shown, f"too large to decode safely ({error})") from None
    except UnidentifiedImageError:
        raise BadImageError(
            shown,
            f"not an image Pillow can read as {', '.join(FORMATS)} (wrong extension or corrupt file)",
        ) from None
    except FileNotFoundError:
        raise BadImageError(shown, "does not exist") from None
    except Exception as error:  # Pillow's decoders on damaged data: OSError, SyntaxError, ...
        raise BadImageError(
            shown, f"unreadable or truncated image ({type(error).__name__}: {error})"
        ) from None


def bands(image: Image.Image) -> Iterator[tuple[int, Image.Image]]:
    """(top row, the rows from there) of an image, BAND_PIXELS at a time."""
    rows = max(1, BAND_PIXELS // max(1, image.width))
    for top in range(0, image.height, rows):
        yield top, image.crop((0, top, image.width, min(image.height, top + rows)))


def in_bands(image: Image.Image, convert: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """convert(image), a band of rows at a time: what convert costs is that of a band."""
    if image.width * image.height <= BAND_PIXELS:
        return convert(image)
    output = None
    for top, band in bands(image):
        converted = convert(band)
        if output is None:
            output = Image.new(converted.mode, image.size)
        output.paste(converted, (0, top))
    return output


def flatten_modes(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 'L' or 'RGB': alpha over white, 16/32-bit scaled to 8-bit."""
    if image.mode in ("L", "RGB"):
        return image
    scale = 1.0
    if image.mode == "F":  # 0..1 floats or 0..255: the whole image's range decides
        scale = 255.0 if (image.getextrema()[1] or 0.0) <= 1.0 else 1.0
    return in_bands(image, lambda band: _flatten(band, scale))


def _flatten(image: Image.Image, float_scale: float) -> Image.Image:
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        values = values * float_scale if mode == "F" else values / 257.0  # 16-bit onto 8-bit
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    if image.mode == "1":
        return image.convert("L")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def split_aligned(
    image: Image.Image, path: Path, sketch_side: str
) -> tuple[Image.Image, Image.Image]:
    """Cut a pix2pix 'aligned' image (two halves side by side) into (sketch, photo)."""
    width, height = image.size
    if width < 2 or width % 2:
        raise BadImageError(path, f"width {width} is odd or too small for two side-by-side halves")
    left = image.crop((0, 0, width // 2, height))
    right = image.crop((width // 2, 0, width, height))
    return (left, right) if sketch_side == "left" else (right, left)


def sketch_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """uint8 (1, size, size): the sketch in 'L'. It is replicated to 3 channels per batch."""
    return _to_uint8_tensor(image.convert("L").resize((size, size), RESAMPLE))


def photo_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """uint8 (3, size, size)."""
    return _to_uint8_tensor(image.convert("RGB").resize((size, size), RESAMPLE))


def _to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] to float [-1, 1], as the reference experiment did (x / 127.5 - 1)."""
    return images.float().div_(127.5).sub_(1.0)


def sketch_to_input(sketches: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 1, H, W) sketches to the network's float (B, 3, H, W) input in [-1, 1]."""
    return to_model_range(sketches).expand(-1, 3, -1, -1)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] back to uint8 [0, 255]."""
    return images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
