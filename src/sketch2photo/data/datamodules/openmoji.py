"""OpenMojiDataModule (data=openmoji): OpenMoji's glyphs as sketch/colour pairs, rendered once into
data.data_dir (data/corpora/openmoji.py) at data.image_size in data.sketch_style, then read like any
folder of pairs: decoded into the disk cache, trainA/B for training and validation, testA/B the
fixed test split."""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock

from sketch2photo.data.corpora.openmoji import SKETCH_STYLES, write_corpus
from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.errors import UserError


class OpenMojiDataModule(PairedSketchDataModule):
    def __init__(
        self,
        sketch_style: str = "exact",
        render_workers: int | None = None,
        train_glyphs: int | None = None,
        **settings,
    ):
        if sketch_style not in SKETCH_STYLES:
            raise UserError(
                f"data.sketch_style={sketch_style!r} must be one of {', '.join(SKETCH_STYLES)}."
            )
        super().__init__(**settings)
        self.sketch_style, self.render_workers = sketch_style, render_workers
        self.train_glyphs = train_glyphs

    def prepare_data(self) -> None:
        """Render the corpus unless it is there. One process renders; the others (DDP ranks, sweep
        jobs started together) wait for it."""
        folder = Path(self.data_dir)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(folder.parent / f".{folder.name}.lock"):
            write_corpus(
                folder,
                self.hparams.image_size,
                self.sketch_style,
                self.render_workers,
                self.train_glyphs,
            )

    def setup(self, stage: str | None = None) -> None:
        if not self.sets:
            self.prepare_data()  # also when used outside a Trainer
        super().setup(stage)
