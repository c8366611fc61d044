"""s2p-predict: colour new sketches with a trained model.

    s2p-predict ckpt_path=<run dir or file.ckpt> input=<sketch file or folder> output=<folder>
                [keep_size=true] [hints=<hint file or folder>]

The model and its preprocessing come from the checkpoint alone. Every image file in `input` (not
its subfolders) is decoded like the training sketches, resized to the model's size, coloured in
batches and written to `output/<same name>.png` (colouring.py: the same steps as an app's), resized
back to the sketch's own size as in s2p-app (keep_size=false: at the model's size).

hints= (a model trained with model.net.hint_input=true): a hint file for a single sketch, or a
folder where `<stem>.png` (alpha > 0: a hint in that colour) or `<stem>.json` holds the hints of
the sketch `<stem>.*`; sketches without one are coloured without hints. Each sketch coloured with
hints also gets `output/previews/<name>`: the sketch with its hints painted on | the result.

A file that cannot be used (an unreadable sketch, a bad hint file, a hint file with no sketch of
its name) is reported and skipped; the others still go through and the exit status is then 2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from sketch2photo.checkpoints.read import load_module
from sketch2photo.checks import USAGES
from sketch2photo.colouring import prepare_sketch, preview, require_hint_model, to_picture
from sketch2photo.commands.predict_files import list_inputs, output_paths
from sketch2photo.data.images import BadImageError, open_image
from sketch2photo.errors import SOME_FILES_FAILED, UserError, require_keys
from sketch2photo.hints.files import HINT_SUFFIXES, empty_hints, prepare_hints
from sketch2photo.outputs import check_folder, check_writes

log = logging.getLogger("sketch2photo.predict")
PREVIEWS = "previews"
HINT_FILES = "a hint file (.png with transparency, or .json)"


class SketchFiles(Dataset):
    """Decoded, resized sketches ready for the network. A file that cannot be used yields a white
    placeholder and its error message instead of raising, so one bad file never stops a batch.

    hint_files (given when the model takes hints): sketch index -> its hint file. Every item then
    has "hints", empty for a sketch without a file so that batches stack, and "hinted"."""

    def __init__(self, paths: list[Path], size: int, hint_files: dict[int, Path] | None = None):
        self.paths, self.size, self.hint_files = paths, size, hint_files

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        item = {
            "sketch": torch.ones(3, self.size, self.size),
            "index": index,
            "width": 0,
            "height": 0,
            "error": "",
        }
        hint_file = None
        if self.hint_files is not None:
            hint_file = self.hint_files.get(index)
            item.update(hints=empty_hints(self.size), hinted=hint_file is not None)
        try:
            image = open_image(self.paths[index])
        except BadImageError as error:
            return {**item, "error": str(error)}
        item.update(sketch=prepare_sketch(image, self.size), width=image.width, height=image.height)
        if hint_file is not None:
            try:
                item["hints"] = prepare_hints(
                    hint_file, image.size, self.size, sketch_name=str(self.paths[index])
                )
            except UserError as error:
                item["error"] = str(error)
        return item


class ImageWriter(BasePredictionWriter):
    """Writes each batch as it comes (nothing piles up in memory) and counts what it wrote; the
    preview of each sketch coloured with hints goes to <output>/previews/."""

    def __init__(self, targets: list[Path], keep_size: bool):
        super().__init__(write_interval="batch")
        self.targets, self.keep_size = targets, keep_size
        self.written = 0
        self.previews: list[Path] = []
        self.failed: list[str] = []

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0
    ):
        hinted = batch["hinted"].tolist() if "hinted" in batch else [False] * len(prediction)
        for number, (index, width, height, error) in enumerate(
            zip(
                batch["index"].tolist(),
                batch["width"].tolist(),
                batch["height"].tolist(),
                batch["error"],
                strict=True,
            )
        ):
            if error:
                self.failed.append(error)
                continue
            target = self.targets[index]
            to_picture(prediction[number], (width, height) if self.keep_size else None).save(target)
            self.written += 1
            if hinted[number]:
                path = target.parent / PREVIEWS / target.name
                path.parent.mkdir(exist_ok=True)
                preview(batch["sketch"][number], batch["hints"][number], prediction[number]).save(
                    path
                )
                self.previews.append(path)


def pair_hints(
    hints_path: Path, input_path: Path, paths: list[Path]
) -> tuple[dict[int, Path], list[str]]:
    """(sketch index -> its hint file, an error for each hint file that belongs to no sketch).
    A file: the hints of the single input sketch. A folder: <stem>.png or <stem>.json for the sketch
    <stem>.*."""
    if hints_path.is_file():
        if hints_path.suffix.lower() not in HINT_SUFFIXES:
            raise UserError(f"hints={hints_path} is not {HINT_FILES}.")
        if len(paths) != 1:
            raise UserError(
                f"hints={hints_path} is one hint file but input={input_path} holds {len(paths)} sketches; "
                "give hints=<folder> with a file named after each sketch (cat.png: hints/cat.png or hints/cat.json)."
            )
        return {0: hints_path}, []
    if not hints_path.is_dir():
        raise UserError(
            f"hints={hints_path} does not exist; give {HINT_FILES} or a folder of them."
        )
    if hints_path.resolve() == input_path.resolve():
        raise UserError(
            f"hints={hints_path} is the input folder; put the hint files in a folder of their own, "
            "named after the sketches (cat.png: hints/cat.png or hints/cat.json)."
        )
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(hints_path.iterdir()):
        if path.is_file() and path.suffix.lower() in HINT_SUFFIXES:
            by_stem.setdefault(path.stem, []).append(path)
    if not by_stem:
        raise UserError(
            f"hints={hints_path} holds no hint files (.png with transparency or .json; subfolders are not read)."
        )
    doubles = next((files for files in by_stem.values() if len(files) > 1), None)
    if doubles:
        raise UserError(
            f"{' and '.join(map(str, doubles))} both hold the hints of the sketch {doubles[0].stem}; keep one."
        )
    pairs = {
        index: by_stem[path.stem][0] for index, path in enumerate(paths) if path.stem in by_stem
    }
    stems = {path.stem for path in paths}
    orphans = [
        f"{files[0]}: no sketch named {stem}.* in input={input_path}; hint file skipped"
        for stem, files in by_stem.items()
        if stem not in stems
    ]
    return pairs, orphans


def predict(cfg: DictConfig) -> ImageWriter:
    """Colour every sketch in cfg.input; return the writer, which knows what was written and what
    failed."""
    require_keys(cfg, USAGES["predict"])
    if not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
        raise UserError(f"batch_size={cfg.batch_size!r} must be a positive integer.")
    paths = list_inputs(Path(str(cfg.input)))
    output = Path(str(cfg.output))
    check_folder(output)
    targets = output_paths(paths, output, cfg.keep_extension)
    module = load_module(cfg.ckpt_path)
    hint_files, unmatched = None, []
    if cfg.hints:  # null, or an empty hints=
        require_hint_model(module, f"hints={cfg.hints}")
        hint_files, unmatched = pair_hints(Path(str(cfg.hints)), Path(str(cfg.input)), paths)
        if len(hint_files) < len(paths):
            log.info(
                "%d of %d sketch(es) have no hint file in hints=%s and are coloured without hints",
                len(paths) - len(hint_files),
                len(paths),
                cfg.hints,
            )
    elif module.takes_hints:
        hint_files = {}
    previews = [output / PREVIEWS / targets[index].name for index in hint_files or {}]
    check_writes(
        [*targets, *previews],
        {
            **{path: "the input" for path in paths},
            **{path: "the hint file" for path in (hint_files or {}).values()},
            Path(str(cfg.ckpt_path)): "ckpt_path",
        },
        output,
    )
    output.mkdir(parents=True, exist_ok=True)

    files = SketchFiles(paths, module.hparams.image_size, hint_files)
    writer = ImageWriter(targets, cfg.keep_size)
    writer.failed.extend(unmatched)
    loader = DataLoader(files, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    trainer = Trainer(
        accelerator="auto",
        devices=1,
        logger=False,
        callbacks=[writer],
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=len(loader) > 1 and sys.stdout.isatty(),  # no bar lines in a log
    )
    trainer.predict(module, loader, return_predictions=False)
    log.info("wrote %d of %d image(s) to %s", writer.written, len(paths), output)
    if writer.previews:
        log.info(
            "%d coloured with hints: previews (sketch and hints | result) in %s",
            len(writer.previews),
            output / PREVIEWS,
        )
    if writer.failed:
        log.error(
            "%d file(s) could not be used and were skipped:\n  - %s",
            len(writer.failed),
            "\n  - ".join(writer.failed),
        )
    return writer


def main(cfg: DictConfig) -> None:
    if predict(cfg).failed:
        sys.exit(SOME_FILES_FAILED)
