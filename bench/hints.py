"""hints: held-out PSNR against the number of colour hints, 5-fold cross-validation on the real
pairs.

For each fold it trains
    s2p-train experiment=cv_unet_hints data.data_dir=<data> data.fold=<fold> [overrides]
(skipped when the run dir already holds a finished run), then scores the final weights with
    s2p-eval ckpt_path=<run>/checkpoints/last.ckpt hints=0,1,3,10,30
on the fold's 4 held-out pairs, for both placements: random positions inside the figure (Zhang et
al.'s protocol) and one hint at the centre of each of the k largest regions (how a person places
them). It prints a markdown table of mean ± std over the folds per count and placement, and draws
docs/hints_psnr.png with the no-hint references as horizontal lines.

    python bench/hints.py [--data ../shared/data/sketch2photo] [--out bench/results/hints]
                          [--folds 0,3] [--name cv_unet_hints] [-- extra s2p-train overrides]
    # score runs you trained yourself (on the data each was trained with)
    python bench/hints.py --runs <run dir> [<run dir> ...]
    # one checkpoint trained elsewhere (e.g. OpenMoji pretraining) on each fold, no training here
    python bench/hints.py --pretrained <file.ckpt> --name <folder under --out>
    # and the numbers, with this command, into a results file (bench/results/*.json)
    python bench/hints.py ... --json bench/results/<name>.json
    # where the held-out error lies at 10 hints
    python bench/hints.py --runs <run dir> --where 10
    # scored with hint patches kept to one region
    python bench/hints.py ... --within-region
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from sketch2photo.runs.record import finished

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COUNTS = (0, 1, 3, 10, 30)
PLACEMENTS = ("random", "regions")
QUIET = ["callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]
# the figure's no-hint lines: held-out PSNR, mean over the same 5 folds (bench/crossval.py)
CROSSVAL = ROOT / "bench" / "results" / "crossval.json"
REFERENCES = {
    "seed autoencoder": "experiment=cv_seed",
    "U-Net + background, no hint input (cv_unet_background)": "experiment=cv_unet_background",
}


def references() -> dict[str, float]:
    """The mean held-out PSNR of each reference's row, found by its experiment."""
    rows = json.loads(CROSSVAL.read_text())["tables"][0]["rows"]
    found = {}
    for label, experiment in REFERENCES.items():
        means = [row[1]["mean"] for row in rows if row[0].endswith(f"(`{experiment}`)")]
        if len(means) != 1:
            sys.exit(f"{CROSSVAL}: no single row for {experiment}; rerun bench/crossval.py")
        found[label] = means[0]
    return found


def train(run_dir: Path, data: Path, fold: int, overrides: list[str]) -> None:
    if finished(run_dir):
        return
    subprocess.run(
        [
            str(BIN / "s2p-train"),
            "experiment=cv_unet_hints",
            f"data.data_dir={data}",
            f"data.fold={fold}",
            f"hydra.run.dir={run_dir}",
            *QUIET,
            *overrides,
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def fold_data(data: Path, fold: int) -> list[str]:
    """s2p-eval's data overrides for fold `fold`'s held-out pairs, split as experiment=cv_seed
    splits them (whatever data the checkpoint was trained on)."""
    return [
        "data=sketch2photo",
        f"data.data_dir={data}",
        "data.layout=auto",
        "data.split=random",
        "data.folds=5",
        f"data.fold={fold}",
        "data.val_fraction=0.1",
        "data.split_seed=0",
    ]


def score(
    run_dir: Path,
    within_region: bool = False,
    checkpoint: Path | None = None,
    data_overrides: tuple[str, ...] = (),
) -> list[dict]:
    """s2p-eval's rows (placement, hints, psnr, ssim, ...) for the run's final weights (or
    `checkpoint`, on `data_overrides`), kept in the run dir.
    within_region: hint patches kept to the region of their centre (data.hints.within_region)."""
    out = run_dir / ("hints-eval-within-region" if within_region else "hints-eval")
    if not (out / "hints.json").is_file():
        subprocess.run(
            [
                str(BIN / "s2p-eval"),
                f"ckpt_path={checkpoint or run_dir / 'checkpoints' / 'last.ckpt'}",
                f"hints={','.join(map(str, COUNTS))}",
                f"data.hints.within_region={str(within_region).lower()}",
                f"hydra.run.dir={out}",
                *data_overrides,
            ],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return json.loads((out / "hints.json").read_text())


def summary(
    scored: dict[str, list[dict]], metric: str = "psnr"
) -> dict[tuple[str, int], list[float]]:
    """(placement, count) -> held-out `metric` of each run."""
    table: dict[tuple[str, int], list[float]] = {}
    for rows in scored.values():
        for row in rows:
            table.setdefault((row["placement"], row["hints"]), []).append(row[metric])
    return table


def write_results(path: Path, scored: dict[str, list[dict]], title: str, setup: str) -> None:
    """The tables' numbers and the command that made them, in the docs' results schema
    (tools/results_page.py): PSNR and SSIM, mean and std over the runs, per placement and count,
    then each run's PSNR."""
    tables = []
    for metric, name in (("psnr", "held-out PSNR (dB)"), ("ssim", "held-out SSIM")):
        table = summary(scored, metric)
        tables.append(
            {
                "caption": f"{name}, mean ± std over {len(scored)} run(s)",
                "columns": ["placement", *(f"{count} hints" for count in COUNTS)],
                "rows": [
                    [placement, *(cell(table[placement, count]) for count in COUNTS)]
                    for placement in PLACEMENTS
                ],
            }
        )
    tables.append(
        {
            "caption": "held-out PSNR (dB) of each run",
            "columns": ["run", *(f"{p[:3]} {count}" for p in PLACEMENTS for count in COUNTS)],
            "rows": [
                [run, *(row["psnr"] for p in PLACEMENTS for row in rows if row["placement"] == p)]
                for run, rows in scored.items()
            ],
        }
    )
    record = {
        "schema": "sketch2photo.results/1",
        "title": title,
        "commands": [shlex.join(["python", "bench/hints.py", *sys.argv[1:]])],
        "setup": setup,
        "tables": tables,
        "provenance": {"source": "measured"},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


def cell(values: list[float]) -> dict | float:
    """A results-page cell: mean and std over the runs, or the one run's value."""
    if len(values) == 1:
        return values[0]
    return {"mean": statistics.mean(values), "std": statistics.stdev(values)}


def mean_std(values: list[float]) -> str:
    return (
        f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
        if len(values) > 1
        else f"{values[0]:.2f}"
    )


def print_table(table: dict, runs: int) -> None:
    print(f"\nheld-out PSNR (dB), mean ± std over {runs} run(s)\n")
    print("| placement | " + " | ".join(f"{count} hints" for count in COUNTS) + " |")
    print("|---|" + "---|" * len(COUNTS))
    for placement in PLACEMENTS:
        print(
            f"| {placement} | "
            + " | ".join(mean_std(table[placement, count]) for count in COUNTS)
            + " |"
        )


def plot(table: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 4), dpi=120)
    for placement, label in zip(
        PLACEMENTS,
        ("random positions (Zhang et al.)", "centres of the largest regions"),
        strict=True,
    ):
        values = [table[placement, count] for count in COUNTS]
        means = [statistics.mean(v) for v in values]
        spread = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        axes.errorbar(COUNTS, means, yerr=spread, marker="o", capsize=3, label=label)
    for (name, value), style in zip(references().items(), (":", "--"), strict=True):
        axes.axhline(value, color="grey", linestyle=style, label=f"{name}: {value:.2f}")
    axes.set_xscale("symlog", linthresh=1)  # log x that keeps 0 hints
    axes.set_xticks(COUNTS, [str(count) for count in COUNTS])
    axes.set_xlim(-0.3, 40)
    axes.minorticks_off()
    axes.set_xlabel("simulated hints per image")
    axes.set_ylabel("held-out PSNR (dB)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(exist_ok=True)
    figure.savefig(path)
    pyplot.close(figure)


def error_by_kind(run_dir: Path, count: int) -> None:
    """The held-out squared error at `count` random hints, split by kind of pixel: the background,
    the lines, paper a hint reached (and what it would be with the spread colours pasted there),
    paper no hint reached."""
    import torch

    from sketch2photo.checkpoints.read import data_settings, load_module, read_checkpoint
    from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
    from sketch2photo.hints.spread import spread_hints
    from sketch2photo.regions import background_mask, regions_of

    path = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = read_checkpoint(path)
    module = load_module(path, checkpoint)
    datamodule = PairedSketchDataModule(**{**data_settings(checkpoint, path), "batch_size": 64})
    datamodule.setup("test")
    datamodule.evaluate_with_hints(count, "random", 0)
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.test_dataloader())), 0)
    sketches, photos, hints = batch["sketch"], batch["photo"], batch["hints"]
    with torch.inference_mode():
        outputs = module(sketches, hints)
    background = background_mask(sketches)
    regions = regions_of(sketches, background, 0.9)
    spread = spread_hints(hints, regions)
    reached = spread[:, 3:] == 1
    pasted = torch.where(reached, spread[:, :3], outputs)
    error, pasted_error = (
        ((outputs - photos) ** 2).mean(1, keepdim=True),
        ((pasted - photos) ** 2).mean(1, keepdim=True),
    )
    kinds = {
        "background": background,
        "lines": ~background & ~regions,
        "paper a hint reached": reached,
        "paper no hint reached": regions & ~reached,
    }
    print(
        f"{run_dir}, {count} random hints: share of pixels / of the squared error / with the hints pasted"
    )
    for name, where in kinds.items():
        print(
            f"  {name}: {where.float().mean():.2f} / {(error * where).sum() / error.sum():.2f} / "
            f"{(pasted_error * where).sum() / error.sum():.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "sketch2photo"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hints")
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--name", default="cv_unet_hints", help="the sweep's folder under --out")
    parser.add_argument(
        "--runs", nargs="+", type=Path, help="score these run dirs instead of training"
    )
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "hints_psnr.png")
    parser.add_argument(
        "--where", type=int, help="with --runs: where the error lies at this many hints"
    )
    parser.add_argument(
        "--within-region",
        action="store_true",
        help="score with hint patches kept to their centre's region (data.hints.within_region=true)",
    )
    parser.add_argument(
        "--pretrained", type=Path, help="score this checkpoint on each fold, no training"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers and command here")
    parser.add_argument("--title", help="--json: the results page's section title")
    parser.add_argument("--setup", default="", help="--json: what was measured, in markdown")
    parser.add_argument("overrides", nargs="*", help="extra s2p-train overrides, after --")
    args = parser.parse_args()
    if args.runs and args.where is not None:
        for run_dir in args.runs:
            error_by_kind(run_dir, args.where)
        return
    folds = list(map(int, args.folds.split(",")))
    if args.runs:
        run_dirs = args.runs
        scored = {str(run_dir): score(run_dir, args.within_region) for run_dir in run_dirs}
    elif args.pretrained:
        run_dirs = [args.out / args.name / str(fold) for fold in folds]
        scored = {
            str(run_dir): score(
                run_dir,
                args.within_region,
                args.pretrained,
                tuple(fold_data(args.data.resolve(), fold)),
            )
            for fold, run_dir in zip(folds, run_dirs, strict=True)
        }
    else:
        run_dirs = [args.out / args.name / str(fold) for fold in folds]
        for fold, run_dir in zip(folds, run_dirs, strict=True):
            train(run_dir, args.data.resolve(), fold, args.overrides)
        scored = {str(run_dir): score(run_dir, args.within_region) for run_dir in run_dirs}
    for run_dir, rows in scored.items():
        print(
            run_dir,
            " ".join(f"{row['placement'][:3]}{row['hints']}={row['psnr']:.2f}" for row in rows),
        )
    table = summary(scored)
    print_table(table, len(run_dirs))
    if args.json:
        write_results(args.json, scored, args.title or args.name, args.setup)
    if not args.runs and not args.pretrained:
        plot(
            table,
            args.figure,
            f"experiment={args.name}, {len(run_dirs)} folds of the 20 real pairs",
        )
        print(f"\nwrote {args.figure}")


if __name__ == "__main__":
    main()
