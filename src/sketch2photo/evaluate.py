"""s2p-eval: score a checkpoint (or a trivial baseline) on held-out pairs.

    s2p-eval ckpt_path=outputs/train/<run>/checkpoints/best.ckpt            # its own test split
    s2p-eval ckpt_path=... data.data_dir=other/pairs subset=all             # any paired folder
    s2p-eval baseline=mean data=sketch2photo data.folds=5 data.fold=0 subset=val

Writes metrics.json (the mean of each metric), per_image.csv and grid.png (sketch | output | target)
to its run dir. The model and the data settings it was trained with come from the checkpoint;
`data.*` overrides on the command line replace single settings.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from sketch2photo.cli import hydra_command
from sketch2photo.errors import UserError

log = logging.getLogger("sketch2photo.eval")
SUBSETS = ("test", "val", "train", "all")
BASELINES = ("mean", "white")


class ConstantImage(nn.Module):
    """A trivial baseline: the same image whatever the sketch."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.register_buffer("image", image)

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        return self.image.expand(len(sketch), -1, -1, -1)


def baseline_model(kind: str, datamodule) -> nn.Module:
    """mean: the per-pixel mean of the training targets of this split; white: all ones ([-1, 1] range)."""
    from sketch2photo.data.images import to_model_range

    photos = datamodule.sets["train"].photos
    if kind == "mean":
        return ConstantImage(to_model_range(photos).mean(dim=0, keepdim=True))
    return ConstantImage(torch.ones(1, *photos.shape[1:]))


def evaluate(cfg: DictConfig) -> dict[str, float]:
    from sketch2photo.cli import use_hydra_logging_for_lightning
    from sketch2photo.data.datamodule import PairedSketchDataModule
    from sketch2photo.metrics import image_metrics, per_image_metrics
    from sketch2photo.module import load_trained_module, read_checkpoint
    from sketch2photo.run_record import write_record
    from sketch2photo.samples import sample_grid

    use_hydra_logging_for_lightning()
    if cfg.subset not in SUBSETS:
        raise UserError(f"subset={cfg.subset!r} must be one of {', '.join(SUBSETS)}.")
    if bool(cfg.ckpt_path) == bool(cfg.baseline):
        raise UserError("give exactly one of ckpt_path=<file.ckpt> or baseline=mean|white.")
    if cfg.baseline and cfg.baseline not in BASELINES:
        raise UserError(f"baseline={cfg.baseline!r} must be one of {', '.join(BASELINES)}.")
    if cfg.baseline == "mean" and cfg.subset == "all":
        raise UserError("baseline=mean subset=all would score the mean of all pairs on those same pairs; "
                        "use subset=test or subset=val, whose mean comes from the training pairs.")

    checkpoint = read_checkpoint(cfg.ckpt_path) if cfg.ckpt_path else None
    settings = data_settings(cfg, checkpoint)
    if cfg.subset == "all":
        settings["split"] = "none"
    datamodule = PairedSketchDataModule(**settings)
    datamodule.setup("test")
    stage = "train" if cfg.subset == "all" else cfg.subset
    if not datamodule.has(stage):
        raise UserError(f"subset={cfg.subset}: the data settings give no {stage} pairs; try subset=all.")
    model = load_trained_module(cfg.ckpt_path, checkpoint) if checkpoint else baseline_model(cfg.baseline, datamodule)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()

    dataset = datamodule.sets[stage]
    metrics = image_metrics(f"{cfg.subset}/").to(device)
    rows, grid_batch = [], None
    with torch.inference_mode():
        for batch in DataLoader(dataset, batch_size=cfg.batch_size):
            batch = datamodule.on_after_batch_transfer({k: v.to(device) for k, v in batch.items()}, 0)
            output = model(batch["sketch"]).contiguous()
            metrics.update(output, batch["photo"])
            per_image = per_image_metrics(output, batch["photo"])
            for i, index in enumerate(batch["index"].tolist()):
                pair = dataset.pairs[index]
                rows.append({"name": pair.name, "sketch": str(pair.sketch), "photo": str(pair.photo),
                             **{key: float(values[i]) for key, values in per_image.items()}})
            if grid_batch is None:
                count = cfg.grid_size
                grid_batch = (batch["sketch"][:count], output[:count], batch["photo"][:count])
    means = {name: float(value) for name, value in metrics.compute().items()}

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    write_record(out_dir, {"status": "ok", "source": cfg.ckpt_path or f"baseline={cfg.baseline}",
                           "subset": cfg.subset, "pairs": len(rows), "data": settings, "metrics": means})
    with open(out_dir / "per_image.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    from torchvision.utils import save_image

    save_image(sample_grid(*grid_batch), out_dir / "grid.png")
    log.info("%d pairs: %s", len(rows), ", ".join(f"{k}={v:.4g}" for k, v in means.items()))
    log.info("wrote %s/{metrics.json,per_image.csv,grid.png}", out_dir)
    return means


def data_settings(cfg: DictConfig, checkpoint: dict | None) -> dict:
    """The checkpoint's data settings (else the composed data config), with the data.* keys the
    user typed on the command line on top."""
    composed = OmegaConf.to_container(cfg.data, resolve=True)
    composed.pop("_target_", None)
    if checkpoint is None:
        return composed
    settings = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    if not settings:
        raise UserError(f"ckpt_path={cfg.ckpt_path} has no data settings; give them with data=... data.data_dir=...")
    for override in HydraConfig.get().overrides.task:
        key = override.lstrip("+~").split("=", 1)[0]
        if key.startswith("data."):
            settings[key.split(".")[1]] = composed[key.split(".")[1]]
    return settings


@hydra_command("eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
