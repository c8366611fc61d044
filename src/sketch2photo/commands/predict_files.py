"""What s2p-predict reads and writes, from the paths given alone: no torch here, so that cli.py's
precheck answers a bad input= or output= before torch loads."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sketch2photo.data.layouts import IMAGE_EXTENSIONS, image_files
from sketch2photo.errors import UserError


def list_inputs(input_path: Path) -> list[Path]:
    if input_path.is_file():
        if input_path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise UserError(
                f"input={input_path} is not an image file ({', '.join(IMAGE_EXTENSIONS)})."
            )
        return [input_path]
    if not input_path.is_dir():
        raise UserError(
            f"input={input_path} does not exist; give a sketch file or a folder of sketches."
        )
    paths = image_files(input_path)
    if not paths:
        raise UserError(
            f"input={input_path} holds no image files ({', '.join(IMAGE_EXTENSIONS)}; subfolders are not read)."
        )
    return paths


def output_paths(paths: list[Path], output: Path, keep_extension: bool) -> list[Path]:
    """output/<name>: the input's stem with .png, or its own extension with keep_extension=true."""
    targets = [output / (p.name if keep_extension else f"{p.stem}.png") for p in paths]
    clashes = sorted(name for name, count in Counter(t.name for t in targets).items() if count > 1)
    if clashes:
        raise UserError(
            f"several inputs would be written to the same file ({', '.join(clashes)}), e.g. a.jpg and a.png. "
            "Use keep_extension=true or rename them."
        )
    return targets
