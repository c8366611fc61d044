"""Decoding one image file and the preprocessing that every command shares.

The reference experiment's preprocessing, kept exactly: the sketch is converted to 'L' and
replicated to 3 channels, the photo to 'RGB'; both are resized with Pillow's default (bicubic)
filter and scaled to [-1, 1] with x / 127.5 - 1. Decoding is made robust: alpha is composited on
white, 16-bit images are scaled down rather than clipped, EXIF rotation is applied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

RESAMPLE = (
    Image.Resampling.BICUBIC
)  # Pillow's default for resize(), which the reference experiment used


class BadImageError(Exception):
    """A file that cannot be used as an image; the message says why."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def open_image(path: Path) -> Image.Image:
    """Decode a file fully into an 'L' or 'RGB' image, or raise BadImageError."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImageError(path, "empty file (0 bytes)")
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return flatten_modes(image)
    except BadImageError:
        raise
    except Image.DecompressionBombError as error:
        raise BadImageError(path, f"too large to decode safely ({error})") from None
    except UnidentifiedImageError:
        raise BadImageError(
            path, "not an image Pillow can read (wrong extension or corrupt file)"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadImageError(path, f"unreadable or truncated image ({error})") from None


def flatten_modes(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 'L' or 'RGB': alpha over white, 16/32-bit scaled to 8-bit."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode != "F":
            values = values / 257.0  # 16-bit range onto 8-bit
        elif values.max(initial=0.0) <= 1.0:
            values = values * 255.0
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
