"""Helpers shared by the tests: the tiny training settings, composing configs as the CLI does,
running the installed commands, and a tiny trained checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from sketch2photo.config import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "sketch2photo"
BIN = Path(sys.executable).parent

# Small and quick: every in-process fit in the suite uses these unless a test says otherwise.
TINY = [
    "data.image_size=32",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.progress_bar=null",
    "callbacks.sample_grids.num_samples=4",
    "callbacks.sample_grids.every_n_epochs=1",
]


def compose_config(run_dir: Path, overrides: list[str], config_name: str = "train") -> DictConfig:
    """Compose like the CLI does, with the Hydra runtime pointed at run_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run an installed console script (s2p-*) in a subprocess and capture its output."""
    command = [str(BIN / args[0]), *args[1:]]
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def tiny_unet_checkpoint(run: Path, data_dir: Path, *overrides: str) -> Path:
    """A 32 px U-Net (depth 2, width 8: not the default model) trained for 1 epoch in `run`."""
    from sketch2photo.commands.train import train

    unet = ["trainer.max_epochs=1", "model=unet", "model.net.depth=2", "model.net.width=8", *overrides]
    train(compose_config(run, [*TINY, f"data.data_dir={data_dir}", "data.synthetic_pairs=null", *unet]))
    return run / "checkpoints" / "last.ckpt"


class PlainSGD(torch.optim.SGD):
    """An optimizer outside torch.optim, as a user's own config may name one."""
