"""gan: pix2pix beside the U-Net trained with L1 and with MSE, scored by metrics that see colour,
and what an epoch of each costs.

Every model has the same generator (cv_unet_hints's: the U-Net given the sketch's background and
colour hints, dropout 0.5), the same data, batches, augmentation and epochs. For each fold (or the
data's own split) and model it runs
    s2p-train <data> <model> trainer.max_epochs=<epochs> num_threads=1
    s2p-eval ckpt_path=<run>/checkpoints/last.ckpt hints=[0,10] hint_placements=[random]
and writes every held-out score, the mean ± std over folds and each run's seconds per epoch
(its training wall time over its epochs, all runs of one invocation under the same load) to a JSON
file with the command that made it; it prints the table as markdown.

The data is an argument, so the same script runs on any corpus:
    python bench/gan.py --out bench/results/gan_pokemon.json --folds 0 1 --epochs 120 \
        --data data=sketch2photo data.data_dir=../shared/data/sketch2photo data.folds=5
    python bench/gan.py --out bench/results/gan_openmoji.json --epochs 10 --pretrained \
        --data data=openmoji data.train_glyphs=1200 data.image_size=64 data.batch_size=16 \
        data.data_dir=data/openmoji-demo-64px-exact
Extra settings for pix2pix alone: --pix2pix model.discriminator.ndf=32 ...; --pretrained adds
pix2pix started from each fold's U-Net (L1) weights (init_from).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GENERATOR = [  # experiment=cv_unet_hints's network and training, without its data
    "model.net.dropout=0.5",
    "model.net.background_input=true",
    "model.net.background_fill=true",
    "model.net.hint_input=true",
    "model.net.hint_residual=true",
    "model.net.hint_correction=0.25",
    "data.image_size=128",
    "data.batch_size=4",
    "data.augment.enabled=true",
    "data.augment.p=0.5",
    "data.augment.stop_after=0.9",
]
MODELS = {
    "U-Net, L1": ["model=unet", "model.loss=l1", "model.lr=1e-3"],
    "U-Net, MSE": ["model=unet", "model.loss=mse", "model.lr=1e-3"],
    "pix2pix": ["model=pix2pix"],
}
PRETRAINED = "pix2pix from U-Net (L1)"
QUIET = [
    "callbacks.progress_bar=null",
    "trainer.enable_progress_bar=false",
    "callbacks.sample_grids.every_n_epochs=0",
    "num_threads=1",
]
COLUMNS = ("psnr", "ssim", "de00", "dcf", "dcf_signed", "cf", "cf_target", "haarpsi")
HINTS = (0, 10)


def run(*command: str) -> None:
    subprocess.run(
        ["nice", "-n", "10", str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def read_json(path: Path) -> dict | list:
    return json.loads(path.read_text())


def train_and_score(out: Path, fold: int | None, name: str, settings: list[str]) -> list[dict]:
    """One model on one fold: its held-out rows at each hint count, with its cost."""
    label = name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    where = f"fold{fold}" if fold is not None else "split"
    run_dir, eval_dir = out / "runs" / where / label, out / "evals" / where / label
    if not (run_dir / "metrics.json").is_file():
        run("s2p-train", *settings, f"hydra.run.dir={run_dir}")
    record = read_json(run_dir / "metrics.json")
    if record["status"] != "ok":
        sys.exit(f"{run_dir} ended {record['status']}: {record.get('error')}")
    if not (eval_dir / "hints.json").is_file():
        run(
            "s2p-eval",
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            f"hints=[{','.join(map(str, HINTS))}]",
            "hint_placements=[random]",
            f"hydra.run.dir={eval_dir}",
        )
    seconds_per_epoch = record["wall_time_s"] / record["epochs"]
    return [
        {
            "fold": fold,
            "model": name,
            "seconds_per_epoch": seconds_per_epoch,
            **{key: row[key] for key in ("hints", *COLUMNS)},
        }
        for row in read_json(eval_dir / "hints.json")
    ]


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}"


def summary(rows: list[dict], models: list[str]) -> tuple[list[dict], str]:
    """Mean ± std over folds per model and hint count, as JSON rows and a markdown table."""
    table, lines = [], []
    header = ["model", "hints", *COLUMNS, "s/epoch"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for hints in HINTS:
        for model in models:
            mine = [row for row in rows if row["model"] == model and row["hints"] == hints]
            if not mine:
                continue
            entry = {"model": model, "hints": hints, "folds": len(mine)}
            for column in (*COLUMNS, "seconds_per_epoch"):
                values = [row[column] for row in mine]
                entry[column] = statistics.mean(values)
                entry[column + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            entry["seconds_per_epoch"] = statistics.median(row["seconds_per_epoch"] for row in mine)
            table.append(entry)
            cells = [mean_std([row[c] for row in mine]) for c in COLUMNS]
            lines.append(
                f"| {model} | {hints} | "
                + " | ".join(cells)
                + f" | {entry['seconds_per_epoch']:.3g} |"
            )
    return table, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--data", nargs="+", required=True, help="the data overrides")
    parser.add_argument("--folds", type=int, nargs="*", default=[], help="data.fold values")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--pix2pix", nargs="*", default=[], help="pix2pix's own overrides")
    parser.add_argument("--pretrained", action="store_true", help=f"add '{PRETRAINED}'")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (each one thread)")
    args = parser.parse_args()
    command = "python bench/gan.py " + shlex.join(sys.argv[1:])
    work = args.out.with_suffix("")  # run dirs beside the JSON, e.g. bench/results/gan_pokemon/
    # --data last: it may change the generator's size, batch or augmentation for its corpus
    common = [*GENERATOR, *args.data, f"trainer.max_epochs={args.epochs}", *QUIET]
    folds = args.folds or [None]
    models = {**MODELS, "pix2pix": [*MODELS["pix2pix"], *args.pix2pix]}

    def settings(fold: int | None, name: str) -> list[str]:
        return [*common, *([f"data.fold={fold}"] if fold is not None else []), *models[name]]

    def job(fold: int | None, name: str) -> list[dict]:
        rows = train_and_score(work, fold, name, settings(fold, name))
        if name == "U-Net, L1" and args.pretrained:  # its weights start pix2pix
            where = f"fold{fold}" if fold is not None else "split"
            start = work / "runs" / where / "U-Net_L1" / "checkpoints" / "last.ckpt"
            pretrained = [*settings(fold, "pix2pix"), f"init_from={start}"]
            rows += train_and_score(work, fold, PRETRAINED, pretrained)
        return rows

    started = time.time()
    order = ["pix2pix", "U-Net, L1", "U-Net, MSE"]  # the longest first
    with ThreadPoolExecutor(args.jobs) as pool:
        results = pool.map(lambda task: job(*task), [(f, m) for m in order for f in folds])
        rows = [row for result in results for row in result]
    names = [*MODELS, *([PRETRAINED] if args.pretrained else [])]
    table, markdown = summary(rows, names)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": command,
                "budget": {
                    "epochs": args.epochs,
                    "folds": args.folds,
                    "data": args.data,
                    "generator_and_training": GENERATOR,
                    "models": {name: models.get(name, ["pix2pix + init_from"]) for name in names},
                    "threads_per_run": 1,
                    "runs_at_once": args.jobs,
                },
                "wall_time_s": round(time.time() - started),
                "summary": table,
                "runs": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"{command}\n\n{markdown}")


if __name__ == "__main__":
    main()
