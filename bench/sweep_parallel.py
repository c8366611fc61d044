"""A 4-job sweep with hydra/launcher=joblib (2 jobs at once, 1 torch thread each on 2 cores)
against the same sweep run serially by Hydra's basic launcher (one job at a time, all cores).

Each job is the default training (64 synthetic pairs, 128 px, 30 epochs). Measures the whole
command's wall time, median of --repeats, the two alternating so that load from elsewhere hits
both alike, and prints the ratio joblib / serial. The load average is printed before and after:
other work on the machine changes the figures a lot.
Usage: python bench/sweep_parallel.py [--repeats 3] [--epochs 30] [--image-size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sketch2photo.data.corpora.synthetic import write_dataset

ROOT = Path(__file__).resolve().parents[1]
LRS = "1e-4,3e-4,1e-3,3e-3"


def sweep(work: Path, data_dir: Path, args, launcher: list[str], name: str) -> float:
    sweep_dir = work / name
    command = [
        str(Path(sys.executable).parent / "s2p-train"),
        "-m",
        f"model.lr={LRS}",
        f"data.data_dir={data_dir}",
        "data.synthetic_pairs=null",
        f"data.image_size={args.image_size}",
        f"trainer.max_epochs={args.epochs}",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "callbacks.progress_bar=null",
        f"hydra.sweep.dir={sweep_dir}",
        *launcher,
    ]
    started = time.perf_counter()
    subprocess.run(
        command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wall = time.perf_counter() - started
    records = [json.loads(path.read_text()) for path in sweep_dir.glob("*/metrics.json")]
    assert len(records) == 4 and all(r["status"] == "ok" for r in records), (
        f"{sweep_dir}: a job failed"
    )
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sweep_parallel-"))
    times: dict[str, list[float]] = {"serial": [], "joblib": []}
    launchers = {"serial": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    try:
        data_dir = write_dataset(work / "data", num_pairs=args.pairs, size=args.image_size)
        for repeat in range(args.repeats):
            order = ("serial", "joblib") if repeat % 2 == 0 else ("joblib", "serial")
            for name in order:
                times[name].append(sweep(work, data_dir, args, launchers[name], f"{name}-{repeat}"))
                print(f"repeat {repeat + 1}: {name:6s} {times[name][-1]:6.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    serial, joblib = (statistics.median(times[name]) for name in ("serial", "joblib"))
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(
        f"\n4 jobs (model.lr={LRS}), {args.pairs} pairs at {args.image_size} px, {args.epochs} epochs, "
        f"{os.cpu_count()} cores, median of {args.repeats}:"
    )
    print(f"serial (basic launcher)      {serial:6.1f} s")
    print(f"joblib, n_jobs=2             {joblib:6.1f} s")
    print(f"ratio joblib / serial        {joblib / serial:6.2f}  (speed-up {serial / joblib:.2f}x)")


if __name__ == "__main__":
    main()
