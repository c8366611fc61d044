"""crossval: the benchmark table. 5-fold cross-validation on the real 20 pairs.

For each experiment (the seed autoencoder, the U-Net) it runs
    s2p-train -m experiment=<cv_seed|cv_unet> data.data_dir=<data> data.fold=0,1,2,3,4
and scores the two trivial baselines on the same folds with s2p-eval (the per-pixel mean of the
training targets, an all-white image). Held-out metrics are those of the final weights on the
fold's 4 held-out pairs (no checkpoint is picked by them); training MSE is the final model's MSE
on its 16 training pairs in eval mode (s2p-eval subset=train). It prints a markdown table of
mean ± std over the folds and writes each model's held-out grid of fold 0 to docs/.

    python bench/crossval.py [--data ../shared/data/sketch2photo] [--out bench/results/crossval]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FOLDS = 5
MODELS = {"seed autoencoder": "cv_seed", "U-Net": "cv_unet"}
BASELINES = {"per-pixel mean of the training targets": "mean", "all-white image": "white"}
QUIET = ["callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]


def run(*command: str) -> None:
    subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


def evaluate(out: Path, *settings: str) -> dict:
    run("s2p-eval", *settings, f"hydra.run.dir={out}")
    return metrics(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sketch2photo"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "crossval"))
    parser.add_argument("--only", choices=[*MODELS.values(), "baselines"], nargs="*", help="run only these parts")
    args = parser.parse_args()
    out, data = Path(args.out).resolve(), str(Path(args.data).resolve())
    folds = ",".join(str(f) for f in range(FOLDS))
    rows = {}
    for name, experiment in MODELS.items():
        sweep = out / experiment
        if not args.only or experiment in args.only:
            run("s2p-train", "-m", f"experiment={experiment}", f"data.data_dir={data}", f"data.fold={folds}",
                *QUIET, f"hydra.sweep.dir={sweep}")
        held_out = [metrics(sweep / str(fold)) for fold in range(FOLDS)]
        on_train = [evaluate(out / f"{experiment}-train" / str(fold), f"ckpt_path={sweep / str(fold)}/checkpoints/last.ckpt",
                             "subset=train") for fold in range(FOLDS)]
        rows[name] = ([m["test/psnr"] for m in held_out], [m["test/ssim"] for m in held_out], [m["train/mse"] for m in on_train])
        grid = evaluate(out / f"{experiment}-grid", f"ckpt_path={sweep}/0/checkpoints/last.ckpt", "subset=val", "grid_size=4")
        shutil.copy(out / f"{experiment}-grid" / "grid.png", ROOT / "docs" / f"crossval_fold0_{experiment}.png")
        print(f"{name}: fold 0 grid psnr {grid['val/psnr']:.2f}", flush=True)
    for name, kind in BASELINES.items():
        fold_settings = [[f"baseline={kind}", "data=sketch2photo", f"data.data_dir={data}", f"data.folds={FOLDS}",
                          f"data.fold={fold}"] for fold in range(FOLDS)]
        held_out = [evaluate(out / f"{kind}-val" / str(f), *s, "subset=val") for f, s in enumerate(fold_settings)]
        on_train = [evaluate(out / f"{kind}-train" / str(f), *s, "subset=train") for f, s in enumerate(fold_settings)]
        rows[name] = ([m["val/psnr"] for m in held_out], [m["val/ssim"] for m in held_out], [m["train/mse"] for m in on_train])

    def cell(values: list[float], digits: int) -> str:
        return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

    print(f"\n5-fold cross-validation on {data} (mean ± std over folds)\n")
    print("| model | held-out PSNR (dB) | held-out SSIM | training MSE |")
    print("|---|---|---|---|")
    for name, (psnr, ssim, train_mse) in rows.items():
        print(f"| {name} | {cell(psnr, 2)} | {cell(ssim, 3)} | {cell(train_mse, 4)} |")
    print("\nper fold PSNR:")
    for name, (psnr, _, _) in rows.items():
        print(f"  {name}: {', '.join(f'{v:.2f}' for v in psnr)}")


if __name__ == "__main__":
    main()
