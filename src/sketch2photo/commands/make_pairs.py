"""s2p-make-pairs: turn any folder of colour images into a sketch/photo dataset.

    s2p-make-pairs photos=<folder> out=<folder> [size=256] [xdog.sigma=1.0 ...]

Writes out/testB/<i>_B.png (the photos), out/testA/<i>_A.png (their XDoG line sketches, the same
extractor as the synthetic data), out/names.csv (i -> original file name) and out/preview.png (a
few photos above their sketches). Train on it with
`s2p-train data=sketch2photo data.data_dir=<out>`.
"""

from __future__ import annotations

import csv
import logging
import shutil
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig
from torchvision.io import write_png
from torchvision.transforms.v2 import functional as F
from torchvision.utils import make_grid, save_image

from sketch2photo.checks import USAGES
from sketch2photo.data.images import RESAMPLE, BadImageError, open_image
from sketch2photo.data.layouts import IMAGE_EXTENSIONS, image_files
from sketch2photo.data.sketches import XDoG, photos_to_sketches
from sketch2photo.errors import SOME_FILES_FAILED, UserError, require_keys
from sketch2photo.outputs import check_folder, check_replaced, check_writes

log = logging.getLogger("sketch2photo.make_pairs")

PREVIEW_SIZE = 128


def make_pairs(cfg: DictConfig) -> tuple[int, list[str]]:
    """Write the dataset; return (pairs written, problems with the files that were skipped)."""
    require_keys(cfg, USAGES["make_pairs"])
    photos_dir, out = Path(str(cfg.photos)), Path(str(cfg.out))
    if not photos_dir.is_dir():
        raise UserError(
            f"photos={photos_dir} is not a folder; give the folder that holds your images."
        )
    paths = image_files(photos_dir)
    if not paths:
        raise UserError(
            f"photos={photos_dir} holds no image files ({', '.join(IMAGE_EXTENSIONS)}; subfolders are not read)."
        )
    if cfg.size is not None and (not isinstance(cfg.size, int) or cfg.size < 8):
        raise UserError(
            f"size={cfg.size!r} must be an integer of at least 8, or null to keep each photo's size."
        )
    extractor = XDoG(**cfg.xdog)
    if extractor.sigma <= 0 or extractor.k <= 0:
        raise UserError(
            f"xdog.sigma and xdog.k must be positive (got sigma={extractor.sigma}, k={extractor.k})."
        )
    check_folder(out, "out")
    check_replaced([out / "testA", out / "testB"], paths, "out", out)
    check_writes(
        [
            out / "names.csv",
            out / "preview.png",
            out / "testA" / "0_A.png",
            out / "testB" / "0_B.png",
        ],
        {path: "the input" for path in paths},
        out,
        key="out",
    )
    sketch_dir, photo_dir = prepare_output(out, cfg.overwrite)

    names, problems, preview = [], [], []
    for path in paths:
        try:
            image = open_image(path).convert("RGB")
        except BadImageError as error:
            problems.append(str(error))
            continue
        if cfg.size:
            image = image.resize((cfg.size, cfg.size), RESAMPLE)
        photo = F.pil_to_tensor(image)
        sketch = photos_to_sketches(photo[None], extractor)[0]
        index = len(names)
        write_png(photo, str(photo_dir / f"{index}_B.png"))
        write_png(sketch, str(sketch_dir / f"{index}_A.png"))
        names.append(path.name)
        if len(preview) < cfg.preview:
            preview.append((photo, sketch))

    with open(out / "names.csv", "w", newline="") as file:
        csv.writer(file).writerows([("index", "file"), *enumerate(names)])
    if preview:
        write_preview(preview, out / "preview.png")
    log.info(
        "wrote %d pairs to %s (testA/ sketches, testB/ photos, names.csv); look at %s\n"
        "train on them: s2p-train data=sketch2photo data.data_dir=%s",
        len(names),
        out,
        out / "preview.png",
        out,
    )
    if problems:
        log.error(
            "%d file(s) could not be read and were skipped:\n  - %s",
            len(problems),
            "\n  - ".join(problems),
        )
    return len(names), problems


def prepare_output(out: Path, overwrite: bool) -> tuple[Path, Path]:
    """Create out/testA and out/testB, empty; pairs from an earlier run must not mix with these."""
    sketch_dir, photo_dir = out / "testA", out / "testB"
    used = [d for d in (sketch_dir, photo_dir) if d.is_dir() and any(d.iterdir())]
    if used and not overwrite:
        raise UserError(
            f"out={out} already holds a dataset ({used[0]} is not empty). Choose a new out= or add overwrite=true."
        )
    for folder in (sketch_dir, photo_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    return sketch_dir, photo_dir


def write_preview(pairs: list[tuple[torch.Tensor, torch.Tensor]], path: Path) -> None:
    """One row of photos above one row of their sketches, each shown at PREVIEW_SIZE px."""

    def thumb(image: torch.Tensor) -> torch.Tensor:
        return F.resize(image.expand(3, -1, -1), [PREVIEW_SIZE, PREVIEW_SIZE], antialias=True)

    photos = [thumb(photo) for photo, _ in pairs]
    sketches = [thumb(sketch) for _, sketch in pairs]
    grid = make_grid(
        torch.stack(photos + sketches).float() / 255, nrow=len(pairs), padding=2, pad_value=1.0
    )
    save_image(grid, path)


def main(cfg: DictConfig) -> None:
    if make_pairs(cfg)[1]:
        sys.exit(SOME_FILES_FAILED)
