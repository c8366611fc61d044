"""Find sketch/photo pairs on disk and check the layout before anything is decoded.

Supported layouts (``data.layout``):

- ``folders`` (CycleGAN-style names, paired): ``testA/<N>_A.jpg`` sketches with ``testB/<N>_B.jpg``
  photos, matched by N, never by listing order. With ``trainA/trainB`` as well, those are the
  training pairs and ``testA/testB`` the test pairs.
- ``aligned`` (pix2pix): every image holds the sketch and the photo side by side; optional
  ``train/``, ``val/``, ``test/`` folders.
- ``auto`` picks ``folders`` when an ``A`` folder exists, else ``aligned``.
"""

from __future__ import annotations

import gc
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from sketch2photo.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

LAYOUTS = ("auto", "folders", "aligned")
AB_ORDERS = ("sketch_left", "photo_left")
SPLIT_FOLDERS = {"train": ("trainA", "trainB"), "test": ("testA", "testB")}
ALIGNED_SPLITS = ("train", "val", "test")
DIGIT_RUNS = re.compile(r"(\d+)")

LAYOUT_HELP = """Supported layouts:
  <data_dir>/testA/<N>_A.jpg + <data_dir>/testB/<N>_B.jpg   sketches + photos, paired by N (data.layout=folders)
  <data_dir>/trainA,trainB + testA,testB                    training pairs + test pairs   (data.layout=folders)
  <data_dir>/[train|val|test/]<name>.jpg                    sketch|photo side by side     (data.layout=aligned)
Extensions: .jpg .jpeg .png (any case)."""


class Pair(NamedTuple):
    """One training example. In the aligned layout sketch and photo are the same file.
    Folders and file names are kept as strings, and Paths made when asked for: 50k pairs list in
    well under a second that way."""

    name: str
    sketch_dir: str
    sketch_file: str
    photo_dir: str
    photo_file: str

    @property
    def sketch(self) -> Path:
        return Path(self.sketch_dir, self.sketch_file)

    @property
    def photo(self) -> Path:
        return Path(self.photo_dir, self.photo_file)

    @property
    def aligned(self) -> bool:
        return self.sketch_dir == self.photo_dir and self.sketch_file == self.photo_file

    def files(self) -> tuple[tuple[str, str], ...]:
        """(folder, file name) of its files: one for an aligned pair."""
        sketch = (self.sketch_dir, self.sketch_file)
        return (sketch,) if self.aligned else (sketch, (self.photo_dir, self.photo_file))


@dataclass
class Listing:
    """The pairs found, by predefined split ('all' when the layout has none), and the problems."""

    layout: str
    splits: dict[str, list[Pair]]
    problems: list[str] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)

    @property
    def num_pairs(self) -> int:
        return sum(len(pairs) for pairs in self.splits.values())


def is_image_file(path: Path) -> bool:
    return (
        path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS
    )


def natural_key(text: str) -> list:
    """'2' sorts before '10'."""
    return [int(part) if part.isdecimal() else part.lower() for part in DIGIT_RUNS.split(text)]


def natural_sorted(names) -> list[str]:
    names = list(names)
    if all(
        name.isdecimal() for name in names
    ):  # the usual <N>_A.jpg names: the same order, 5x faster
        return sorted(names, key=lambda name: (int(name), name))
    return sorted(names, key=lambda name: (natural_key(name), name))


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder` (not in its subfolders), in natural order of their
    names."""
    return sorted(
        (path for path in Path(folder).iterdir() if is_image_file(path)),
        key=lambda path: natural_key(path.name),
    )


def check_layout(layout: str, ab_order: str = "sketch_left") -> None:
    if layout not in LAYOUTS:
        raise UserError(
            f"data.layout={layout!r} is not one of {', '.join(LAYOUTS)}.\n{LAYOUT_HELP}"
        )
    if ab_order not in AB_ORDERS:
        raise UserError(f"data.ab_order={ab_order!r} must be sketch_left or photo_left.")


def find_pairs(data_dir: str | Path, layout: str = "auto") -> Listing:
    # Listing 100k files makes as many objects, none of them cyclic, and the collector's passes over
    # them were 0.1 s of 0.5 s at 50k pairs.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _find_pairs(Path(data_dir), layout)
    finally:
        if enabled:
            gc.enable()


def check_data_dir(data_dir: str | Path) -> None:
    """data.data_dir must be a folder: checked before torch loads too (checks.py)."""
    data_dir = Path(str(data_dir))
    if not data_dir.is_dir():
        raise UserError(
            f"data.data_dir={data_dir} does not exist (looked in {data_dir.resolve()}).\n"
            f"Point data.data_dir at your dataset, or use data=synthetic to try the framework.\n{LAYOUT_HELP}"
        )


def _find_pairs(data_dir: Path, layout: str) -> Listing:
    check_layout(layout)
    check_data_dir(data_dir)
    if layout == "auto":
        has_folders = any((data_dir / a).is_dir() for a, _ in SPLIT_FOLDERS.values())
        layout = "folders" if has_folders else "aligned"
    listing = _find_folder_pairs(data_dir) if layout == "folders" else _find_aligned(data_dir)
    if listing.num_pairs == 0 and not listing.problems:
        raise UserError(_nothing_found(data_dir, listing))
    return listing


def _nothing_found(data_dir: Path, listing: Listing) -> str:
    """No pairs and no problem: name the folders, empty or holding only other files, and say what
    they should hold."""
    if listing.layout == "folders":
        folders = [
            data_dir / name
            for a, b in SPLIT_FOLDERS.values()
            for name in (a, b)
            if (data_dir / a).is_dir()
        ]
        a, b = folders[0].name, folders[1].name
        what = (
            f"put the sketches as {a}/<N>_A.jpg (or .png) and their photos as {b}/<N>_B.jpg, "
            "paired by N"
        )
    else:
        folders = [data_dir / s for s in ALIGNED_SPLITS if (data_dir / s).is_dir()] or [data_dir]
        what = "put images there that each hold a sketch and its photo side by side"
    ignored = {folder: sum(p.parent == folder for p in listing.ignored) for folder in folders}
    empty = [folder for folder in folders if not ignored[folder]]
    found = [f"{' and '.join(map(str, empty))} {'is' if len(empty) == 1 else 'are'} empty"] * bool(
        empty
    )
    found += [
        f"{folder} holds no images ({count} other file{'s' * (count > 1)} ignored)"
        for folder, count in ignored.items()
        if count
    ]
    return (
        f"no image pairs found in {data_dir} (data.layout={listing.layout}): "
        f"{'; '.join(found)}: {what}.\n{LAYOUT_HELP}"
    )


def _find_folder_pairs(data_dir: Path) -> Listing:
    listing = Listing("folders", {})
    present = {split: (data_dir / a, data_dir / b) for split, (a, b) in SPLIT_FOLDERS.items()}
    present = {
        split: dirs for split, dirs in present.items() if dirs[0].is_dir() or dirs[1].is_dir()
    }
    if not present:
        raise UserError(f"{data_dir} has no testA/ or trainA/ folder.\n{LAYOUT_HELP}")
    for split, (sketch_dir, photo_dir) in present.items():
        for folder in (sketch_dir, photo_dir):
            if not folder.is_dir():
                raise UserError(
                    f"{folder} is missing: {folder.name[:-1]}A/ and {folder.name[:-1]}B/ come together.\n{LAYOUT_HELP}"
                )
        sketches = _index_folder(sketch_dir, "A", listing)
        photos = _index_folder(photo_dir, "B", listing)
        for name in natural_sorted(sketches.keys() - photos.keys()):
            listing.problems.append(
                f"{sketch_dir / sketches[name][0]}: sketch without a photo "
                f"(expected {photo_dir}/{name}_B.<jpg|png>)"
            )
        for name in natural_sorted(photos.keys() - sketches.keys()):
            listing.problems.append(
                f"{photo_dir / photos[name][0]}: photo without a sketch "
                f"(expected {sketch_dir}/{name}_A.<jpg|png>)"
            )
        names = natural_sorted(sketches.keys() & photos.keys())
        sketch_folder, photo_folder = str(sketch_dir), str(photo_dir)
        listing.splits["all" if split == "test" and len(present) == 1 else split] = [
            Pair(name, sketch_folder, sketches[name][0], photo_folder, photos[name][0])
            for name in names
            if not _duplicated(name, sketch_dir, sketches, listing)
            | _duplicated(name, photo_dir, photos, listing)
        ]
    return listing


def _index_folder(folder: Path, suffix: str | None, listing: Listing) -> dict[str, list[str]]:
    """Map pair name to its file names: '3_A.jpg' -> '3' for suffix 'A'. A name without the suffix
    is used as is."""
    by_name: dict[str, list[str]] = defaultdict(list)
    with os.scandir(
        folder
    ) as listed:  # DirEntry.is_file() needs no stat: a 100k-file folder lists in a blink
        entries = list(listed)
    for entry in entries:  # in directory order: the pairs are sorted by name afterwards
        stem, dot, extension = entry.name.rpartition(".")
        if (
            not dot
            or not stem
            or not entry.is_file()
            or f".{extension.lower()}" not in IMAGE_EXTENSIONS
            or entry.name.startswith(".")
        ):
            listing.ignored.append(folder / entry.name)
            continue
        name = stem[:-2] if suffix and stem[-2:].upper() == f"_{suffix}" else stem
        by_name[name].append(entry.name)
    return by_name


def _duplicated(name: str, folder: Path, index: dict[str, list[str]], listing: Listing) -> bool:
    """Several files claim the same pair (3_A.jpg and 3_A.png): report it and use neither."""
    files = index[name]
    if len(files) > 1:
        listing.problems.append(
            f"{folder}: several files for pair {name!r} ({', '.join(sorted(files))}); keep one"
        )
    return len(files) > 1


def _find_aligned(data_dir: Path) -> Listing:
    listing = Listing("aligned", {})
    folders = {split: data_dir / split for split in ALIGNED_SPLITS if (data_dir / split).is_dir()}
    for split, folder in (folders or {"all": data_dir}).items():
        index = _index_folder(folder, None, listing)
        listing.splits[split] = [
            Pair(name, str(folder), index[name][0], str(folder), index[name][0])
            for name in natural_sorted(index)
            if not _duplicated(name, folder, index, listing)
        ]
    return listing
