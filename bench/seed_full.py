"""The full reference run: `s2p-train experiment=seed` on the real 20 pairs, 640 epochs.

Prints the training loss at epochs 20 and 640 next to the seed's reported figures, and the wall
time. Usage: python bench/seed_full.py [--data ../shared/data/sketch2photo] [--seed 42]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED_REPORTED = {20: 0.2085, 640: 0.0633}
PLAIN_LOOP_640 = 0.0736


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sketch2photo"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="seed_full-"))
    command = [
        str(Path(sys.executable).parent / "s2p-train"),
        "experiment=seed",
        f"data.data_dir={args.data}",
        f"seed={args.seed}",
        "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    record = json.loads((run_dir / "metrics.json").read_text())
    loss = {row["epoch"]: row["train/loss"] for row in record["history"]}
    print(f"experiment=seed, seed={args.seed}, {len(loss)} epochs, run dir {run_dir}")
    print(f"{'epoch':>6} {'ours':>8} {'seed (reported)':>16}")
    for epoch in (20, 640):
        print(f"{epoch:>6} {loss[epoch]:>8.4f} {SEED_REPORTED[epoch]:>16.4f}")
    print(f"plain PyTorch loop at 640 (another seed): {PLAIN_LOOP_640}")
    print(f"wall time {wall:.1f} s (command start to exit), training {record['wall_time_s']:.1f} s")


if __name__ == "__main__":
    main()
