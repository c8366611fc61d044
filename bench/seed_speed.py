"""seed_speed: the project's training on the seed setup against a bare PyTorch loop.

Same model, same 20 pairs (the real ones when ../shared is there, else synthetic), full batch,
128 px, same thread count, same number of steps; the two alternate in one process and the table
shows medians of the repeats. The project side is `experiment=seed` exactly as users run it
(s2p-train's in-process entry), timed from the start of epoch W to the start of epoch W + N, so
every per-epoch cost (logging, checkpoints, sample grids, history) is included.

    python bench/seed_speed.py [--steps 40] [--repeats 5] [--levers]

--levers also times single changes to the project's defaults (channels_last off, torch.compile,
bf16 precision) and to the bare loop (channels_last + inplace ReLU), to show which levers help.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
REAL = ROOT.parent / "shared" / "data" / "sketch2photo"
WARMUP = 3


class EpochStarts(Callback):
    """Wall-clock time at the start of every training epoch."""

    times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        EpochStarts.times.append(time.perf_counter())


def seed_network(inplace: bool = False) -> nn.Module:
    """The student project's autoencoder, as it wrote it."""
    return nn.Sequential(
        nn.Sequential(
            nn.Conv2d(3, 64, 4, 2, 1),
            nn.ReLU(inplace),
            nn.Conv2d(64, 128, 4, 2, 1),
            nn.ReLU(inplace),
        ),
        nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1),
            nn.ReLU(inplace),
            nn.ConvTranspose2d(64, 3, 4, 2, 1),
            nn.Tanh(),
        ),
    )


def bare_loop(data_dir: Path, steps: int, channels_last: bool = False) -> tuple[float, float]:
    """The seed's training loop on the same pairs (preprocessed like the project).
    (steps per second, seconds from the call to the first timed step)."""
    called = time.perf_counter()
    from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
    from sketch2photo.data.images import sketch_to_input, to_model_range

    datamodule = PairedSketchDataModule(data_dir=str(data_dir), image_size=128, split="none")
    datamodule.setup()
    x = sketch_to_input(datamodule.sets["train"].sketches).contiguous()
    y = to_model_range(datamodule.sets["train"].photos)
    model = seed_network(inplace=channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x, y = (
            x.contiguous(memory_format=torch.channels_last),
            y.contiguous(memory_format=torch.channels_last),
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.MSELoss()
    for step in range(WARMUP + steps):
        if step == WARMUP:
            started = time.perf_counter()
        model.train()
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - started), started - called


def project(data_dir: Path, steps: int, *overrides: str) -> tuple[float, float]:
    """`s2p-train experiment=seed` in-process: (epochs = steps per second, seconds from the call to
    the first timed step, which includes building the data, the trainer and any compilation)."""
    called = time.perf_counter()
    from helpers import compose_config
    from sketch2photo.commands.train import train

    run_dir = Path(tempfile.mkdtemp(prefix="seed_speed-"))
    cfg = compose_config(
        run_dir,
        [
            "experiment=seed",
            f"data.data_dir={data_dir}",
            f"trainer.max_epochs={WARMUP + steps + 1}",
            "+callbacks.epoch_starts._target_=__main__.EpochStarts",
            *overrides,
        ],
    )
    EpochStarts.times = []
    train(cfg)
    times = EpochStarts.times
    return steps / (times[WARMUP + steps] - times[WARMUP]), times[WARMUP] - called


def dataset() -> Path:
    if (REAL / "testA").is_dir():
        return REAL
    from sketch2photo.data.corpora.synthetic import write_dataset

    return write_dataset(Path(tempfile.mkdtemp()) / "synthetic", num_pairs=20, size=256)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--levers", action="store_true")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    data_dir = dataset()
    quiet = [
        "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    variants = {
        "bare loop (the seed's)": lambda: bare_loop(data_dir, args.steps),
        "s2p-train experiment=seed": lambda: project(data_dir, args.steps, *quiet),
    }
    if args.levers:
        variants.update(
            {
                "bare + channels_last + inplace ReLU": lambda: bare_loop(
                    data_dir, args.steps, channels_last=True
                ),
                "project, model.channels_last=false": lambda: project(
                    data_dir, args.steps, *quiet, "model.channels_last=false"
                ),
                "project, model.compile=true": lambda: project(
                    data_dir, args.steps, *quiet, "model.compile=true"
                ),
                "project, trainer.precision=bf16-mixed": lambda: project(
                    data_dir, args.steps, *quiet, "trainer.precision=bf16-mixed"
                ),
                "project, default progress bar": lambda: project(data_dir, args.steps),
                "project, model=unet (channels_last off)": lambda: project(
                    data_dir, args.steps, *quiet, "model=unet"
                ),
                "project, model=unet model.channels_last=true": lambda: project(
                    data_dir, args.steps, *quiet, "model=unet", "model.channels_last=true"
                ),
            }
        )
    rates = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():  # alternate, so drifting load hits every variant alike
            rates[name].append(run())
    baseline = statistics.median(rate for rate, _ in rates["bare loop (the seed's)"])
    print(
        f"\nseed setup: {data_dir}, 20 pairs, full batch, 128 px, {torch.get_num_threads()} torch threads, "
        f"{args.steps} timed steps after {WARMUP} warm-up, median of {args.repeats}"
    )
    print(f"{'variant':<42} {'steps/s':>8} {'ratio':>6} {'warm-up s':>10}   steps/s of each repeat")
    for name, results in rates.items():
        median = statistics.median(rate for rate, _ in results)
        warmup = statistics.median(seconds for _, seconds in results)
        each = ", ".join(f"{rate:.2f}" for rate, _ in results)
        print(f"{name:<42} {median:>8.2f} {median / baseline:>6.2f} {warmup:>10.1f}   {each}")


if __name__ == "__main__":
    main()
