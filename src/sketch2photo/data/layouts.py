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

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sketch2photo.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

LAYOUTS = ("auto", "folders", "aligned")
AB_ORDERS = ("sketch_left", "photo_left")
SPLIT_FOLDERS = {"train": ("trainA", "trainB"), "test": ("testA", "testB")}
ALIGNED_SPLITS = ("train", "val", "test")

LAYOUT_HELP = """Supported layouts:
  <data_dir>/testA/<N>_A.jpg + <data_dir>/testB/<N>_B.jpg   sketches + photos, paired by N (data.layout=folders)
  <data_dir>/trainA,trainB + testA,testB                    training pairs + test pairs   (data.layout=folders)
  <data_dir>/[train|val|test/]<name>.jpg                    sketch|photo side by side     (data.layout=aligned)
Extensions: .jpg .jpeg .png (any case)."""


@dataclass(frozen=True)
class Pair:
    """One training example. In the aligned layout sketch and photo are the same file."""

    name: str
    sketch: Path
    photo: Path

    @property
    def aligned(self) -> bool:
        return self.sketch == self.photo


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
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def natural_key(text: str) -> list:
    """'2' sorts before '10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder` (not in its subfolders), in natural order of their names."""
    return sorted((path for path in Path(folder).iterdir() if is_image_file(path)), key=lambda path: natural_key(path.name))


def check_layout(layout: str, ab_order: str = "sketch_left") -> None:
    if layout not in LAYOUTS:
        raise UserError(f"data.layout={layout!r} is not one of {', '.join(LAYOUTS)}.\n{LAYOUT_HELP}")
    if ab_order not in AB_ORDERS:
        raise UserError(f"data.ab_order={ab_order!r} must be sketch_left or photo_left.")


def find_pairs(data_dir: str | Path, layout: str = "auto") -> Listing:
    data_dir = Path(data_dir)
    check_layout(layout)
    if not data_dir.is_dir():
        raise UserError(
            f"data.data_dir={data_dir} does not exist (looked in {data_dir.resolve()}).\n"
            f"Point data.data_dir at your dataset, or use data=synthetic to try the framework.\n{LAYOUT_HELP}"
        )
    if layout == "auto":
        has_folders = any((data_dir / a).is_dir() for a, _ in SPLIT_FOLDERS.values())
        layout = "folders" if has_folders else "aligned"
    listing = _find_folder_pairs(data_dir) if layout == "folders" else _find_aligned(data_dir)
    if listing.num_pairs == 0 and not listing.problems:
        listing.problems.append(f"no image pairs found in {data_dir} (data.layout={layout})")
    return listing


def _find_folder_pairs(data_dir: Path) -> Listing:
    listing = Listing("folders", {})
    present = {split: (data_dir / a, data_dir / b) for split, (a, b) in SPLIT_FOLDERS.items()}
    present = {split: dirs for split, dirs in present.items() if dirs[0].is_dir() or dirs[1].is_dir()}
    if not present:
        raise UserError(f"{data_dir} has no testA/ or trainA/ folder.\n{LAYOUT_HELP}")
    for split, (sketch_dir, photo_dir) in present.items():
        for folder in (sketch_dir, photo_dir):
            if not folder.is_dir():
                raise UserError(f"{folder} is missing: {folder.name[:-1]}A/ and {folder.name[:-1]}B/ come together.\n{LAYOUT_HELP}")
        sketches = _index_folder(sketch_dir, "A", listing)
        photos = _index_folder(photo_dir, "B", listing)
        for name in sorted(sketches.keys() - photos.keys(), key=natural_key):
            listing.problems.append(f"{sketches[name][0]}: sketch without a photo (expected {photo_dir}/{name}_B.<jpg|png>)")
        for name in sorted(photos.keys() - sketches.keys(), key=natural_key):
            listing.problems.append(f"{photos[name][0]}: photo without a sketch (expected {sketch_dir}/{name}_A.<jpg|png>)")
        names = sorted(sketches.keys() & photos.keys(), key=natural_key)
        listing.splits["all" if split == "test" and len(present) == 1 else split] = [
            Pair(name, sketches[name][0], photos[name][0])
            for name in names
            if not _duplicated(name, sketches, listing) | _duplicated(name, photos, listing)
        ]
    return listing


def _index_folder(folder: Path, suffix: str | None, listing: Listing) -> dict[str, list[Path]]:
    """Map pair name to its files: '3_A.jpg' -> '3' for suffix 'A'. A name without the suffix is used as is."""
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            listing.ignored.append(path)
            continue
        stem = path.stem
        name = stem[:-2] if suffix and stem[-2:].upper() == f"_{suffix}" else stem
        by_name[name].append(path)
    return by_name


def _duplicated(name: str, index: dict[str, list[Path]], listing: Listing) -> bool:
    """Several files claim the same pair (3_A.jpg and 3_A.png): report it and use neither."""
    paths = index[name]
    if len(paths) > 1:
        listing.problems.append(
            f"{paths[0].parent}: several files for pair {name!r} ({', '.join(p.name for p in paths)}); keep one"
        )
    return len(paths) > 1


def _find_aligned(data_dir: Path) -> Listing:
    listing = Listing("aligned", {})
    folders = {split: data_dir / split for split in ALIGNED_SPLITS if (data_dir / split).is_dir()}
    for split, folder in (folders or {"all": data_dir}).items():
        index = _index_folder(folder, None, listing)
        listing.splits[split] = [
            Pair(name, index[name][0], index[name][0])
            for name in sorted(index, key=natural_key)
            if not _duplicated(name, index, listing)
        ]
    return listing
