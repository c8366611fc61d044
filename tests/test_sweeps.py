"""Sweeps on Hydra's launchers and the Optuna sweeper: every job runs, a failing job is recorded
in its own dir and the others go on; s2p-compare summarises a sweep."""

from __future__ import annotations

import csv
import json
import math
import os

import pytest
import torch
import yaml
from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict, read_write
from optuna.distributions import CategoricalDistribution, LogUniformDistribution

from conftest import TINY, compose_config, run_cli
from sketch2photo.compare import compare, find_runs, main, plot
from sketch2photo.errors import UserError
from sketch2photo.run_record import write_record
from sketch2photo.scaleout import parallel_job_resources

HALF_THE_CORES = max(1, (os.cpu_count() or 1) // 2)


def sweep(tmp_path, synthetic_dir, *overrides):
    """s2p-train -m over the tiny synthetic data into tmp_path/sweep; (result, {job: metrics.json})."""
    result = run_cli(
        "s2p-train", "-m", *TINY, f"data.data_dir={synthetic_dir}", "hydra.sweep.dir=sweep", *overrides, cwd=tmp_path,
    )
    root = tmp_path / "sweep"
    jobs = {path.name: json.loads((path / "metrics.json").read_text()) for path in root.glob("[0-9]*")}
    return result, jobs


# -- launchers: all jobs run, failures stay in their job ------------------------------------------
@pytest.mark.slow
def test_basic_launcher_records_failures_and_compare_ranks_the_runs(tmp_path, synthetic_dir):
    result, jobs = sweep(tmp_path, synthetic_dir, "model.lr=1e-3,3e-3,1e30,-1")
    assert result.returncode == 1  # Hydra runs every job, then reports the first failure
    assert {job: record["status"] for job, record in jobs.items()} == {"0": "ok", "1": "ok", "2": "failed", "3": "failed"}
    assert jobs["2"]["error"].startswith("TrainingDiverged: the loss became NaN")  # a NaN
    assert jobs["3"]["error"].startswith("UserError: model.lr=-1 must be a positive number")  # a bad value

    compared = run_cli("s2p-compare", "sweep", "--out", "report", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert "4 run(s) under sweep, 2 not ok, sorted by val/psnr (higher is better)" in compared.stdout
    with open(tmp_path / "report" / "comparison.csv") as file:
        rows = list(csv.DictReader(file))
    best = max(("0", "1"), key=lambda job: jobs[job]["metrics"]["val/psnr"])
    assert [row["run"] for row in rows] == [best, "1" if best == "0" else "0", "2", "3"]
    assert rows[0]["model.lr"] in ("0.001", "0.003") and "data.image_size" not in rows[0]  # only what differs
    assert float(rows[0]["val/psnr"]) == pytest.approx(jobs[best]["metrics"]["val/psnr"])
    assert rows[0]["epochs"] == "2" and float(rows[0]["wall_time_s"]) > 0 and rows[0]["status"] == "ok"
    assert rows[3]["status"] == "failed" and "model.lr=-1" in rows[3]["error"]
    markdown = (tmp_path / "report" / "comparison.md").read_text().splitlines()
    assert len(markdown) == 2 + 4 and markdown[2].startswith(f"| {best} | ")
    assert (tmp_path / "report" / "comparison.png").stat().st_size > 10_000


@pytest.mark.slow
def test_joblib_runs_two_jobs_at_once_with_half_the_cores_each(tmp_path, synthetic_dir):
    result, jobs = sweep(
        tmp_path, synthetic_dir, "model.lr=1e-3,3e-3", "data.batch_size=4,0", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
    )
    assert result.returncode == 1
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    assert sorted(jobs) == ["0", "1", "2", "3"]
    for job, record in jobs.items():
        bad = int(job) % 2 == 1  # data.batch_size=0
        assert record["status"] == ("failed" if bad else "ok"), record["error"]
        assert bad == str(record["error"]).startswith("UserError: data.batch_size=0 must be a positive integer")
        log = (tmp_path / "sweep" / job / "train.log").read_text()
        assert f"torch threads: {HALF_THE_CORES}\n" in log


@pytest.mark.slow
def test_submitit_local_isolates_an_exception(tmp_path, synthetic_dir):
    result, jobs = sweep(
        tmp_path, synthetic_dir, "model.lr=1e-3,3e-3", "trainer.precision=32-true,bogus", "trainer.max_epochs=1",
        "num_threads=1", "hydra/launcher=submitit_local",
    )
    assert result.returncode == 1
    assert "Submitit 'local' sweep output dir" in result.stdout + result.stderr
    assert {job: record["status"] for job, record in jobs.items()} == {"0": "ok", "1": "failed", "2": "ok", "3": "failed"}
    assert jobs["1"]["error"].startswith("ValueError: Precision 'bogus' is invalid")
    assert jobs["0"]["epochs"] == 1 and jobs["2"]["metrics"]["val/psnr"] > 0


@pytest.mark.slow
def test_optuna_minimizes_val_loss_and_records_a_failed_trial(tmp_path, synthetic_dir):
    result, jobs = sweep(
        tmp_path, synthetic_dir, "hparams_search=optuna", "optimized_metric=val/loss", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.seed=0", "data.batch_size=4", "model.lr=choice(1e-3,1e30)",  # seed 0 draws 1e30, then 1e-3
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]  # a failed trial does not stop the search
    assert "Directions: ['minimize']" in output
    assert [jobs[job]["status"] for job in ("0", "1")] == ["failed", "ok"]
    assert jobs["0"]["error"].startswith("TrainingDiverged") and "Failed experiment" in output
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["best_params"] == {"model.lr": 0.001}
    assert results["best_value"] == pytest.approx(jobs["1"]["metrics"]["val/loss"])  # what s2p-train returned


def test_optuna_config_search_space_direction_and_trials(tmp_path):
    cfg = compose_config(tmp_path, ["hparams_search=optuna", "hydra.sweeper.n_trials=7"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.n_trials == 7 and sweeper.max_failure_rate == 1.0
    assert cfg.optimized_metric == "val/psnr" and sweeper.direction == "maximize"
    space, fixed = create_params_from_overrides([f"{key}={value}" for key, value in sweeper.params.items()])
    assert space == {"model.lr": LogUniformDistribution(1e-5, 1e-2), "data.batch_size": CategoricalDistribution((4, 8, 16))}
    cfg = compose_config(tmp_path, ["hparams_search=optuna", "optimized_metric=val/loss"])
    assert cfg.hydra.sweeper.direction == "minimize"


def test_parallel_job_resources(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    cfg = compose_config(tmp_path, ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    with read_write(cfg.hydra):
        cfg.hydra.job.num = 5
    HydraConfig.instance().set_config(cfg)
    assert parallel_job_resources(cfg) == (HALF_THE_CORES, 1)  # job 5 of a sweep on 4 GPUs: GPU 1
    with open_dict(cfg):
        cfg.num_threads = 3
    assert parallel_job_resources(cfg) == (3, 1)  # an explicit num_threads keeps the GPU pinning
    cfg = compose_config(tmp_path, ["trainer=ddp_cpu"])
    assert parallel_job_resources(cfg) == (HALF_THE_CORES, None)  # 2 DDP processes share the cores


# -- s2p-compare on hand-made run dirs ------------------------------------------------------------
def make_run(path, overrides, record=None, log=""):
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (path / "train.log").write_text(log)
    if record is not None:
        write_record(path, {"status": "ok", "error": None, "epochs": 2, "wall_time_s": 1.5, **record})


def history(metric, *values):
    return [{"epoch": epoch, metric: value} for epoch, value in enumerate(values, 1)]


def test_compare_table_outputs_and_plot_against_the_swept_parameter(tmp_path):
    root = tmp_path / "sweep"
    make_run(root / "0", ["model.lr=0.001", "seed=1"], {"metrics": {"val/psnr": 10.0, "val/loss": 0.2}})
    make_run(root / "1", ["model.lr=0.1", "seed=1"], {"metrics": {"val/psnr": 12.0, "val/loss": 0.1}})
    make_run(root / "2", ["model.lr=1", "seed=1"], log="[2026-01-01 00:00:00,000][sketch2photo][ERROR] - it broke\n")
    make_run(root / "10", ["model.lr=0.01", "seed=1"], {"metrics": {"val/psnr": 11.0, "val/loss": "nan"}})
    text, paths = compare(root)
    rows = [line.split()[0] for line in text.splitlines()[4:8]]
    assert rows == ["1", "10", "0", "2"]  # best val/psnr first, the run without metrics.json last
    assert "failed  it broke" in text and "same in every run: seed=1" in text
    with open(paths[0]) as file:
        table = list(csv.reader(file))
    assert table[0][:4] == ["run", "model.lr", "val/psnr", "val/loss"] and math.isnan(float(table[2][3]))
    axes = plot(find_runs(root), "val/loss", "title").axes[0]
    assert axes.get_xlabel() == "model.lr" and axes.get_xscale() == "log"
    assert list(axes.lines[0].get_xdata()) == [0.001, 0.1] and list(axes.lines[0].get_ydata()) == [0.2, 0.1]
    assert "2 run(s) without val/loss not shown" in axes.get_title()

    text, _ = compare(root, "val/loss", tmp_path / "elsewhere")
    assert [line.split()[0] for line in text.splitlines()[4:8]] == ["1", "0", "2", "10"]  # lower is better; no value: by name
    assert (tmp_path / "elsewhere" / "comparison.png").is_file()


def test_compare_without_validation_plots_curves_of_train_loss(tmp_path):
    for name, values in (("a", (0.5, 0.3)), ("b", (0.4, 0.2))):
        make_run(tmp_path / name, ["data.split=none"], {"metrics": {"train/loss": values[-1]}, "history": history("train/loss", *values)})
    text, _ = compare(tmp_path)
    assert "sorted by train/loss (lower is better)" in text and text.splitlines()[4].startswith("b ")
    axes = plot(find_runs(tmp_path), "train/loss", "title").axes[0]
    assert axes.get_xlabel() == "epoch" and [line.get_label() for line in axes.lines] == ["a", "b"]
    assert list(axes.lines[1].get_ydata()) == [0.4, 0.2]


def test_compare_errors_are_one_clear_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path / "missing")])
    assert stopped.value.code == 1 and "is not a directory" in capsys.readouterr().err
    with pytest.raises(UserError, match="no runs under"):
        compare(tmp_path)
    make_run(tmp_path / "0", ["model.lr=0.1"], {"metrics": {"val/psnr": 1.0}})
    with pytest.raises(UserError, match="--metric val/psrn: no run has it. Metrics found: val/psnr"):
        compare(tmp_path, "val/psrn")


def test_compare_reports_mean_and_std_over_folds(tmp_path):
    psnr = {("unet", 0): 15.0, ("unet", 1): 17.0, ("unet", 2): 16.0, ("ae", 0): 13.0, ("ae", 1): 14.0, ("ae", 2): 15.0}
    for number, ((model, fold), value) in enumerate(psnr.items()):
        make_run(tmp_path / str(number), [f"model={model}", f"data.fold={fold}"], {"metrics": {"val/psnr": value}})
    make_run(tmp_path / "9", ["model=ae", "data.fold=3"])  # failed: left out of the means
    text, paths = compare(tmp_path)
    summary = text.split("mean ± std over the folds")[1].splitlines()
    assert summary[2].split()[:2] == ["model", "folds"]
    assert summary[4].split() == ["unet", "3", "16", "±", "1"]  # best mean first
    assert summary[5].split() == ["ae", "3", "14", "±", "1"]
    assert "| unet | 3 | 16 ± 1 |" in paths[1].read_text()
