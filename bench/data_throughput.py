"""data_throughput: is data loading off the critical path on a large dataset?

On N synthetic pairs (default 10,000 at 128 px) it reports:
  - the cache build: the first decode of all 2N files into uint8 tensors;
  - the epoch time of training the seed model (batch 64);
  - the share of step time spent waiting for data: Lightning's SimpleProfiler times
    `train_dataloader_next` (fetching a batch) and `run_training_batch` (the step) separately;
  - with --rss, the peak RSS of building the cache at 256 px for N/4, N/2 and N pairs, each in a
    fresh process, to show that memory grows linearly with N.

    python bench/data_throughput.py [--pairs 10000] [--size 128] [--rss]

Datasets are generated once into bench/results/ (git-ignored) and reused.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "bench" / "results"


def make_dataset(pairs: int, size: int) -> Path:
    from sketch2photo.data.corpora.synthetic import write_dataset

    started = time.perf_counter()
    path = write_dataset(RESULTS / f"synthetic-{pairs}-{size}", num_pairs=pairs, size=size)
    print(
        f"dataset {path}: ready in {time.perf_counter() - started:.0f} s (generated once, then reused)"
    )
    return path


def cache_build(data_dir: Path, size: int) -> dict:
    """Decode everything in this process; time and peak RSS."""
    from sketch2photo.data.datamodules.pairs import PairedSketchDataModule

    started = time.perf_counter()
    datamodule = PairedSketchDataModule(data_dir=str(data_dir), image_size=size, split="none")
    datamodule.setup()
    seconds = time.perf_counter() - started
    train = datamodule.sets["train"]
    cached = train.all_sketches.numel() + train.all_photos.numel()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "pairs": len(train),
        "seconds": seconds,
        "cache_mib": cached / 2**20,
        "peak_rss_mib": peak,
    }


def train_one_epoch(data_dir: Path, size: int) -> dict:
    from helpers import compose_config
    from sketch2photo.commands.train import train

    run_dir = Path(tempfile.mkdtemp(prefix="throughput-"))
    cfg = compose_config(
        run_dir,
        [
            "data=sketch2photo",
            f"data.data_dir={data_dir}",
            f"data.image_size={size}",
            "data.split=none",
            "data.batch_size=64",
            "trainer.max_epochs=1",
            f"trainer.profiler={{_target_: lightning.pytorch.profilers.SimpleProfiler, dirpath: '{run_dir}', filename: profile}}",
            "callbacks.progress_bar=null",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
        ],
    )
    started = time.perf_counter()
    train(cfg)
    total = time.perf_counter() - started
    report = next(run_dir.glob("fit-profile*.txt"), None)
    text = report.read_text() if report else ""
    return {
        "total_s": total,
        "fetch": _profiled(text, "train_dataloader_next"),
        "step": _profiled(text, "run_training_batch"),
    }


def _profiled(report: str, action: str) -> tuple[float, int]:
    """(total seconds, calls) of one action in SimpleProfiler's table."""
    for line in report.splitlines():
        if action in line:
            cells = [c.strip() for c in line.split("|") if c.strip()]
            return float(cells[-2]), int(float(cells[-3]))
    raise SystemExit(f"SimpleProfiler's report has no {action!r} row:\n{report}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument(
        "--rss", action="store_true", help="also peak RSS at 256 px for N/4, N/2, N"
    )
    parser.add_argument("--cache-only", type=str, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()
    if args.cache_only:
        print(json.dumps(cache_build(Path(args.cache_only), args.size)))
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    data_dir = make_dataset(args.pairs, args.size)
    build = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--cache-only", str(data_dir), "--size", str(args.size)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()[-1]
    )
    print(
        f"\ncache build: {build['pairs']} pairs ({2 * build['pairs']} files) at {args.size} px in {build['seconds']:.1f} s "
        f"= {build['pairs'] / build['seconds']:.0f} pairs/s; cache {build['cache_mib']:.0f} MiB"
    )

    epoch = train_one_epoch(data_dir, args.size)
    fetch_s, batches = epoch["fetch"]
    step_s, _ = epoch["step"]
    print(
        f"training the seed model, batch 64: {batches} batches; epoch (fetch + steps) {fetch_s + step_s:.1f} s; "
        f"whole run incl. cache build and startup {epoch['total_s']:.1f} s"
    )
    print(
        f"waiting for data: {fetch_s:.2f} s of {fetch_s + step_s:.1f} s = {100 * fetch_s / (fetch_s + step_s):.2f}% "
        f"of step time ({1000 * fetch_s / batches:.2f} ms per batch)"
    )

    if args.rss:
        print("\npeak RSS building the cache at 256 px (fresh process each):")
        print(f"{'pairs':>7} {'cache MiB':>10} {'peak RSS MiB':>13} {'RSS - cache':>12}")
        for pairs in (args.pairs // 4, args.pairs // 2, args.pairs):
            source = make_dataset(pairs, 256)
            result = json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--cache-only", str(source), "--size", "256"],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.splitlines()[-1]
            )
            print(
                f"{pairs:>7} {result['cache_mib']:>10.0f} {result['peak_rss_mib']:>13.0f} "
                f"{result['peak_rss_mib'] - result['cache_mib']:>12.0f}"
            )


if __name__ == "__main__":
    main()
