"""s2p-eval: score a checkpoint (or a trivial baseline) on held-out pairs.

    s2p-eval ckpt_path=outputs/train/<run>/checkpoints/best.ckpt          # its own test split
    s2p-eval ckpt_path=... data.data_dir=other/pairs subset=all           # any paired folder
    s2p-eval baseline=mean data=sketch2photo data.folds=5 data.fold=0 subset=val

    s2p-eval ckpt_path=... hints=0,1,3,10,30                              # a model that takes hints

Writes metrics.json (the mean of each metric), per_image.csv and grid.png (sketch | output | target)
to its run dir. The model and the data settings it was trained with come from the checkpoint;
`data.*` overrides on the command line replace single settings. The pairs go through
`Trainer.test`, the module's own test step and metrics; Lightning picks the device.

With hints=..., every held-out image is scored with each number of simulated hints (drawn from its
target as in training, seeded by hints_seed) and each placement in hint_placements: a row of
metrics each, in hints.csv and hints.json, and hints.png plots PSNR against the number of hints.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch import Callback, Trainer
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchvision.utils import save_image

from sketch2photo.checkpoints.read import data_settings as saved_data_settings
from sketch2photo.checkpoints.read import load_module, read_checkpoint
from sketch2photo.checks import check_eval_config
from sketch2photo.colouring import require_hint_model
from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.data.images import to_model_range
from sketch2photo.errors import UserError
from sketch2photo.hints import with_hints
from sketch2photo.metrics import lpips_network, per_image_metrics
from sketch2photo.module import ColorizationModule
from sketch2photo.runs.record import write_record
from sketch2photo.runs.run_dir import typed_overrides
from sketch2photo.runs.sample_grids import sample_grid

log = logging.getLogger("sketch2photo.eval")
NOT_METRICS = ("loss", "placement", "hints")  # test/loss: a baseline has no use for it


class ConstantImage(nn.Module):
    """A trivial baseline: the same image whatever the sketch."""

    size_multiple = 1
    takes_hints = False

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.register_buffer("image", image)

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        return self.image.expand(len(sketch), -1, -1, -1)


def baseline_module(kind: str, datamodule: PairedSketchDataModule) -> ColorizationModule:
    """mean: the per-pixel mean of the training targets of this split; white: all ones ([-1, 1]
    range)."""
    train = datamodule.sets["train"]
    shape = train.all_photos.shape[1:]
    if kind == "mean":  # a chunk at a time: the float copy of a large set would not fit in RAM
        image = sum(
            to_model_range(chunk.photos).sum(dim=0, keepdim=True) for chunk in train.chunks()
        ) / len(train)
    else:
        image = torch.ones(1, *shape)
    return ColorizationModule(net=ConstantImage(image), image_size=shape[-1], channels_last=False)


class PerImageRows(Callback):
    """One row per pair (file names and each metric) and the first batch for grid.png."""

    def __init__(self, grid_size: int):
        self.grid_size = grid_size
        self.rows: list[dict] = []
        self.grid: tuple[torch.Tensor, ...] | None = None

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        pairs = trainer.datamodule.sets["test"].pairs
        per_image = per_image_metrics(outputs, batch["photo"], pl_module.lpips)
        for i, index in enumerate(batch["index"].tolist()):
            pair = pairs[index]
            self.rows.append(
                {
                    "name": pair.name,
                    "sketch": str(pair.sketch),
                    "photo": str(pair.photo),
                    **{key: float(values[i]) for key, values in per_image.items()},
                }
            )
        if self.grid is None:
            count = self.grid_size
            sketches = batch["sketch"][:count]
            if "hints" in batch:
                sketches = with_hints(sketches, batch["hints"][:count])
            self.grid = (sketches, outputs[:count], batch["photo"][:count])


def evaluate(cfg: DictConfig) -> dict[str, float]:
    check_eval_config(cfg)
    checkpoint = read_checkpoint(cfg.ckpt_path) if cfg.ckpt_path else None
    settings = data_settings(cfg, checkpoint)
    if cfg.subset == "all":
        settings["split"] = "none"
    datamodule = PairedSketchDataModule(**{**settings, "batch_size": cfg.batch_size})
    datamodule.setup("test")
    stage = "train" if cfg.subset == "all" else cfg.subset
    if not datamodule.has(stage):
        raise UserError(
            f"subset={cfg.subset}: the data settings give no {stage} pairs; try subset=all."
        )
    datamodule.test_on(stage)
    model = (
        load_module(cfg.ckpt_path, checkpoint)
        if checkpoint
        else baseline_module(cfg.baseline, datamodule)
    )
    if cfg.get("lpips_weights"):
        model.score_lpips(lpips_network(cfg.lpips_weights))
    counts = hint_counts(cfg)
    if counts:
        require_hint_model(model, f"hints={cfg.hints} for ckpt_path={cfg.ckpt_path}")
    runs = [(placement, count) for placement in cfg.hint_placements for count in counts] or [
        (None, 0)
    ]
    # how hints are simulated: s2p-eval's data.hints.* (the defaults unless typed), not the training
    # run's
    protocol = {
        key: value
        for key, value in OmegaConf.to_container(cfg.data.hints, resolve=True).items()
        if key not in ("enabled", "seed")
    }

    hint_rows, image_rows, grid = [], [], None
    for placement, count in runs:
        if model.takes_hints:
            datamodule.evaluate_with_hints(count, placement or "random", cfg.hints_seed, protocol)
        means, rows = score(model, datamodule, cfg)
        label = {} if placement is None else {"placement": placement, "hints": count}
        hint_rows.append({**label, **{name.split("/")[-1]: value for name, value in means.items()}})
        image_rows += [{**label, **row} for row in rows.rows]
        grid = (
            rows.grid if grid is None or placement == runs[0][0] else grid
        )  # the first placement's last count
        log.info(
            "%s%d pairs: %s",
            f"{placement}, {count} hint(s): " if placement else "",
            len(rows.rows),
            ", ".join(f"{k}={v:.4g}" for k, v in means.items()),
        )
    means = {
        f"{cfg.subset}/{name}": value
        for name, value in hint_rows[0].items()
        if name not in NOT_METRICS
    }

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "status": "ok",
        "source": cfg.ckpt_path or f"baseline={cfg.baseline}",
        "subset": cfg.subset,
        "pairs": len(image_rows) // len(runs),
        "data": settings,
        "metrics": means,
    }
    if counts:
        record["hints"], record["hint_protocol"] = hint_rows, protocol
        write_hint_table(out_dir, hint_rows, cfg)
    write_record(out_dir, record)
    write_csv(out_dir / "per_image.csv", image_rows)
    save_image(sample_grid(*grid), out_dir / "grid.png")
    log.info(
        "wrote %s/{metrics.json,per_image.csv,grid.png%s}",
        out_dir,
        ",hints.csv,hints.json,hints.png" if counts else "",
    )
    return means


def hint_counts(cfg: DictConfig) -> list[int]:
    if cfg.hints is None:
        return []
    return list(cfg.hints) if OmegaConf.is_list(cfg.hints) else [cfg.hints]


def score(
    model: ColorizationModule, datamodule: PairedSketchDataModule, cfg: DictConfig
) -> tuple[dict, PerImageRows]:
    """The mean of each metric over the test set, and its per-image rows, through Trainer.test."""
    rows = PerImageRows(cfg.grid_size)
    trainer = Trainer(
        accelerator="auto",
        devices=1,
        logger=False,
        callbacks=[rows],
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    tested = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    means = {
        f"{cfg.subset}/{name.removeprefix('test/')}": float(value)
        for name, value in tested.items()
        if name.startswith("test/") and name.removeprefix("test/") not in NOT_METRICS
    }
    return means, rows


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_hint_table(out_dir: Path, rows: list[dict], cfg: DictConfig) -> None:
    """hints.csv, hints.json and hints.png: PSNR against the number of hints, a line per
    placement."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    write_csv(out_dir / "hints.csv", rows)
    (out_dir / "hints.json").write_text(json.dumps(rows, indent=2) + "\n")
    figure, axes = pyplot.subplots(figsize=(5, 3.5), dpi=120)
    for placement in cfg.hint_placements:
        mine = [row for row in rows if row["placement"] == placement]
        axes.plot(
            [row["hints"] for row in mine],
            [row["psnr"] for row in mine],
            marker="o",
            label=placement,
        )
    axes.set_xscale("symlog", linthresh=1)  # log x that keeps 0 hints
    axes.set_xlabel("simulated hints per image")
    axes.set_ylabel(f"{cfg.subset} PSNR (dB)")
    axes.set_title(Path(str(cfg.ckpt_path)).name, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(title="placement")
    figure.tight_layout()
    figure.savefig(out_dir / "hints.png")
    pyplot.close(figure)


def data_settings(cfg: DictConfig, checkpoint: dict | None) -> dict:
    """The checkpoint's data settings (else the composed data config), with the data.* keys the
    user typed on the command line on top."""
    composed = OmegaConf.to_container(cfg.data, resolve=True)
    composed.pop("_target_", None)
    if checkpoint is None:
        return composed
    settings = saved_data_settings(checkpoint, cfg.ckpt_path)
    for override in typed_overrides():
        parts = override.key_or_group.split(".")
        if parts[0] == "data" and len(parts) > 1:
            settings[parts[1]] = composed[parts[1]]
    return settings


main = evaluate
