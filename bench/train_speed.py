"""train_speed: s2p-train's hint U-Net, images per second, against a bare training step of the same
network measured in the same run.

The run: model=unet with cv_unet_hints' network options (the background as an input and painted
white, hints spread over their regions, the correction bounded to 0.25), default depth 5 and width
32, augmentation on, 128 px, batch 16, on synthetic pairs (--pairs of them; 10% val, 10% test,
not tested) or on the data that the overrides after `--` name (e.g. data=openmoji). s2p-train runs
in this process (commands/train.py) as users run it, with its checkpoints, validation, logger and
sample grids; its progress bar off.

The baseline, "bare step": the U-Net inside (8 input channels) on one fixed batch of the same size:
forward, the run's loss, backward, Adam; no Lightning, no data, no augmentation, no hints, no region
fills; in float32 and under bf16 autocast.

For s2p-train two rates: "steps", training images over the time from the start of each epoch's
first batch to the end of its last (what the progress bar shows), and "epochs", training images
over the wall time of whole epochs (validation, checkpoints and the rest included). Epoch 1 is a
warm-up; --epochs after it are timed. The variants alternate, so drifting load hits each alike;
the table shows medians of --repeats.

    python bench/train_speed.py [--repeats 3] [--epochs 3] [--pairs 640] [--before]
                                [--profile] [-- extra s2p-train overrides]

--before adds s2p-train with the region fills as they were before issue 23 (tests/frozen_fills.py:
one pixel a step), on float32 as then. --profile runs s2p-train once more with
trainer.profiler=simple and prints the slowest actions.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
HINT_UNET = [
    "model=unet",
    "model.net.hint_input=true",
    "model.net.background_input=true",
    "model.net.background_fill=true",
    "model.net.hint_residual=true",
    "model.net.hint_correction=0.25",
    "data.augment.enabled=true",
    "data.image_size=128",
    "data.batch_size=16",
]
QUIET = [
    "callbacks.progress_bar=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "test=false",
]
BARE_STEPS = 12


class BatchTimes(Callback):
    """Wall-clock times of every training epoch's start and of its first batch's start and last
    batch's end, and the images it trained on; class attributes, since s2p-train instantiates it
    from the config (callbacks.batch_times)."""

    epochs: list[float] = []
    first: list[float | None] = []
    last: list[float | None] = []
    images: list[int] = []

    @classmethod
    def reset(cls) -> None:
        cls.epochs, cls.first, cls.last, cls.images = [], [], [], []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epochs.append(time.perf_counter())
        self.first.append(None)
        self.last.append(None)
        self.images.append(0)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first[-1] is None:
            self.first[-1] = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.last[-1] = time.perf_counter()
        self.images[-1] += len(batch["sketch"])


def compose(run_dir: Path, overrides: list[str]):
    from helpers import compose_config

    return compose_config(run_dir, [*HINT_UNET, *QUIET, *overrides])


def s2p_train(overrides: list[str], epochs: int, frozen: bool = False) -> dict[str, float]:
    """One in-process s2p-train run: {"steps": images/s, "epochs": images/s}."""
    from sketch2photo.commands.train import train

    run_dir = Path(tempfile.mkdtemp(prefix="train_speed-"))
    cfg = compose(
        run_dir,
        [
            f"trainer.max_epochs={epochs + 2}",
            f"+callbacks.batch_times._target_={__name__}.BatchTimes",
            *overrides,
        ],
    )
    BatchTimes.reset()
    try:
        with frozen_fills() if frozen else contextlib.nullcontext():
            train(cfg)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    timed = range(1, epochs + 1)  # epoch 0 warms up; the next one's start ends the timing
    images = sum(BatchTimes.images[e] for e in timed)
    return {
        "steps": images / sum(BatchTimes.last[e] - BatchTimes.first[e] for e in timed),
        "epochs": images / (BatchTimes.epochs[epochs + 1] - BatchTimes.epochs[1]),
    }


@contextlib.contextmanager
def frozen_fills():
    """The region fills as they were before issue 23, where the sampler and the network look
    them up."""
    import frozen_fills as frozen
    from sketch2photo.hints import simulate
    from sketch2photo.nets import conditioning

    replaced = {
        (simulate, "background_mask"): frozen.background_mask,
        (simulate, "region_centres"): frozen.region_centres,
        (simulate, "paint_patches"): lambda *a, largest=None, **k: frozen.paint_patches(*a, **k),
        (conditioning, "background_and_regions"): frozen.background_and_regions,
        (conditioning, "spread_hints"): frozen.spread_hints,
    }
    kept = {key: getattr(*key) for key in replaced}
    for (module, name), function in replaced.items():
        setattr(module, name, function)
    try:
        yield
    finally:
        for (module, name), function in kept.items():
            setattr(module, name, function)


def bare_step(overrides: list[str], precision: str) -> dict[str, float]:
    """The U-Net inside the run's network on a fixed batch: {"steps": images/s}."""
    from hydra.utils import instantiate

    cfg = compose(Path(tempfile.mkdtemp(prefix="train_speed-")), overrides)
    torch.manual_seed(0)
    module = instantiate(cfg.model, _recursive_=False, _convert_="all")
    network = module.net.generator
    batch, size = cfg.data.batch_size, cfg.data.image_size
    channels = network.down[0][0].in_channels
    inputs = (torch.rand(batch, channels, size, size) * 2 - 1).contiguous(
        memory_format=module.memory_format
    )
    targets = (torch.rand(batch, 3, size, size) * 2 - 1).contiguous(
        memory_format=module.memory_format
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    network.train()
    for step in range(3 + BARE_STEPS):
        if step == 3:
            started = time.perf_counter()
        optimizer.zero_grad()
        with autocast:
            loss = module.loss(network(inputs), targets)
        loss.backward()
        optimizer.step()
    return {"steps": BARE_STEPS * batch / (time.perf_counter() - started)}


def profile(overrides: list[str]) -> None:
    """s2p-train once with Lightning's simple profiler; its report goes to the log (stdout)."""
    from sketch2photo.commands.train import train

    run_dir = Path(tempfile.mkdtemp(prefix="train_speed-"))
    logging.getLogger("lightning.pytorch.profilers").setLevel(logging.INFO)
    try:
        train(compose(run_dir, ["trainer.max_epochs=3", "trainer.profiler=simple", *overrides]))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def synthetic_pairs(count: int) -> Path:
    from sketch2photo.data.corpora.synthetic import write_dataset

    folder = Path(tempfile.gettempdir()) / f"train_speed-synthetic-{count}-128"
    return write_dataset(folder, num_pairs=count, size=128, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after a warm-up one")
    parser.add_argument("--pairs", type=int, default=640, help="synthetic pairs (80%% train)")
    parser.add_argument("--before", action="store_true", help="also the fills before issue 23")
    parser.add_argument("--profile", action="store_true", help="also a simple-profiler run")
    parser.add_argument("overrides", nargs="*", help="after --: s2p-train overrides")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = [f"data.data_dir={synthetic_pairs(args.pairs)}"]
    if any(o.startswith(("data=", "data.data_dir=")) for o in args.overrides):
        data = []
    overrides = [*data, *args.overrides]
    from sketch2photo.precision import resolve_precision

    auto = resolve_precision("auto", "auto")
    variants = {
        "bare step, 32-true": lambda: bare_step(overrides, "32-true"),
        "bare step, bf16-mixed": lambda: bare_step(overrides, "bf16-mixed"),
        f"s2p-train (precision auto: {auto})": lambda: s2p_train(overrides, args.epochs),
    }
    for precision in ("32-true", "bf16-mixed"):
        if precision != auto:
            variants[f"s2p-train trainer.precision={precision}"] = lambda p=precision: s2p_train(
                [*overrides, f"trainer.precision={p}"], args.epochs
            )
    if args.before:
        variants["s2p-train, fills before issue 23, 32-true"] = lambda: s2p_train(
            [*overrides, "trainer.precision=32-true"], args.epochs, frozen=True
        )
    results = {name: [] for name in variants}
    loads = []
    for _ in range(args.repeats):
        for name, run in variants.items():
            loads.append(os.getloadavg()[0])
            results[name].append(run())
    baseline = statistics.median(r["steps"] for r in results["bare step, 32-true"])
    print(
        f"\nhint U-Net, 128 px, batch 16, {torch.get_num_threads()} torch threads, "
        f"{args.epochs} timed epochs; medians of {args.repeats}; 1-minute load average "
        f"{min(loads):.1f}..{max(loads):.1f} (median {statistics.median(loads):.1f})"
    )
    print(f"overrides: {' '.join(overrides)}")
    print(
        f"{'variant':<46} {'steps':>7} {'ratio':>6} {'epochs':>7} {'ratio':>6}   "
        "images/s; ratio to the bare float32 step"
    )
    for name, runs in results.items():
        steps = statistics.median(r["steps"] for r in runs)
        line = f"{name:<46} {steps:>7.1f} {steps / baseline:>6.2f}"
        if "epochs" in runs[0]:
            epochs = statistics.median(r["epochs"] for r in runs)
            line += f" {epochs:>7.1f} {epochs / baseline:>6.2f}"
        else:
            line += f" {'':>7} {'':>6}"
        each = ", ".join(f"{r['steps']:.1f}" for r in runs)
        print(f"{line}   steps of each: {each}")
    if args.profile:
        print("\ns2p-train with trainer.profiler=simple:")
        profile(overrides)


if __name__ == "__main__":
    main()
