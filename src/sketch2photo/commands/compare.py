"""s2p-compare: every run under a sweep (or outputs) dir in one table, sorted by a metric.

    s2p-compare dir=outputs/train-sweeps/2026-11-25_23-40-00 [metric=val/loss] [out=DIR]
    s2p-compare outputs/train-sweeps/2026-11-25_23-40-00 [--metric val/loss] [--out DIR]  # the same

One row per training run: the overrides that differ between runs, the final metrics, epochs, wall
time, status and the first line of a failed run's error (in full below the table). The same table
is written as comparison.csv and comparison.md, with comparison.png: the metric against the swept
parameter when there is one, else the metric's curves over epochs. Eval runs (s2p-eval) get a table
of their own, written as comparison_eval.csv and a section of comparison.md.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from matplotlib.figure import Figure
from omegaconf import DictConfig

from sketch2photo.checks import USAGES
from sketch2photo.data.layouts import natural_key
from sketch2photo.errors import UserError, require_keys
from sketch2photo.metrics import higher_is_better
from sketch2photo.runs.record import RECORD_NAME, read_record

DEFAULT_METRICS = (
    "val/psnr",
    "val/loss",
    "train/loss",
)  # the first one any run has; metric= overrides
OUTPUT_NAME = "comparison"
STAGES = ("val", "train", "test")  # the order of the metric columns, after the chosen metric
ERROR_WIDTH = 60  # characters of an error in the printed table; the full error follows the table
# Overrides that are the sweep's bookkeeping, not settings: an Optuna trial's number names its dir
BOOKKEEPING_KEYS = ("optuna_trial",)
RATE_LIKE = (
    "lr",
    "learning_rate",
    "weight_decay",
)  # keys plotted on a log axis whatever their spread


@dataclass
class Run:
    name: str  # the path relative to the dir given
    overrides: dict[str, str]
    status: str
    error: str | None = None
    metrics: dict[str, float] = field(
        default_factory=dict
    )  # an eval run's without the subset: "psnr"
    history: list[dict[str, float]] = field(default_factory=list)
    epochs: int | None = None
    wall_time_s: float | None = None
    source: str | None = None  # eval runs only: the checkpoint or baseline scored
    subset: str | None = None  # eval runs only

    def value(self, metric: str) -> float:
        return self.metrics.get(metric, math.nan)


def is_run_dir(path: Path) -> bool:
    return (path / ".hydra").is_dir() or (path / RECORD_NAME).is_file()


def find_runs(root: Path) -> list[Run]:
    """Every dir under root (root included) that holds .hydra/ or metrics.json."""
    if not root.is_dir():
        raise UserError(
            f"dir={root} is not a directory; give a sweep dir (outputs/train-sweeps/<date>) or outputs."
        )
    dirs = [root, *(path for path in root.rglob("*") if path.is_dir())]
    runs = [read_run(path, root) for path in dirs if is_run_dir(path)]
    if not runs:
        raise UserError(
            f"dir={root}: no runs under it; a run dir holds .hydra/ or metrics.json "
            "(made by s2p-train, s2p-eval)."
        )
    return sorted(runs, key=lambda run: natural_key(run.name))


def read_run(path: Path, root: Path) -> Run:
    overrides_file = path / ".hydra" / "overrides.yaml"
    lines = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    parsed = OverridesParser.create().parse_overrides(lines or [])
    overrides = {
        override.key_or_group: override.get_value_element_as_str()
        if override.value() is not None
        else ""
        for override in parsed
        if override.key_or_group not in BOOKKEEPING_KEYS
    }
    name = path.relative_to(root).as_posix() if path != root else path.resolve().name
    record = read_record(path)
    if record is None:
        return Run(
            name,
            overrides,
            "failed",
            error=error_from_log(path) or "no metrics.json: killed, or still running",
        )
    metrics = {key: float(value) for key, value in (record.get("metrics") or {}).items()}
    if (
        "source" in record
    ):  # written by s2p-eval: its metrics are named after the subset, which has a column
        return Run(
            name,
            overrides,
            record.get("status", "ok"),
            record.get("error"),
            metrics={measure(key): value for key, value in metrics.items()},
            source=str(record["source"]),
            subset=record.get("subset"),
        )
    return Run(
        name,
        overrides,
        record.get("status", "failed"),
        record.get("error"),
        metrics,
        history=[
            {key: float(value) for key, value in row.items()} for row in record.get("history") or []
        ],
        epochs=record.get("epochs"),
        wall_time_s=record.get("wall_time_s"),
    )


def measure(metric: str) -> str:
    """'val/psnr' -> 'psnr'."""
    return metric.rsplit("/", 1)[-1]


def error_from_log(path: Path) -> str | None:
    """The last ERROR line of the run's Hydra log (train.log), if there is one."""
    errors = [
        line
        for log in sorted(path.glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "][ERROR] - " in line
    ]
    return errors[-1].split("][ERROR] - ", 1)[1] if errors else None


def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value is not the same in every run, in the order they were typed."""
    keys = list(dict.fromkeys(key for run in runs for key in run.overrides))
    return [key for key in keys if len({run.overrides.get(key) for run in runs}) > 1]


def choose_metric(runs: list[Run], evals: list[Run], wanted: str | None) -> str:
    found = {name for run in runs for name in run.metrics}
    measures = {name for run in evals for name in run.metrics}
    if wanted:
        if (found or measures) and wanted not in found and measure(wanted) not in measures:
            raise UserError(
                f"metric={wanted}: no run has it. Metrics found: {', '.join(sorted(found | measures))}."
            )
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
    """Every metric the runs have: the chosen one first, then by stage (train, val, test) and
    name."""

    def order(name: str) -> tuple:
        stage = name.split("/")[0]
        return name != metric, STAGES.index(stage) if stage in STAGES else len(STAGES), name

    return sorted({name for run in runs for name in run.metrics}, key=order)


def table(runs: list[Run], metric: str, short_errors: bool = False) -> tuple[list[str], list[list]]:
    """Header and rows: run, differing overrides, metrics (the chosen one first), epochs, time,
    status, error."""
    keys = swept_keys(runs)
    names = metric_names(runs, metric)
    header = ["run", *keys, *names, "epochs", "wall_time_s", "status", "error"]
    rows = [
        [
            run.name,
            *(run.overrides.get(key, "") for key in keys),
            *(run.metrics.get(name) for name in names),
            run.epochs,
            run.wall_time_s,
            run.status,
            one_line(run.error) if short_errors else " ".join((run.error or "").split()),
        ]
        for run in rank(runs, metric)
    ]
    return header, rows


def eval_table(evals: list[Run], by: str) -> tuple[list[str], list[list]]:
    """The eval runs, best `by` ("psnr") first: run, what was scored, on which subset, the
    metrics."""
    names = sorted(
        {name for run in evals for name in run.metrics}, key=lambda name: (name != by, name)
    )
    rows = [
        [run.name, run.source, run.subset, *(run.metrics.get(name) for name in names)]
        for run in rank(evals, by)
    ]
    return ["run", "source", "subset", *names], rows


def eval_measure(evals: list[Run], metric: str) -> str:
    """What the eval runs are sorted by: the chosen metric's measure (val/loss -> loss), else
    psnr."""
    wanted = measure(metric)
    return wanted if any(wanted in run.metrics for run in evals) else measure(DEFAULT_METRICS[0])


def one_line(text: str | None, width: int = ERROR_WIDTH) -> str:
    """The first line of text, cut to width characters with "…" when anything was left out."""
    lines = (text or "").strip().splitlines()
    if not lines:
        return ""
    if len(lines) == 1 and len(lines[0]) <= width:
        return lines[0]
    return lines[0][: width - 1].rstrip() + "…"


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
    return (
        f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"
        if len(values) > 1
        else f"{values[0]:.4g}"
    )


def cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def as_text(header: list[str], rows: list[list]) -> str:
    cells = [header, *([cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def as_markdown(header: list[str], rows: list[list]) -> str:
    def line(values):
        return "| " + " | ".join(cell(value).replace("|", "\\|") for value in values) + " |"

    return (
        "\n".join([line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]) + "\n"
    )


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows([["" if value is None else value for value in row] for row in rows])


def plot(runs: list[Run], metric: str, title: str) -> Figure:
    """The metric against the swept parameter with the most values (one line per setting of the
    other swept parameters); with nothing swept, the metric over epochs for every run. Only runs
    with a finite value of the metric are plotted against a parameter, and only theirs decide the
    axis."""
    # a pruned run's metric is from the epoch it stopped at: not comparable with the others' final
    done = [run for run in runs if run.status != "pruned" and math.isfinite(run.value(metric))]
    keys = swept_keys(done)
    lines: list[tuple[str, list, list]] = []  # label, xs, ys
    if keys:
        x_key = max(
            keys,
            key=lambda key: (len({run.overrides.get(key) for run in done}), all_numbers(done, key)),
        )
        numeric = all_numbers(done, x_key)
        categories = sorted({run.overrides.get(x_key, "") for run in done}, key=natural_key)
        series: dict[str, list[tuple[float, float]]] = {}
        for run in done:
            label = ", ".join(
                f"{key.rsplit('.', 1)[-1]}={run.overrides.get(key, '')}"
                for key in keys
                if key != x_key
            )
            raw = run.overrides.get(x_key, "")
            series.setdefault(label, []).append(
                (float(raw) if numeric else categories.index(raw), run.value(metric))
            )
        lines = [
            (one_line(label), *zip(*sorted(points), strict=True))
            for label, points in series.items()
        ]
    else:
        for run in runs:
            points = [(row["epoch"], row[metric]) for row in run.history if metric in row]
            if points:
                lines.append((one_line(run.name), *zip(*points, strict=True)))

    labels = [label for label, _, _ in lines if label]
    columns = max(1, min(len(labels), 80 // (max(map(len, labels), default=0) + 6)))
    legend_rows = math.ceil(len(labels) / columns)
    # The legend goes below the axes, and the figure grows by its rows: it never covers the lines or
    # runs off.
    figure = Figure(figsize=(7, 4.5 + 0.2 * legend_rows), layout="constrained")
    axes = figure.subplots()
    for label, xs, ys in lines:
        axes.plot(xs, ys, marker="o" if keys else ".", label=label or None)
    if keys:
        if (
            numeric
            and min(float(run.overrides[x_key]) for run in done) > 0
            and (rate_like(x_key) or spread(done, x_key) >= 10)
        ):
            axes.set_xscale("log")
        if not numeric:
            axes.set_xticks(range(len(categories)), categories)
        axes.set_xlabel(x_key)
        axes.set_ylabel(f"final {metric}")
    else:
        axes.set_xlabel("epoch")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_ylabel(metric)
    pruned = sum(run.status == "pruned" for run in runs)
    missing = len(runs) - len(done) - pruned
    left_out = [f"{missing} run(s) without {metric}"] if missing else []
    left_out += [f"{pruned} pruned run(s)"] if pruned else []
    axes.set_title(
        title + (f" ({' and '.join(left_out)} not shown)" if left_out else ""), fontsize=9
    )
    if labels:
        figure.legend(loc="outside lower center", ncols=columns, fontsize=8, frameon=False)
    axes.grid(alpha=0.3)
    return figure


def rate_like(key: str) -> bool:
    """model.lr, optimizer.learning_rate, model.weight_decay: values that are swept in powers of
    ten."""
    return any(part in key.rsplit(".", 1)[-1] for part in RATE_LIKE)


def all_numbers(runs: list[Run], key: str) -> bool:
    try:
        return all(math.isfinite(float(run.overrides[key])) for run in runs)
    except (KeyError, ValueError):
        return False


def spread(runs: list[Run], key: str) -> float:
    values = [float(run.overrides[key]) for run in runs]
    return max(values) / min(values)


def compare(
    root: Path, metric: str | None = None, out: Path | None = None
) -> tuple[str, list[Path]]:
    """Summarise the runs under root; returns the printed text and the files written."""
    found = find_runs(root)
    runs = [run for run in found if run.source is None]
    evals = [run for run in found if run.source is not None]
    metric = choose_metric(runs, evals, metric)
    # A single run dir: the files go next to it, not among its own outputs
    out = out or (root.resolve().parent if len(found) == 1 and is_run_dir(root) else root)
    out.mkdir(parents=True, exist_ok=True)
    better = "higher" if higher_is_better(metric) else "lower"
    text, markdown, paths = [], [], []
    if runs:
        header, rows = table(runs, metric)
        paths += [out / f"{OUTPUT_NAME}.csv", out / f"{OUTPUT_NAME}.png"]
        write_csv(paths[0], header, rows)
        plot(runs, metric, f"{metric} ({better} is better), {root.resolve().name}").savefig(
            paths[1], dpi=120
        )
        markdown.append(as_markdown(header, rows))
        failed = [run for run in rank(runs, metric) if run.status != "ok"]
        pruned = sum(run.status == "pruned" for run in runs)
        text += [
            f"{len(runs)} run(s) under {root}, {len(failed)} not ok"
            + (
                f" ({pruned} pruned by the Optuna study: metrics of the epoch they stopped at)"
                if pruned
                else ""
            )
            + f", sorted by {metric} ({better} is better)",
            "",
            as_text(*table(runs, metric, short_errors=True)),
            "",
        ]
        errors = [
            f"  {run.name}: " + run.error.strip().replace("\n", "\n    ")
            for run in failed
            if run.error
        ]
        if errors:
            text += ["errors:", *errors, ""]
        folds = fold_summary(runs, metric)
        if folds:
            markdown.append("Mean ± std over the folds (sample std):\n\n" + as_markdown(*folds))
            text += ["mean ± std over the folds (sample std):", "", as_text(*folds), ""]
        common = {
            key: value for key, value in runs[0].overrides.items() if key not in swept_keys(runs)
        }
        if common and len(runs) > 1:
            text += [
                "same in every run: " + " ".join(f"{key}={value}" for key, value in common.items()),
                "",
            ]
    if evals:
        by = eval_measure(evals, metric)
        header, rows = eval_table(evals, by)
        paths.append(out / f"{OUTPUT_NAME}_eval.csv")
        write_csv(paths[-1], header, rows)
        order = f"sorted by {by} ({'higher' if higher_is_better(by) else 'lower'} is better)"
        markdown.append(f"## Eval runs (s2p-eval), {order}\n\n" + as_markdown(header, rows))
        text += [
            f"{len(evals)} eval run(s) (s2p-eval) under {root}, {order}",
            "",
            as_text(header, rows),
            "",
        ]
    paths.append(out / f"{OUTPUT_NAME}.md")
    paths[-1].write_text("\n".join(markdown))
    text.append(f"written to {out}: " + ", ".join(path.name for path in paths))
    return "\n".join(text), paths


def main(cfg: DictConfig) -> None:
    require_keys(cfg, USAGES["compare"])
    metric = None if cfg.metric is None else str(cfg.metric)
    print(
        compare(Path(str(cfg.dir)), metric, Path(str(cfg.out)) if cfg.out is not None else None)[0]
    )
