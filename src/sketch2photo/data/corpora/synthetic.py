"""Deterministic synthetic sketch/photo pairs: the embedded default dataset and the test data.

Each photo is a few flat-coloured shapes with dark outlines on white, like a cartoon. With
colours="by_shape" the colour follows the shape's kind (circles red, squares blue, ...), so a model
can learn it from the sketch; with "random" every shape gets a random colour, which only colour
hints can tell: the clean test of whether a model follows them. The sketch is the XDoG line drawing
of the photo, the same extractor as s2p-make-pairs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from sketch2photo.data.sketches import photos_to_sketches

CHUNK = 256
COLOURINGS = ("by_shape", "random")
# kind -> base colour; each shape jitters it a little
SHAPE_COLOURS = {
    "circle": (220, 50, 40),
    "square": (40, 90, 210),
    "triangle": (40, 170, 70),
    "diamond": (240, 190, 30),
}


def generate_photos(
    num_pairs: int, size: int = 128, seed: int = 0, start: int = 0, colours: str = "by_shape"
) -> torch.Tensor:
    """uint8 (N, 3, size, size): pairs start .. start + N - 1; pair i depends only on (seed, i)."""
    indices = range(start, start + num_pairs)
    # random colours come from a stream of their own, so the shapes are by_shape's
    return torch.stack(
        [
            _photo(
                np.random.default_rng([seed, index]),
                size,
                np.random.default_rng([seed, index, 1]) if colours == "random" else None,
            )
            for index in indices
        ]
    )


def generate_pairs(
    num_pairs: int, size: int = 128, seed: int = 0, colours: str = "by_shape"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sketches uint8 (N, 1, H, W), photos uint8 (N, 3, H, W))."""
    photos = generate_photos(num_pairs, size, seed, colours=colours)
    return photos_to_sketches(photos), photos


def _photo(
    rng: np.random.Generator, size: int, colour_rng: np.random.Generator | None = None
) -> torch.Tensor:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    outline = max(1, size // 64)
    for _ in range(int(rng.integers(1, 4))):
        kind = list(SHAPE_COLOURS)[int(rng.integers(len(SHAPE_COLOURS)))]
        colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in SHAPE_COLOURS[kind])
        if colour_rng is not None:
            colour = tuple(int(c) for c in colour_rng.integers(30, 226, size=3))
        radius = rng.uniform(0.12, 0.25) * size
        cx, cy = rng.uniform(radius, size - radius, size=2)
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if kind == "circle":
            draw.ellipse(box, fill=colour, outline="black", width=outline)
        elif kind == "square":
            draw.rectangle(box, fill=colour, outline="black", width=outline)
        else:
            sides = 3 if kind == "triangle" else 4
            rotation = float(rng.uniform(0, 30)) if sides == 3 else 45.0
            draw.regular_polygon(
                (cx, cy, radius),
                sides,
                rotation=rotation,
                fill=colour,
                outline="black",
                width=outline,
            )
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def write_dataset(
    out_dir: str | Path, num_pairs: int, size: int = 128, seed: int = 0, colours: str = "by_shape"
) -> Path:
    """Write testA/<i>_A.png and testB/<i>_B.png. Safe when several processes race to do it."""
    out_dir = Path(out_dir)
    if (out_dir / "testA").is_dir():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        (staging / "testA").mkdir()
        (staging / "testB").mkdir()
        for start in range(0, num_pairs, CHUNK):  # bounded memory for large N
            photos = generate_photos(min(CHUNK, num_pairs - start), size, seed, start, colours)
            for index, sketch, photo in zip(
                range(start, start + len(photos)), photos_to_sketches(photos), photos, strict=True
            ):
                Image.fromarray(sketch[0].numpy(), mode="L").save(
                    staging / "testA" / f"{index}_A.png"
                )
                Image.fromarray(photo.permute(1, 2, 0).numpy(), mode="RGB").save(
                    staging / "testB" / f"{index}_B.png"
                )
        os.rename(staging, out_dir)  # atomic; fails if another process finished first
    except OSError:
        if not (out_dir / "testA").is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
