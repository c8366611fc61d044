"""precision_check: does training in mixed precision keep the held-out quality of float32?

Trains the hint U-Net of bench/train_speed.py (cv_unet_hints' network options, 128 px, batch 16)
once per seed in float32 and once in the reduced precision, scores each run's final weights with
s2p-eval (always in float32) on the test split at 0 and 10 random hints, and compares the means
over the seeds. Issue 23's bar: the mean stays within 0.2 dB of float32 on the OpenMoji test split.

The reduced precision is what trainer.precision=auto picks on this machine, or bf16-mixed where
auto picks 32-true (what it picks on CPUs with AMX and on recent GPUs). Without data overrides it
runs on synthetic pairs (a smoke test of the check, not the check itself).

    python bench/precision_check.py [--seeds 0,1] [--epochs 10] [--precision bf16-mixed]
                                    [--out bench/results/precision_check] [-- data=openmoji ...]

Runs already finished in --out are scored, not trained again. The table goes to <out>.json
(bench/results/precision_check.json) with the command that made it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from train_speed import HINT_UNET, QUIET, synthetic_pairs

from sketch2photo.runs.record import finished

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COUNTS = (0, 10)
BAR_DB = 0.2


def train_and_score(run_dir: Path, overrides: list[str]) -> dict[int, float]:
    """{hint count: held-out PSNR} of one run's final weights, scored in float32."""
    if not finished(run_dir):
        subprocess.run(
            [str(BIN / "s2p-train"), *HINT_UNET, *QUIET, f"hydra.run.dir={run_dir}", *overrides],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    scored = run_dir / "eval"
    if not (scored / "hints.json").is_file():
        subprocess.run(
            [
                str(BIN / "s2p-eval"),
                f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
                f"hints={','.join(map(str, COUNTS))}",
                "hint_placements=[random]",
                f"hydra.run.dir={scored}",
            ],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    rows = json.loads((scored / "hints.json").read_text())
    return {row["hints"]: row["psnr"] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--precision", help="the reduced precision (default: see above)")
    parser.add_argument("--pairs", type=int, default=640, help="synthetic pairs, without data=")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "precision_check")
    parser.add_argument("overrides", nargs="*", help="after --: s2p-train overrides")
    args = parser.parse_args()
    from sketch2photo.precision import resolve_precision

    auto = resolve_precision("auto", "auto")
    reduced = args.precision or (auto if auto != "32-true" else "bf16-mixed")
    data = []
    if not any(o.startswith(("data=", "data.data_dir=")) for o in args.overrides):
        data = [f"data.data_dir={synthetic_pairs(args.pairs)}"]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    psnr: dict[str, dict[int, list[float]]] = {}
    for precision in ("32-true", reduced):
        for seed in seeds:
            overrides = [
                *data,
                f"trainer.max_epochs={args.epochs}",
                *args.overrides,
                f"seed={seed}",
                f"trainer.precision={precision}",
            ]
            scores = train_and_score(args.out / f"{precision}-seed{seed}", overrides)
            for count, value in scores.items():
                psnr.setdefault(precision, {}).setdefault(count, []).append(value)
    rows = []
    print(f"\nheld-out PSNR (dB) on the test split, scored in float32; seeds {args.seeds}")
    print(f"overrides: {' '.join([*data, f'trainer.max_epochs={args.epochs}', *args.overrides])}")
    print(f"| hints | 32-true | {reduced} | difference | within {BAR_DB} dB |")
    print("|---|---|---|---|---|")
    for count in COUNTS:
        full, mixed = (statistics.mean(psnr[p][count]) for p in ("32-true", reduced))
        within = abs(mixed - full) <= BAR_DB
        rows.append(
            {
                "hints": count,
                "32-true": psnr["32-true"][count],
                reduced: psnr[reduced][count],
                "difference_db": mixed - full,
                "within_bar": within,
            }
        )
        print(f"| {count} | {full:.2f} | {mixed:.2f} | {mixed - full:+.2f} | {within} |")
    record = {
        "command": " ".join(["python", "bench/precision_check.py", *sys.argv[1:]]),
        "auto_on_this_machine": auto,
        "reduced_precision": reduced,
        "seeds": seeds,
        "overrides": [*data, f"trainer.max_epochs={args.epochs}", *args.overrides],
        "rows": rows,
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")  # beside the runs


if __name__ == "__main__":
    main()
