"""Decode pairs into uint8 tensors: the dataset every batch is cut from.

Sketches are kept as uint8 (N, 1, H, W) and photos as uint8 (N, 3, H, W): four times smaller than
float, and decoded by a pool of threads (Pillow releases the GIL). They live either in this
process's RAM (``data.cache=memory``, decoded every run) or in a memory-mapped file that later runs
share (``data.cache=disk``, disk_cache.py). A split is a list of rows of those tensors, never a
copy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from sketch2photo.data.images import (
    BadImageError,
    open_image,
    photo_tensor,
    sketch_tensor,
    split_aligned,
)
from sketch2photo.data.layouts import Listing, Pair

CHUNK = 512  # pairs decoded at a time: bounds the memory of a build that goes to disk
PROGRESS_AFTER_S = 2.0  # a progress bar only for decodes that take a while


@dataclass
class CachedPairs(Dataset):
    """The pairs of one set: rows `rows` of sketches uint8 (N, 1, H, W) and photos uint8
    (N, 3, H, W), which several sets share. `pairs[i]` is the pair at `rows[i]`."""

    all_sketches: torch.Tensor
    all_photos: torch.Tensor
    pairs: list[Pair]
    rows: torch.Tensor  # long (len(pairs),)
    about_to_read: Callable[[torch.Tensor], object] | None = (
        None  # told the rows of a batch first (disk_cache)
    )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        return {"sketch": self.all_sketches[row], "photo": self.all_photos[row], "index": index}

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch, as the DataLoader asks for it."""
        if self.about_to_read is not None:
            self.about_to_read(self.rows[indices])
        return [self[index] for index in indices]

    def subset(self, indices: list[int]) -> CachedPairs:
        return CachedPairs(
            self.all_sketches,
            self.all_photos,
            [self.pairs[i] for i in indices],
            self.rows[indices],
            self.about_to_read,
        )

    # Gathered copies, for small sets and a chunk at a time: a 50k-pair set is 13 GB at 256 px.
    @property
    def sketches(self) -> torch.Tensor:
        return self.all_sketches[self.rows]

    @property
    def photos(self) -> torch.Tensor:
        return self.all_photos[self.rows]

    def chunks(self, size: int = CHUNK) -> Iterator[CachedPairs]:
        for start in range(0, len(self), size):
            yield self.subset(list(range(start, min(start + size, len(self)))))


def all_rows(
    sketches: torch.Tensor,
    photos: torch.Tensor,
    pairs: list[Pair],
    bad: set[int],
    about_to_read: Callable[[torch.Tensor], object] | None = None,
) -> CachedPairs:
    """The pairs that decoded: every row but the `bad` ones."""
    good = [i for i in range(len(pairs)) if i not in bad]
    return CachedPairs(
        sketches,
        photos,
        [pairs[i] for i in good],
        torch.as_tensor(good, dtype=torch.long),
        about_to_read,
    )


def decode_in_chunks(
    pairs: list[Pair], size: int, ab_order: str, threads: int | None, what: str
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, list[str | None]]]:
    """(first row, sketches uint8 (c, 1, H, W), photos uint8 (c, 3, H, W), per pair None or what
    went wrong), CHUNK pairs at a time, in order. A pair that failed has zero rows. The tensors are
    reused for the next chunk: use them before asking for it."""
    sketch_side = "left" if ab_order == "sketch_left" else "right"
    sketches = torch.empty(min(CHUNK, len(pairs)), 1, size, size, dtype=torch.uint8)
    photos = torch.empty(min(CHUNK, len(pairs)), 3, size, size, dtype=torch.uint8)
    with (
        ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool,
        tqdm(
            total=len(pairs),
            desc=f"decoding {what}",
            unit="pair",
            delay=PROGRESS_AFTER_S,
            leave=False,
        ) as bar,
    ):
        for start in range(0, len(pairs), CHUNK):
            chunk = pairs[start : start + CHUNK]

            def decode(
                index: int, chunk: list[Pair] = chunk
            ) -> str | None:  # this chunk's, in pool.map below
                try:
                    sketches[index], photos[index] = _decode(chunk[index], size, sketch_side)
                except BadImageError as error:
                    sketches[index], photos[index] = 0, 0
                    return str(error)
                return None

            errors = list(pool.map(decode, range(len(chunk))))
            bar.update(len(chunk))
            yield start, sketches[: len(chunk)], photos[: len(chunk)], errors


def _decode(pair: Pair, size: int, sketch_side: str) -> tuple[torch.Tensor, torch.Tensor]:
    if pair.aligned:
        sketch, photo = split_aligned(open_image(pair.sketch), pair.sketch, sketch_side)
    else:
        sketch, photo = open_image(pair.sketch), open_image(pair.photo)
        if not same_aspect(sketch.size, photo.size):
            raise BadImageError(
                pair.sketch,
                (
                    f"{sketch.size[0]}x{sketch.size[1]}, but {pair.photo} is {photo.size[0]}x{photo.size[1]}: "
                    "a pair must have the same aspect ratio to stay aligned"
                ),
            )
    return sketch_tensor(sketch, size), photo_tensor(photo, size)


def decode_pairs(
    pairs: list[Pair], size: int, ab_order: str = "sketch_left", threads: int | None = None
) -> tuple[CachedPairs, list[str]]:
    """Decode into RAM: (the pairs that decoded, resized to size x size; one message per pair that
    did not)."""
    sketches = torch.empty(len(pairs), 1, size, size, dtype=torch.uint8)
    photos = torch.empty(len(pairs), 3, size, size, dtype=torch.uint8)
    problems: dict[int, str] = {}
    for start, chunk_sketches, chunk_photos, errors in decode_in_chunks(
        pairs, size, ab_order, threads, "pairs"
    ):
        sketches[start : start + len(errors)], photos[start : start + len(errors)] = (
            chunk_sketches,
            chunk_photos,
        )
        problems.update({start + i: error for i, error in enumerate(errors) if error is not None})
    return all_rows(sketches, photos, pairs, set(problems)), list(problems.values())


def decode_listing(
    listing: Listing, size: int, ab_order: str, threads: int | None
) -> tuple[dict[str, CachedPairs], list[str]]:
    """data.cache=memory: every folder of the listing decoded into RAM, and the problems found."""
    decoded, problems = {}, []
    for folder, pairs in listing.splits.items():
        decoded[folder], bad = decode_pairs(pairs, size, ab_order, threads)
        problems += bad
    return decoded, problems


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return math.isclose(a[0] / a[1], b[0] / b[1], rel_tol=0.02)
