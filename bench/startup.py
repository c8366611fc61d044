"""startup: time from typing `s2p-train` to the first optimizer step, and the import time.

Runs `s2p-train experiment=seed` (the real pairs when ../shared is there, else 20 synthetic ones)
in a fresh process several times with a warm file cache; a callback prints the wall-clock time
of the first optimizer step. Also times `import` of what training needs, against `python -c pass`.

    python bench/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightning.pytorch import Callback

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "sketch2photo"
BIN = Path(sys.executable).parent
MARK = "FIRST_OPTIMIZER_STEP_AT"


class FirstStepClock(Callback):
    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == 0:
            print(f"{MARK} {time.time()}", flush=True)


def time_to_first_step(data_dir: Path) -> float:
    run_dir = tempfile.mkdtemp(prefix="startup-")
    command = [
        str(BIN / "s2p-train"), "experiment=seed", f"data.data_dir={data_dir}", "trainer.max_epochs=1",
        "+callbacks.first_step._target_=startup.FirstStepClock", f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'bench'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = time.time()
    output = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    stamp = next(float(line.split(MARK)[1].split()[0]) for line in output.splitlines() if MARK in line)
    return stamp - started


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data_dir = REAL
    if not (REAL / "testA").is_dir():
        from sketch2photo.data.synthetic import write_dataset

        data_dir = write_dataset(Path(tempfile.mkdtemp()) / "synthetic", num_pairs=20, size=256)
    imports = "import lightning.pytorch, torchvision, torchmetrics, sketch2photo.module, sketch2photo.data.datamodule"
    time_to_first_step(data_dir)  # warm the file cache
    first = [time_to_first_step(data_dir) for _ in range(args.repeats)]
    empty = [wall([sys.executable, "-c", "pass"]) for _ in range(args.repeats)]
    loaded = [wall([sys.executable, "-c", imports]) for _ in range(args.repeats)]
    print(f"median of {args.repeats}, warm file cache, {os.cpu_count()} CPUs")
    print(f"s2p-train experiment=seed: invocation to first optimizer step  {statistics.median(first):5.2f} s   "
          f"({', '.join(f'{t:.2f}' for t in first)})")
    print(f"import time of the training stack (minus `python -c pass`)    "
          f"{statistics.median(loaded) - statistics.median(empty):5.2f} s")


if __name__ == "__main__":
    main()
