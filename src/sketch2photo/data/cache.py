"""Decode pairs once into uint8 tensors: the dataset every batch is cut from.

Sketches are kept as uint8 (N, 1, H, W) and photos as uint8 (N, 3, H, W): four times smaller than
float, and each file is decoded once a run, by a pool of threads (Pillow releases the GIL).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from sketch2photo.data.images import BadImageError, open_image, photo_tensor, sketch_tensor, split_aligned
from sketch2photo.data.layouts import Pair


@dataclass
class CachedPairs(Dataset):
    """Decoded pairs: sketches uint8 (N, 1, H, W), photos uint8 (N, 3, H, W)."""

    sketches: torch.Tensor
    photos: torch.Tensor
    pairs: list[Pair]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        return {"sketch": self.sketches[index], "photo": self.photos[index], "index": index}

    def subset(self, indices: list[int]) -> CachedPairs:
        if indices == list(range(len(self.pairs))):
            return self  # no copy: a second cache-sized tensor would double the peak memory
        keep = torch.as_tensor(indices, dtype=torch.long)
        return CachedPairs(self.sketches[keep], self.photos[keep], [self.pairs[i] for i in indices])


def decode_pairs(pairs: list[Pair], size: int, ab_order: str = "sketch_left",
                 threads: int | None = None) -> tuple[CachedPairs, list[str]]:
    """(the pairs that decoded, resized to size x size; one message per pair that did not)."""
    sketches = torch.empty(len(pairs), 1, size, size, dtype=torch.uint8)
    photos = torch.empty(len(pairs), 3, size, size, dtype=torch.uint8)
    sketch_side = "left" if ab_order == "sketch_left" else "right"

    def decode(index: int) -> str | None:
        pair = pairs[index]
        try:
            if pair.aligned:
                sketch, photo = split_aligned(open_image(pair.sketch), pair.sketch, sketch_side)
            else:
                sketch, photo = open_image(pair.sketch), open_image(pair.photo)
                if not same_aspect(sketch.size, photo.size):
                    return (
                        f"{pair.sketch} is {sketch.size[0]}x{sketch.size[1]} but {pair.photo} is "
                        f"{photo.size[0]}x{photo.size[1]}: a pair must have the same aspect ratio to stay aligned"
                    )
            sketches[index], photos[index] = sketch_tensor(sketch, size), photo_tensor(photo, size)
        except BadImageError as error:
            return str(error)
        return None

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        errors = list(pool.map(decode, range(len(pairs))))
    good = [i for i, error in enumerate(errors) if error is None]
    return CachedPairs(sketches, photos, pairs).subset(good), [e for e in errors if e is not None]


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return math.isclose(a[0] / a[1], b[0] / b[1], rel_tol=0.02)
