"""s2p-compare: every run under a sweep (or outputs) dir in one table, sorted by a metric.

    s2p-compare outputs/train-sweeps/2026-11-25_23-40-00 [--metric val/loss] [--out DIR]

One row per run: the overrides that differ between runs, the final metrics, epochs, wall time,
status (and the error of a failed run). The same table is written as comparison.csv and
comparison.md, with comparison.png: the metric against the swept parameter when there is one,
else the metric's curves over epochs.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sketch2photo.data.layouts import natural_key
from sketch2photo.errors import UserError
from sketch2photo.metrics import higher_is_better

DEFAULT_METRICS = ("val/psnr", "val/loss", "train/loss")  # the first one any run has; --metric overrides
OUTPUT_NAME = "comparison"
STAGES = ("val", "train", "test")  # the order of the metric columns, after the chosen metric


@dataclass
class Run:
    name: str  # the path relative to the dir given
    overrides: dict[str, str]
    status: str
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    epochs: int | None = None
    wall_time_s: float | None = None

    def value(self, metric: str) -> float:
        return self.metrics.get(metric, math.nan)


def find_runs(root: Path) -> list[Run]:
    """Every dir under root (root included) that holds .hydra/ or metrics.json."""
    from sketch2photo.run_record import RECORD_NAME

    if not root.is_dir():
        raise UserError(f"{root} is not a directory; give a sweep dir (outputs/train-sweeps/<date>) or outputs/.")
    dirs = [root, *(path for path in root.rglob("*") if path.is_dir())]
    runs = [read_run(path, root) for path in dirs if (path / ".hydra").is_dir() or (path / RECORD_NAME).is_file()]
    if not runs:
        raise UserError(f"no runs under {root}: a run dir holds .hydra/ and metrics.json (made by s2p-train).")
    return sorted(runs, key=lambda run: natural_key(run.name))


def read_run(path: Path, root: Path) -> Run:
    from sketch2photo.run_record import read_record

    overrides_file = path / ".hydra" / "overrides.yaml"
    lines = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    overrides = dict(line.split("=", 1) if "=" in line else (line, "") for line in lines or [])
    name = path.relative_to(root).as_posix()
    record = read_record(path)
    if record is None:
        return Run(name, overrides, "failed", error=error_from_log(path) or "no metrics.json: killed, or still running")
    return Run(
        name, overrides, record.get("status", "failed"), record.get("error"),
        metrics={key: float(value) for key, value in (record.get("metrics") or {}).items()},
        history=[{key: float(value) for key, value in row.items()} for row in record.get("history") or []],
        epochs=record.get("epochs"), wall_time_s=record.get("wall_time_s"),
    )


def error_from_log(path: Path) -> str | None:
    """The last ERROR line of the run's Hydra log (train.log), if there is one."""
    errors = [line for log in sorted(path.glob("*.log")) for line in log.read_text(errors="replace").splitlines()
              if "][ERROR] - " in line]
    return errors[-1].split("][ERROR] - ", 1)[1] if errors else None


def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value is not the same in every run, in the order they were typed."""
    keys = list(dict.fromkeys(key for run in runs for key in run.overrides))
    return [key for key in keys if len({run.overrides.get(key) for run in runs}) > 1]


def choose_metric(runs: list[Run], wanted: str | None) -> str:
    found = {name for run in runs for name in run.metrics}
    if wanted:
        if found and wanted not in found:
            raise UserError(f"--metric {wanted}: no run has it. Metrics found: {', '.join(sorted(found))}.")
        return wanted
    return next((name for name in DEFAULT_METRICS if name in found), DEFAULT_METRICS[0])


def rank(runs: list[Run], metric: str) -> list[Run]:
    """Best first; runs without a finite value last, in name order."""
    sign = -1.0 if higher_is_better(metric) else 1.0

    def key(run: Run) -> tuple:
        value = run.value(metric)
        finite = math.isfinite(value)
        return (not finite, sign * value if finite else 0.0, natural_key(run.name))

    return sorted(runs, key=key)


def metric_names(runs: list[Run], metric: str) -> list[str]:
    """Every metric the runs have: the chosen one first, then by stage (train, val, test) and name."""

    def order(name: str) -> tuple:
        stage = name.split("/")[0]
        return name != metric, STAGES.index(stage) if stage in STAGES else len(STAGES), name

    return sorted({name for run in runs for name in run.metrics}, key=order)


def table(runs: list[Run], metric: str) -> tuple[list[str], list[list]]:
    """Header and rows: run, differing overrides, metrics (the chosen one first), epochs, time, status, error."""
    keys = swept_keys(runs)
    names = metric_names(runs, metric)
    header = ["run", *keys, *names, "epochs", "wall_time_s", "status", "error"]
    rows = [
        [run.name, *(run.overrides.get(key, "") for key in keys), *(run.metrics.get(name) for name in names),
         run.epochs, run.wall_time_s, run.status, " ".join((run.error or "").split())]
        for run in rank(runs, metric)
    ]
    return header, rows


def fold_summary(runs: list[Run], metric: str) -> tuple[list[str], list[list]] | None:
    """With data.fold swept (cross-validation): mean ± std over the folds of every metric, one row
    per setting of the other swept overrides. Only finished runs count; `folds` says how many."""
    keys = swept_keys(runs)
    if "data.fold" not in keys:
        return None
    others = [key for key in keys if key != "data.fold"]
    groups: dict[tuple, list[Run]] = {}
    for run in rank([run for run in runs if run.status == "ok"], metric):
        groups.setdefault(tuple(run.overrides.get(key, "") for key in others), []).append(run)
    names = metric_names(runs, metric)
    rows = []
    for setting, members in groups.items():
        values = [[run.metrics[name] for run in members if name in run.metrics] for name in names]
        rows.append([*setting, len(members), *(mean_std(v) for v in values)])
    return [*others, "folds", *names], rows


def mean_std(values: list[float]) -> str:
    if not values:
        return ""
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}" if len(values) > 1 else f"{values[0]:.4g}"


def cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def as_text(header: list[str], rows: list[list]) -> str:
    cells = [header, *([cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def as_markdown(header: list[str], rows: list[list]) -> str:
    def line(values):
        return "| " + " | ".join(cell(value).replace("|", "\\|") for value in values) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]) + "\n"


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows([["" if value is None else value for value in row] for row in rows])


def plot(runs: list[Run], metric: str, title: str):
    """The metric against the swept parameter with the most values (one line per setting of the other
    swept parameters); with nothing swept, the metric over epochs for every run."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    keys = swept_keys(runs)
    done = [run for run in runs if math.isfinite(run.value(metric))]
    if keys:
        x_key = max(keys, key=lambda key: (len({run.overrides.get(key) for run in runs}), all_numbers(runs, key)))
        numeric = all_numbers(done, x_key)
        categories = sorted({run.overrides.get(x_key, "") for run in runs}, key=natural_key)
        series: dict[str, list[tuple[float, float]]] = {}
        for run in done:
            label = ", ".join(f"{key}={run.overrides.get(key, '')}" for key in keys if key != x_key)
            raw = run.overrides.get(x_key, "")
            series.setdefault(label, []).append((float(raw) if numeric else categories.index(raw), run.value(metric)))
        for label, points in series.items():
            xs, ys = zip(*sorted(points))
            axes.plot(xs, ys, marker="o", label=label or None)
        if numeric and done and min(float(r.overrides[x_key]) for r in done) > 0 and spread(done, x_key) >= 10:
            axes.set_xscale("log")
        if not numeric:
            axes.set_xticks(range(len(categories)), categories)
        axes.set_xlabel(x_key)
        axes.set_ylabel(f"final {metric}")
    else:
        for run in runs:
            points = [(row["epoch"], row[metric]) for row in run.history if metric in row]
            if points:
                axes.plot(*zip(*points), marker=".", label=run.name)
        axes.set_xlabel("epoch")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_ylabel(metric)
    failed = len(runs) - len(done)
    axes.set_title(title + (f" ({failed} run(s) without {metric} not shown)" if failed else ""), fontsize=9)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def all_numbers(runs: list[Run], key: str) -> bool:
    try:
        return all(math.isfinite(float(run.overrides[key])) for run in runs)
    except (KeyError, ValueError):
        return False


def spread(runs: list[Run], key: str) -> float:
    values = [float(run.overrides[key]) for run in runs]
    return max(values) / min(values)


def compare(root: Path, metric: str | None = None, out: Path | None = None) -> tuple[str, list[Path]]:
    """Summarise the runs under root; returns the printed text and the files written."""
    runs = find_runs(root)
    metric = choose_metric(runs, metric)
    header, rows = table(runs, metric)
    out = out or root
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{OUTPUT_NAME}.{suffix}" for suffix in ("csv", "md", "png")]
    write_csv(paths[0], header, rows)
    folds = fold_summary(runs, metric)
    markdown = as_markdown(header, rows)
    if folds:
        markdown += "\nMean ± std over the folds (sample std):\n\n" + as_markdown(*folds)
    paths[1].write_text(markdown)
    better = "higher" if higher_is_better(metric) else "lower"
    plot(runs, metric, f"{metric} ({better} is better), {root.resolve().name}").savefig(paths[2], dpi=120)
    failed = sum(run.status != "ok" for run in runs)
    common = {key: value for key, value in runs[0].overrides.items() if key not in swept_keys(runs)}
    text = [f"{len(runs)} run(s) under {root}, {failed} not ok, sorted by {metric} ({better} is better)", "",
            as_text(header, rows), ""]
    if folds:
        text += ["mean ± std over the folds (sample std):", "", as_text(*folds), ""]
    if common and len(runs) > 1:
        text.append("same in every run: " + " ".join(f"{key}={value}" for key, value in common.items()))
    text.append("written: " + ", ".join(str(path) for path in paths))
    return "\n".join(text), paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="s2p-compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="a sweep dir, a run dir or an outputs dir")
    parser.add_argument("--metric", help=f"sort and plot by this metric (default: the first of {', '.join(DEFAULT_METRICS)} that the runs have)")
    parser.add_argument("--out", type=Path, help="where comparison.{csv,md,png} go (default: the dir given)")
    args = parser.parse_args(argv)
    try:
        text, _ = compare(args.dir, args.metric, args.out)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(text)


if __name__ == "__main__":
    main()
