"""s2p-predict: colour new sketches with a trained model.

    s2p-predict ckpt_path=<file.ckpt> input=<sketch file or folder> output=<folder> [keep_size=true]

The model and its preprocessing come from the checkpoint alone. Every image file in `input` (not
its subfolders) is decoded like the training sketches, resized to the model's size, coloured in
batches and written to `output/<same name>.png`. A file that cannot be read is reported and
skipped; the others still go through and the exit status is then 2.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from omegaconf import DictConfig
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from sketch2photo import checkpoints
from sketch2photo.cli import USAGES, command
from sketch2photo.data.images import (
    RESAMPLE,
    BadImageError,
    open_image,
    sketch_tensor,
    sketch_to_input,
    to_uint8,
)
from sketch2photo.data.layouts import IMAGE_EXTENSIONS, image_files
from sketch2photo.errors import SOME_FILES_FAILED, UserError, require_keys

log = logging.getLogger("sketch2photo.predict")



class SketchFiles(Dataset):
    """Decoded, resized sketches ready for the network. A file that cannot be read yields a white
    placeholder and its error message instead of raising, so one bad file never stops a batch."""

    def __init__(self, paths: list[Path], size: int):
        self.paths = paths
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        try:
            image = open_image(self.paths[index])
        except BadImageError as error:
            return {"sketch": torch.ones(3, self.size, self.size), "index": index, "width": 0, "height": 0, "error": str(error)}
        sketch = sketch_to_input(sketch_tensor(image, self.size)[None])[0]
        return {"sketch": sketch, "index": index, "width": image.width, "height": image.height, "error": ""}


class ImageWriter(BasePredictionWriter):
    """Writes each batch as it comes (nothing piles up in memory) and counts what it wrote."""

    def __init__(self, targets: list[Path], keep_size: bool):
        super().__init__(write_interval="batch")
        self.targets, self.keep_size = targets, keep_size
        self.written = 0
        self.failed: list[str] = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        images = to_uint8(prediction).permute(0, 2, 3, 1).cpu().numpy()
        for image, index, width, height, error in zip(
            images, batch["index"].tolist(), batch["width"].tolist(), batch["height"].tolist(), batch["error"]
        ):
            if error:
                self.failed.append(error)
                continue
            picture = Image.fromarray(image)
            if self.keep_size:
                picture = picture.resize((width, height), RESAMPLE)
            picture.save(self.targets[index])
            self.written += 1


def list_inputs(input_path: Path) -> list[Path]:
    if input_path.is_file():
        if input_path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise UserError(f"input={input_path} is not an image file ({', '.join(IMAGE_EXTENSIONS)}).")
        return [input_path]
    if not input_path.is_dir():
        raise UserError(f"input={input_path} does not exist; give a sketch file or a folder of sketches.")
    paths = image_files(input_path)
    if not paths:
        raise UserError(f"input={input_path} holds no image files ({', '.join(IMAGE_EXTENSIONS)}; subfolders are not read).")
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
    if any(p.resolve() == t.resolve() for p, t in zip(paths, targets)):
        raise UserError(f"output={output} would overwrite the input sketches; choose another output folder.")
    return targets


def predict(cfg: DictConfig) -> ImageWriter:
    """Colour every sketch in cfg.input; return the writer, which knows what was written and what failed."""
    require_keys(cfg, USAGES["predict"])
    if not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
        raise UserError(f"batch_size={cfg.batch_size!r} must be a positive integer.")
    paths = list_inputs(Path(str(cfg.input)))
    output = Path(str(cfg.output))
    targets = output_paths(paths, output, cfg.keep_extension)
    module = checkpoints.load_module(cfg.ckpt_path)
    output.mkdir(parents=True, exist_ok=True)

    files = SketchFiles(paths, module.hparams.image_size)
    writer = ImageWriter(targets, cfg.keep_size)
    loader = DataLoader(files, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    trainer = Trainer(
        accelerator="auto", devices=1, logger=False, callbacks=[writer],
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=len(loader) > 1,
    )
    trainer.predict(module, loader, return_predictions=False)
    log.info("wrote %d of %d image(s) to %s", writer.written, len(paths), output)
    if writer.failed:
        log.error("%d file(s) could not be read and were skipped:\n  - %s", len(writer.failed), "\n  - ".join(writer.failed))
    return writer


def main(cfg: DictConfig) -> None:
    if predict(cfg).failed:
        sys.exit(SOME_FILES_FAILED)


if __name__ == "__main__":
    command("predict", main)()
