"""crossval: the benchmark table. 5-fold cross-validation on the real 20 pairs.

For each model (the seed autoencoder, the U-Net, the U-Net without augmentation, which shows what
augmentation buys, the U-Net tuned to fit its training pairs too, and that U-Net given the
sketch's background) it runs
    s2p-train -m experiment=<cv_seed|cv_unet|cv_unet_fit|cv_unet_background> [overrides]
                 data.data_dir=<data> data.fold=0,1,2,3,4
and scores the two trivial baselines on the same folds with s2p-eval (the per-pixel mean of the
training targets, an all-white image). Held-out metrics are those of the final weights on the
fold's 4 held-out pairs (no checkpoint is picked by them); training MSE is the final model's MSE
on its 16 training pairs in eval mode (s2p-eval subset=train). It writes --json, the results
file of the docs' results page (tools/results_page.py): mean ± std over the folds, each fold, the
training time, how much held-out PSNR moves over the last epochs, where the U-Net's held-out
error lies and what painting the background white does to the final outputs of the models trained
without it; and <out>/fold0_outputs.png: each model's outputs (a row per model) on
the held-out sketches of fold 0, for you to look at; they colour the Pokémon art, which is not ours
to publish, so the picture stays out of docs/.

    python bench/crossval.py [--data ../shared/data/sketch2photo] [--out outputs/crossval]
                             [--json bench/results/crossval.json]

Run again with the same --out, it skips the training of each model whose 5 folds all finished (the
whole takes over 2 hours on 2 cores); the scoring runs again (about 7 minutes). Then
`python tools/results_page.py` remakes the docs' results page from --json.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

from hints import cell

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FOLDS = 5
# name: (sweep dir, experiment and overrides)
MODELS = {
    "seed autoencoder": ("cv_seed", ["experiment=cv_seed"]),
    "U-Net": ("cv_unet", ["experiment=cv_unet"]),
    "U-Net without augmentation": (
        "cv_unet_noaug",
        ["experiment=cv_unet", "data.augment.enabled=false"],
    ),
    "U-Net fitting its training pairs": ("cv_unet_fit", ["experiment=cv_unet_fit"]),
    "U-Net fitting its pairs, given the sketch's background": (
        "cv_unet_background",
        ["experiment=cv_unet_background"],
    ),
}
SETUP = """\
On 2 CPU cores: 5 seeded folds of 16 training and 4 held-out pairs, 640 epochs, seed 42.
`experiment=cv_seed` is `experiment=seed` (the seed's autoencoder, full batch, Adam 1e-3, MSE) on
the folds. `experiment=cv_unet` changes only the model: a depth-5, width-32 U-Net with batch norm,
pix2pix's 0.5 decoder dropout, MSE loss, and paired flip/crop augmentation.
`experiment=cv_unet_fit` is that U-Net with batches of 4, half the pairs augmented
(`data.augment.p=0.5`) and the last 64 epochs unaugmented (`data.augment.stop_after=0.9`).
`experiment=cv_unet_background` is `cv_unet_fit` told where the sketch's background is (the paper
reachable from the border without crossing a line, a flood fill in `regions.py`): a 4th input
channel (`model.net.background_input=true`), painted white in the output
(`model.net.background_fill=true`). Held-out metrics are those of the final weights (the held-out
pairs pick nothing); training MSE is the final model's on its 16 training pairs, in eval mode
(`s2p-eval subset=train`). The baselines are scored by `s2p-eval baseline=mean|white` on the same
folds."""
BASELINES = {"per-pixel mean of the training targets": "mean", "all-white image": "white"}
QUIET = ["callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]


def run(*command: str) -> None:
    subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )


def record(run_dir: Path) -> dict:
    """The run's metrics.json (sketch2photo.runs.record)."""
    from sketch2photo.runs.record import read_record

    found = read_record(run_dir)
    if found is None:
        sys.exit(f"{run_dir}/metrics.json is missing: rerun that sweep with --only <its name>.")
    return found


def sweep_finished(sweep: Path) -> bool:
    """Every fold's run ended with status ok: a second invocation skips the sweep (the runs are
    long on 2 cores, and may span sessions)."""
    from sketch2photo.runs.record import finished

    return all(finished(sweep / str(fold)) for fold in range(FOLDS))


def metrics(run_dir: Path) -> dict:
    return record(run_dir)["metrics"]


def evaluate(out: Path, *settings: str) -> dict:
    run("s2p-eval", *settings, f"hydra.run.dir={out}")
    return metrics(out)


def colour_held_out_sketches(out: Path, sweep_name: str, checkpoint: Path) -> None:
    """s2p-predict on fold 0's held-out sketches, into out/<sweep_name>-outputs/."""
    sketches = out / "fold0-sketches"
    if (
        not sketches.is_dir()
    ):  # links to the held-out sketch files, named by the per-image CSV of s2p-eval
        evaluate(out / "fold0-pairs", f"ckpt_path={checkpoint}", "subset=val")
        sketches.mkdir()
        with open(out / "fold0-pairs" / "per_image.csv") as file:
            for row in csv.DictReader(file):
                (sketches / Path(row["sketch"]).name).symlink_to(row["sketch"])
    run(
        "s2p-predict",
        f"ckpt_path={checkpoint}",
        f"input={sketches}",
        f"output={out / f'{sweep_name}-outputs'}",
        "keep_size=false",  # the figure shows the model's own outputs
    )


def outputs_figure(out: Path, path: Path) -> None:
    """One row per model of its outputs on fold 0's held-out sketches: model outputs only, no
    dataset images (the artwork is not ours to publish)."""
    from torchvision.io import read_image
    from torchvision.utils import make_grid, save_image

    names = sorted(p.stem for p in (out / "fold0-sketches").iterdir())
    rows = [
        read_image(str(out / f"{sweep_name}-outputs" / f"{n}.png"))
        for sweep_name, _ in MODELS.values()
        for n in names
    ]
    path.parent.mkdir(exist_ok=True)
    save_image(make_grid(rows, nrow=len(names), padding=4, pad_value=255).float() / 255, path)


def median_training_time(sweep: Path) -> float:
    """Seconds per fold: each sweep ran alone, so the sweeps compare."""
    return statistics.median(record(sweep / str(fold))["wall_time_s"] for fold in range(FOLDS))


def last_epochs_spread(sweep: Path, epochs: int = 100) -> float:
    """The standard deviation of held-out PSNR over the last epochs of a run, mean over the folds:
    how much the table's final-epoch numbers would move had training stopped a few epochs
    earlier."""
    spreads = []
    for fold in range(FOLDS):
        history = record(sweep / str(fold))["history"]
        spreads.append(
            statistics.stdev([row["val/psnr"] for row in history if "val/psnr" in row][-epochs:])
        )
    return statistics.mean(spreads)


def held_out_outputs(sweep: Path):
    """Per fold: the final model's outputs on its held-out sketches, those sketches and their
    photos."""
    import torch

    from sketch2photo.checkpoints.read import data_settings, load_module, read_checkpoint
    from sketch2photo.data.datamodules.pairs import PairedSketchDataModule

    for fold in range(FOLDS):
        path = sweep / str(fold) / "checkpoints" / "last.ckpt"
        checkpoint = read_checkpoint(path)
        data = PairedSketchDataModule(**data_settings(checkpoint, path))
        data.setup()
        held_out = data.sample_batch(len(data.sets["val"]), "val")
        with torch.inference_mode():
            outputs = load_module(path, checkpoint)(held_out["sketch"]).contiguous()
        yield outputs, held_out["sketch"], held_out["photo"]


def background_error(sweep: Path) -> dict[str, float]:
    """Over the folds' held-out pairs (each of the 20 once): the share of the squared error on
    pixels that are white in the photo (the background), the PSNR, the PSNR had the background been
    right, the PSNR with the background found in the sketch (regions.py) painted white, and
    the IoU of that background with the photos' white."""
    import torch

    from sketch2photo.metrics import per_image_metrics
    from sketch2photo.regions import background_mask

    def psnr(outputs, photos) -> list[float]:
        return per_image_metrics(outputs, photos)["psnr"].tolist()

    found = {"share": [], "psnr": [], "psnr_right_background": [], "psnr_painted": [], "iou": []}
    for outputs, sketches, photos in held_out_outputs(sweep):
        white = (photos > 0.95).all(dim=1, keepdim=True)
        background = white.expand_as(photos)
        error = (outputs - photos).square()
        found["share"].append((error[background].sum() / error.sum()).item())
        found["psnr"] += psnr(outputs, photos)
        found["psnr_right_background"] += psnr(torch.where(background, photos, outputs), photos)
        in_sketch = background_mask(sketches)
        found["psnr_painted"] += psnr(torch.where(in_sketch, 1.0, outputs), photos)
        found["iou"] += (
            (in_sketch & white).sum((1, 2, 3)) / (in_sketch | white).sum((1, 2, 3))
        ).tolist()
    return {key: statistics.mean(values) for key, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sketch2photo"))
    parser.add_argument("--out", default=str(ROOT / "outputs" / "crossval"), help="run dirs")
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results" / "crossval.json",
        help="the results file the docs' results page is made from",
    )
    parser.add_argument(
        "--only",
        choices=[key for key, _ in MODELS.values()] + ["baselines"],
        nargs="*",
        help="run only these parts",
    )
    args = parser.parse_args()
    out, data = Path(args.out).resolve(), str(Path(args.data).resolve())
    folds = ",".join(str(f) for f in range(FOLDS))
    rows = {}
    for name, (sweep_name, overrides) in MODELS.items():
        sweep = out / sweep_name
        if (not args.only or sweep_name in args.only) and not sweep_finished(sweep):
            if sweep.exists():
                sys.exit(
                    f"{sweep} holds an unfinished sweep (a run was stopped): move it away and "
                    "run again; the finished sweeps beside it are kept."
                )
            run(
                "s2p-train",
                "-m",
                *overrides,
                f"data.data_dir={data}",
                f"data.fold={folds}",
                *QUIET,
                f"hydra.sweep.dir={sweep}",
            )
        held_out = [metrics(sweep / str(fold)) for fold in range(FOLDS)]
        on_train = [
            evaluate(
                out / f"{sweep_name}-train" / str(fold),
                f"ckpt_path={sweep / str(fold)}/checkpoints/last.ckpt",
                "subset=train",
            )
            for fold in range(FOLDS)
        ]
        rows[name] = (
            [m["test/psnr"] for m in held_out],
            [m["test/ssim"] for m in held_out],
            [m["train/mse"] for m in on_train],
        )
        colour_held_out_sketches(out, sweep_name, sweep / "0" / "checkpoints" / "last.ckpt")
    for name, kind in BASELINES.items():
        fold_settings = [
            [
                f"baseline={kind}",
                "data=sketch2photo",
                f"data.data_dir={data}",
                f"data.folds={FOLDS}",
                f"data.fold={fold}",
            ]
            for fold in range(FOLDS)
        ]
        held_out = [
            evaluate(out / f"{kind}-val" / str(f), *s, "subset=val")
            for f, s in enumerate(fold_settings)
        ]
        on_train = [
            evaluate(out / f"{kind}-train" / str(f), *s, "subset=train")
            for f, s in enumerate(fold_settings)
        ]
        rows[name] = (
            [m["val/psnr"] for m in held_out],
            [m["val/ssim"] for m in held_out],
            [m["train/mse"] for m in on_train],
        )

    outputs_figure(out, out / "fold0_outputs.png")
    results = results_record(out, data, rows)
    args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\n{results['tables'][0]['caption']}\n")
    for row in results["tables"][0]["rows"]:
        print(f"  {row[0]}: {row[1]['mean']:.2f} ± {row[1]['std']:.2f} dB")
    print(f"\n{results['notes']}\n\nwrote {args.json} and {out / 'fold0_outputs.png'}")
    print("the docs' results page: python tools/results_page.py")


def verdict(gains: list[float]) -> str:
    if min(gains) >= 2:
        return "met, on every fold"
    if statistics.mean(gains) >= 2:
        short = [f"fold {fold}" for fold, gain in enumerate(gains) if gain < 2]
        return f"met on average, not on {', '.join(short)}"
    return "missed"


def results_record(out: Path, data: str, rows: dict) -> dict:
    """The tables and what they show, in the docs' results schema (tools/results_page.py)."""
    names = {name: f"{name} (`{' '.join(overrides)}`)" for name, (_, overrides) in MODELS.items()}
    best = list(MODELS)[-1]  # the U-Net given the sketch's background
    gains = [b - s for b, s in zip(rows[best][0], rows["seed autoencoder"][0], strict=True)]
    best_train_mse = statistics.mean(rows[best][2])
    fits = "met" if best_train_mse <= 0.01 else "missed"
    seed_train_mse = statistics.mean(rows["seed autoencoder"][2])
    unet = background_error(out / MODELS["U-Net"][0])
    painted = []
    for name in ("seed autoencoder", "U-Net", "U-Net fitting its training pairs"):
        found = unet if name == "U-Net" else background_error(out / MODELS[name][0])
        painted.append(f"{name} {found['psnr']:.2f} -> {found['psnr_painted']:.2f} dB")
    timing = [
        [
            name,
            f"{median_training_time(out / sweep_name):.0f}",
            f"{last_epochs_spread(out / sweep_name):.2f}",
        ]
        for name, (sweep_name, _) in MODELS.items()
    ]
    notes = f"""\
**Against the targets we set ourselves:**
- **Beat the seed autoencoder held out by 2 dB: {verdict(gains)}.** `{MODELS[best][1][0]}` is
  {statistics.mean(gains):.2f} dB ahead on average, {min(gains):.2f} to {max(gains):.2f} dB a fold
  ({", ".join(f"{gain:.2f}" for gain in gains)}).
- **Fit the training pairs to an MSE of at most 0.01: {fits}.** {best_train_mse:.4f}, against the
  seed's {seed_train_mse:.4f}.

{unet["share"]:.0%} of the plain U-Net's held-out squared error is on the photos' white background
(colour painted outside the lines); with the background right, its PSNR would be
{unet["psnr_right_background"]:.2f} dB instead of {unet["psnr"]:.2f}. That is what led to the
background options. The background found in the sketch (`regions.py`) overlaps the photos' white
with a mean IoU of {unet["iou"]:.3f} over the 20 pairs. Painting it white on the final outputs of
models trained without it (no retraining) gives: {"; ".join(painted)}.

Held-out metrics are the final epoch's. How much they would move had training stopped a little
earlier is the last table's last column: differences between models smaller than it are noise."""
    return {
        "schema": "sketch2photo.results/1",
        "title": "5-fold cross-validation on the real 20 pairs",
        "order": 30,
        "commands": [
            "python bench/crossval.py     # all of it: 5 models x 5 folds, baselines, these tables",
            "s2p-train -m experiment=cv_unet_background data.data_dir=../shared/data/sketch2photo "
            "data.fold=0,1,2,3,4  # one row",
        ],
        "setup": SETUP,
        "tables": [
            {
                "caption": "mean ± std over the 5 folds",
                "columns": ["model", "held-out PSNR (dB)", "held-out SSIM", "training MSE"],
                "rows": [
                    [names.get(name, name), *(cell(values) for values in columns)]
                    for name, columns in rows.items()
                ],
            },
            {
                "caption": "held-out PSNR (dB) per fold",
                "columns": ["model", *(f"fold {fold}" for fold in range(FOLDS))],
                "rows": [
                    [name, *(f"{psnr:.2f}" for psnr in columns[0])]
                    for name, columns in rows.items()
                ],
            },
            {
                "caption": "training time and how much held-out PSNR moves at the end",
                "columns": [
                    "model",
                    "median training time per fold (s)",
                    "sd of held-out PSNR over the last 100 epochs (dB, mean over folds)",
                ],
                "rows": timing,
            },
        ],
        "notes": notes,
        "provenance": {
            "source": "measured",
            "note": f"On 2 CPU cores, data from {Path(data).name}/; each sweep ran alone, so "
            "the training times compare.",
        },
    }


if __name__ == "__main__":
    main()
