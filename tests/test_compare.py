"""s2p-compare on hand-made run dirs: the table, the eval table, errors, the plot, where the files
go, and the command line (key=value, and the older `DIR --metric X --out Y`)."""

from __future__ import annotations

import csv
import math
import sys

import pytest
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg

from helpers import compose_config
from sketch2photo.cli import compare as cli
from sketch2photo.cli import compare_arguments as hydra_arguments
from sketch2photo.commands.compare import compare, find_runs, plot
from sketch2photo.errors import UserError
from sketch2photo.runs.record import finished, write_record


def make_run(path, overrides, record=None, log=""):
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (path / "train.log").write_text(log)
    if record is not None:
        write_record(
            path, {"status": "ok", "error": None, "epochs": 2, "wall_time_s": 1.5, **record}
        )


def test_a_run_is_finished_only_when_its_record_says_ok(tmp_path):
    for status in ("ok", "failed", "interrupted", "pruned"):
        write_record(tmp_path / status, {"status": status})
    assert finished(tmp_path / "ok")
    assert not any(finished(tmp_path / name) for name in ("failed", "interrupted", "pruned"))
    assert not finished(tmp_path / "no_record")  # the benchmarks rerun such a run


def make_eval_run(path, source, subset, psnr, l1):
    """What s2p-eval leaves: its metrics are named after the subset, there is no loss and no
    history."""
    make_run(
        path,
        [source if source.startswith("baseline=") else f"ckpt_path={source}", f"subset={subset}"],
    )
    metrics = {"psnr": psnr, "ssim": 0.5, "l1": l1, "mse": 0.1}
    write_record(
        path,
        {
            "status": "ok",
            "source": source,
            "subset": subset,
            "pairs": 12,
            "metrics": {f"{subset}/{name}": value for name, value in metrics.items()},
        },
    )


def history(metric, *values):
    return [{"epoch": epoch, metric: value} for epoch, value in enumerate(values, 1)]


def read_csv(path):
    with open(path) as file:
        return list(csv.DictReader(file))


def test_compare_table_outputs_and_plot_against_the_swept_parameter(tmp_path):
    root = tmp_path / "sweep"
    make_run(
        root / "0", ["model.lr=0.001", "seed=1"], {"metrics": {"val/psnr": 10.0, "val/loss": 0.2}}
    )
    make_run(
        root / "1", ["model.lr=0.1", "seed=1"], {"metrics": {"val/psnr": 12.0, "val/loss": 0.1}}
    )
    make_run(
        root / "2",
        ["model.lr=1", "seed=1"],
        log="[2026-01-01 00:00:00,000][sketch2photo][ERROR] - it broke\n",
    )
    make_run(
        root / "10", ["model.lr=0.01", "seed=1"], {"metrics": {"val/psnr": 11.0, "val/loss": "nan"}}
    )
    text, paths = compare(root)
    rows = [line.split()[0] for line in text.splitlines()[4:8]]
    assert rows == ["1", "10", "0", "2"]  # best val/psnr first, the run without metrics.json last
    assert "failed  it broke" in text
    assert "same in every run: seed=1" in text
    assert [path.name for path in paths] == ["comparison.csv", "comparison.png", "comparison.md"]
    with open(root / "comparison.csv") as file:
        table = list(csv.reader(file))
    assert table[0][:4] == ["run", "model.lr", "val/psnr", "val/loss"]
    assert math.isnan(float(table[2][3]))
    axes = plot(find_runs(root), "val/loss", "title").axes[0]
    assert axes.get_xlabel() == "model.lr"
    assert axes.get_xscale() == "log"
    assert list(axes.lines[0].get_xdata()) == [0.001, 0.1]
    assert list(axes.lines[0].get_ydata()) == [0.2, 0.1]
    assert "2 run(s) without val/loss not shown" in axes.get_title()

    text, _ = compare(root, "val/loss", tmp_path / "elsewhere")
    assert [line.split()[0] for line in text.splitlines()[4:8]] == [
        "1",
        "0",
        "2",
        "10",
    ]  # lower is better; no value: by name
    assert (tmp_path / "elsewhere" / "comparison.png").is_file()


def test_compare_without_validation_plots_curves_of_train_loss(tmp_path):
    for name, values in (("a", (0.5, 0.3)), ("b", (0.4, 0.2))):
        make_run(
            tmp_path / name,
            ["data.split=none"],
            {"metrics": {"train/loss": values[-1]}, "history": history("train/loss", *values)},
        )
    text, _ = compare(tmp_path)
    assert "sorted by train/loss (lower is better)" in text
    assert text.splitlines()[4].startswith("b ")
    axes = plot(find_runs(tmp_path), "train/loss", "title").axes[0]
    assert axes.get_xlabel() == "epoch"
    assert [line.get_label() for line in axes.lines] == ["a", "b"]
    assert list(axes.lines[1].get_ydata()) == [0.4, 0.2]


def test_compare_reports_mean_and_std_over_folds(tmp_path):
    psnr = {
        ("unet", 0): 15.0,
        ("unet", 1): 17.0,
        ("unet", 2): 16.0,
        ("ae", 0): 13.0,
        ("ae", 1): 14.0,
        ("ae", 2): 15.0,
    }
    for number, ((model, fold), value) in enumerate(psnr.items()):
        make_run(
            tmp_path / str(number),
            [f"model={model}", f"data.fold={fold}"],
            {"metrics": {"val/psnr": value}},
        )
    make_run(tmp_path / "9", ["model=ae", "data.fold=3"])  # failed: left out of the means
    text, _ = compare(tmp_path)
    summary = text.split("mean ± std over the folds")[1].splitlines()
    assert summary[2].split()[:2] == ["model", "folds"]
    assert summary[4].split() == ["unet", "3", "16", "±", "1"]  # best mean first
    assert summary[5].split() == ["ae", "3", "14", "±", "1"]
    assert "| unet | 3 | 16 ± 1 |" in (tmp_path / "comparison.md").read_text()


# -- an outputs folder holds eval runs too --------------------------------------------------------
def test_eval_runs_get_their_own_table(tmp_path):
    make_run(
        tmp_path / "train" / "a",
        ["model.lr=0.001"],
        {"metrics": {"val/psnr": 14.0, "val/loss": 0.2}},
    )
    make_run(
        tmp_path / "train" / "b",
        ["model.lr=0.01"],
        {"metrics": {"val/psnr": 15.0, "val/loss": 0.1}},
    )
    make_eval_run(
        tmp_path / "eval" / "x", "outputs/train/a/checkpoints/best.ckpt", "test", 13.0, l1=0.3
    )
    make_eval_run(tmp_path / "eval" / "y", "baseline=mean", "val", 11.0, l1=0.2)
    text, paths = compare(tmp_path)

    assert text.startswith("2 run(s) under")
    assert [row["run"] for row in read_csv(tmp_path / "comparison.csv")] == ["train/b", "train/a"]
    assert (
        "ckpt_path" not in read_csv(tmp_path / "comparison.csv")[0]
    )  # eval overrides do not widen the main table
    evals = read_csv(tmp_path / "comparison_eval.csv")
    assert list(evals[0])[:4] == [
        "run",
        "source",
        "subset",
        "psnr",
    ]  # the subset has a column, not a metric prefix
    assert [(row["run"], row["source"], row["subset"], row["psnr"]) for row in evals] == [
        ("eval/x", "outputs/train/a/checkpoints/best.ckpt", "test", "13.0"),
        ("eval/y", "baseline=mean", "val", "11.0"),
    ]
    assert "2 eval run(s) (s2p-eval) under" in text
    assert (
        "## Eval runs (s2p-eval), sorted by psnr (higher is better)"
        in (tmp_path / "comparison.md").read_text()
    )
    assert tmp_path / "comparison_eval.csv" in paths

    text, _ = compare(tmp_path, "val/l1")
    assert "2 eval run(s) (s2p-eval) under" in text
    assert "sorted by l1 (lower is better)" in text
    assert [row["run"] for row in read_csv(tmp_path / "comparison_eval.csv")] == [
        "eval/y",
        "eval/x",
    ]
    text, _ = compare(tmp_path, "val/loss")  # s2p-eval writes no loss: its runs go by psnr
    assert "2 eval run(s) (s2p-eval) under" in text
    assert text.count("sorted by psnr (higher is better)") == 1

    text, paths = compare(tmp_path / "eval")  # only eval runs: no main table, no plot
    assert text.startswith("2 eval run(s)")
    assert [path.name for path in paths] == ["comparison_eval.csv", "comparison.md"]


# -- errors: one short line in the table, in full below it ----------------------------------------
def test_long_errors_are_cut_in_the_table_and_listed_in_full(tmp_path):
    error = (
        "RuntimeError: CUDA out of memory. "
        + "Tried to allocate 2.00 GiB; " * 40
        + "\nTraceback line two"
    )
    make_run(tmp_path / "0", ["model.lr=0.001"], {"metrics": {"val/psnr": 14.0}})
    make_run(tmp_path / "1", ["model.lr=0.01"], {"status": "failed", "error": error, "metrics": {}})
    text, _ = compare(tmp_path)

    table, listed = text.split("\nerrors:\n")
    assert max(len(line) for line in table.splitlines()) < 150
    row = next(line for line in table.splitlines() if line.startswith("1 "))
    assert row.endswith("…")
    assert "RuntimeError: CUDA out of memory. Tried" in row
    assert listed.startswith(f"  1: {error.splitlines()[0]}\n    Traceback line two\n")
    assert (
        error.splitlines()[0] in read_csv(tmp_path / "comparison.csv")[1]["error"]
    )  # the files keep all of it


# -- the plot -------------------------------------------------------------------------------------
def test_plot_legend_has_short_labels_and_fits_in_the_figure(tmp_path):
    for number, (lr, width, degrees) in enumerate(
        (lr, width, degrees)
        for lr in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
        for width in (8, 16, 32, 64)
        for degrees in (0, 5, 10, 15)
    ):
        make_run(
            tmp_path / str(number),
            [f"model.lr={lr}", f"model.net.width={width}", f"data.augment.degrees={degrees}"],
            {"metrics": {"val/psnr": 10.0 + number / 100}},
        )
    figure = plot(find_runs(tmp_path), "val/psnr", "a title")
    FigureCanvasAgg(figure).draw()

    legend = (figure.legends or [figure.axes[0].get_legend()])[0]
    labels = [text.get_text() for text in legend.get_texts()]
    assert len(labels) == 16
    assert "width=8, degrees=0" in labels
    box, frame = legend.get_window_extent(), figure.bbox
    assert (frame.x0, frame.y0) <= (box.x0, box.y0)
    assert box.x1 <= frame.x1
    assert box.y1 <= frame.y1


@pytest.mark.parametrize(
    "key, values, scale",
    [
        ("model.lr", (1e-3, 3e-3), "log"),  # a spread of 3
        ("model.optimizer.learning_rate", (0.1, 0.2), "log"),
        ("model.weight_decay", (1e-4, 5e-4), "log"),
        ("data.batch_size", (4, 8), "linear"),  # not a rate, a spread under 10
        ("data.batch_size", (1, 16), "log"),
    ],
)
def test_learning_rates_get_a_log_axis_whatever_their_spread(tmp_path, key, values, scale):
    for number, value in enumerate(values):
        make_run(
            tmp_path / str(number), [f"{key}={value}"], {"metrics": {"val/psnr": 10.0 + number}}
        )
    assert plot(find_runs(tmp_path), "val/psnr", "title").axes[0].get_xscale() == scale


def test_failed_runs_do_not_decide_the_axis(tmp_path):
    precision = tmp_path / "precision"
    make_run(precision / "0", ["trainer.precision=32-true"], {"metrics": {"val/psnr": 12.0}})
    make_run(precision / "1", ["trainer.precision=16-mixed"], {"metrics": {"val/psnr": 11.0}})
    make_run(
        precision / "2",
        ["trainer.precision=bogus"],
        {"status": "failed", "error": "ValueError: bogus", "metrics": {}},
    )
    axes = plot(find_runs(precision), "val/psnr", "title").axes[0]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["16-mixed", "32-true"]

    rates = (
        tmp_path / "rates"
    )  # counting the failed runs, data.batch_size would have the most values
    make_run(rates / "0", ["model.lr=0.001", "data.batch_size=4"], {"metrics": {"val/psnr": 12.0}})
    make_run(rates / "1", ["model.lr=0.01", "data.batch_size=4"], {"metrics": {"val/psnr": 11.0}})
    make_run(
        rates / "2", ["model.lr=0.001", "data.batch_size=0"], {"status": "failed", "metrics": {}}
    )
    make_run(
        rates / "3", ["model.lr=0.01", "data.batch_size=-1"], {"status": "failed", "metrics": {}}
    )
    axes = plot(find_runs(rates), "val/psnr", "title").axes[0]
    assert axes.get_xlabel() == "model.lr"
    assert list(axes.lines[0].get_xdata()) == [0.001, 0.01]
    assert "2 run(s) without val/psnr not shown" in axes.get_title()


# -- where the files go ---------------------------------------------------------------------------
def test_a_single_run_dir_gets_its_comparison_next_to_it(tmp_path):
    run = tmp_path / "train" / "2026-11-25_23-40-00"
    make_run(run, ["model.lr=0.001"], {"metrics": {"val/psnr": 14.0}})
    text, paths = compare(run)
    assert {path.parent for path in paths} == {tmp_path / "train"}
    assert not list(run.glob("comparison*"))
    assert (
        text.splitlines()[-1]
        == f"written to {tmp_path / 'train'}: comparison.csv, comparison.png, comparison.md"
    )
    assert read_csv(tmp_path / "train" / "comparison.csv")[0]["run"] == "2026-11-25_23-40-00"

    _, paths = compare(run, out=tmp_path / "reports")
    assert {path.parent for path in paths} == {tmp_path / "reports"}


# -- the command line -----------------------------------------------------------------------------
def run_command(monkeypatch, *arguments):
    monkeypatch.setattr(sys, "argv", ["s2p-compare", *arguments])
    cli()


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_run(
        tmp_path / "sweep" / "0",
        ["model.lr=0.001"],
        {"metrics": {"val/psnr": 14.0, "val/loss": 0.2}},
    )
    make_run(
        tmp_path / "sweep" / "1",
        ["model.lr=0.01"],
        {"metrics": {"val/psnr": 15.0, "val/loss": 0.1}},
    )
    return tmp_path


@pytest.mark.parametrize(
    "arguments",
    [
        ("dir=sweep", "metric=val/loss", "out=reports/a"),
        ("sweep", "--metric", "val/loss", "--out", "reports/a"),
        ("--metric=val/loss", "--out=reports/a", "sweep"),
    ],
)
def test_command_line_key_value_and_the_older_style(sweep, monkeypatch, capsys, arguments):
    run_command(monkeypatch, *arguments)
    printed = capsys.readouterr().out
    assert "2 run(s) under sweep, 0 not ok, sorted by val/loss (lower is better)" in printed
    assert "written to reports/a: comparison.csv, comparison.png, comparison.md" in printed
    assert [row["run"] for row in read_csv(sweep / "reports" / "a" / "comparison.csv")] == [
        "1",
        "0",
    ]
    assert not list(
        sweep.glob("**/.hydra/config.yaml")
    )  # a tool: Hydra writes no run dir of its own


def test_the_older_style_is_translated_to_hydra_overrides():
    assert hydra_arguments(["my runs/a,b", "--out", "x", "--metric=val/loss"]) == [
        "dir='my runs/a,b'",
        "out='x'",
        "metric='val/loss'",
    ]
    assert hydra_arguments(["dir=sweep", "metric=val/loss"]) == ["dir=sweep", "metric=val/loss"]
    assert hydra_arguments(["--metric", "val/loss", "sweep"]) == [
        "metric='val/loss'",
        "dir='sweep'",
    ]
    assert hydra_arguments(["--cfg", "job", "sweep"]) == ["--cfg", "job", "dir='sweep'"]


def test_config_composes_with_the_documented_keys(tmp_path):
    cfg = compose_config(tmp_path, ["dir=outputs"], "compare")
    assert (cfg.dir, cfg.metric, cfg.out) == ("outputs", None, None)
    assert cfg.hydra.run.dir == "."
    assert cfg.hydra.output_subdir is None


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((), "dir=... is required. Usage: s2p-compare dir="),
        (("dir=missing",), "dir=missing is not a directory"),
        (("dir=empty",), "dir=empty: no runs under it"),
        (
            ("dir=sweep", "metric=val/psrn"),
            "metric=val/psrn: no run has it. Metrics found: val/loss, val/psnr.",
        ),
    ],
)
def test_bad_input_is_one_clear_line(sweep, monkeypatch, capsys, arguments, message):
    (sweep / "empty").mkdir()
    with pytest.raises(SystemExit) as stopped:
        run_command(monkeypatch, *arguments)
    assert stopped.value.code == 1
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert message in output
    assert "Traceback" not in output
    with pytest.raises(UserError, match="no runs under"):
        compare(sweep / "empty")
