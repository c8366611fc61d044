"""startup: how fast the commands answer, against a bare Hydra app on the same configs.

The floor is Hydra itself: a bare `@hydra.main` app that composes the same configs/ and does
nothing. In one run, alternating, this times (median of --repeats, warm file cache):
- `--help` and a misspelt key (`model.lrr=1`): s2p-train against the bare app (target: <= 1.3x);
- `s2p-train experiment=seed` from invocation to its first optimizer step (the real pairs when
  ../shared is there, else 20 synthetic ones), and the import time of the training stack.

    python bench/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from lightning.pytorch import Callback

from sketch2photo.config import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "sketch2photo"
BIN = Path(sys.executable).parent
MARK = "FIRST_OPTIMIZER_STEP_AT"
BARE_APP = textwrap.dedent(f"""
    import hydra

    @hydra.main(version_base="1.3", config_path={CONFIG_DIR!r}, config_name="train")
    def main(cfg):
        pass

    main()
""")


class FirstStepClock(Callback):
    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == 0:
            print(f"{MARK} {time.time()}", flush=True)


def time_to_first_step(data_dir: Path) -> float:
    run_dir = tempfile.mkdtemp(prefix="startup-")
    command = [
        str(BIN / "s2p-train"),
        "experiment=seed",
        f"data.data_dir={data_dir}",
        "trainer.max_epochs=1",
        "+callbacks.first_step._target_=startup.FirstStepClock",
        f"hydra.run.dir={run_dir}",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'bench'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    started = time.time()
    output = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    stamp = next(
        float(line.split(MARK)[1].split()[0]) for line in output.splitlines() if MARK in line
    )
    return stamp - started


def wall(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, capture_output=True)  # a typo exits 1: that is the point
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="startup-"))
    (work / "bare_app.py").write_text(BARE_APP)
    bare, ours = [sys.executable, str(work / "bare_app.py")], [str(BIN / "s2p-train")]
    answers = {"--help": ["--help"], "a misspelt key": ["model.lrr=1"]}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats + 1):  # the first round warms the file cache and is dropped
        for name, extra in answers.items():
            for who, command in (("bare Hydra app", bare), ("s2p-train", ours)):
                times.setdefault((name, who), []).append(wall(command + extra, work))
    print(f"median of {args.repeats}, warm file cache, {os.cpu_count()} CPUs")
    for name in answers:
        floor = statistics.median(times[(name, "bare Hydra app")][1:])
        got = statistics.median(times[(name, "s2p-train")][1:])
        print(
            f"{name:>15}: s2p-train {got:5.2f} s, bare Hydra app {floor:5.2f} s: {got / floor:.2f}x (target <= 1.3x)"
        )

    data_dir = REAL
    if not (REAL / "testA").is_dir():
        from sketch2photo.data.corpora.synthetic import write_dataset

        data_dir = write_dataset(work / "synthetic", num_pairs=20, size=256)
    imports = "import lightning.pytorch, torchvision, torchmetrics, sketch2photo.module, sketch2photo.data.datamodules.pairs"
    time_to_first_step(data_dir)  # warm the file cache
    first = [time_to_first_step(data_dir) for _ in range(args.repeats)]
    empty = [wall([sys.executable, "-c", "pass"], work) for _ in range(args.repeats)]
    loaded = [wall([sys.executable, "-c", imports], work) for _ in range(args.repeats)]
    print(
        f"s2p-train experiment=seed: invocation to first optimizer step  {statistics.median(first):5.2f} s   "
        f"({', '.join(f'{t:.2f}' for t in first)})"
    )
    print(
        f"import time of the training stack (minus `python -c pass`)    "
        f"{statistics.median(loaded) - statistics.median(empty):5.2f} s"
    )


if __name__ == "__main__":
    main()
