"""Sweeps on Hydra's launchers: every job runs, a failing job is recorded in its own dir and the
others go on; s2p-compare summarises a sweep. The Optuna sweeper: test_optuna.py."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict, read_write

from helpers import TINY, compose_config, run_cli
from sketch2photo.runs.scaleout import parallel_job_resources

HALF_THE_CORES = max(1, (os.cpu_count() or 1) // 2)


def sweep(tmp_path, synthetic_dir, *overrides, env=None):
    """s2p-train -m over the tiny synthetic data into tmp_path/sweep;
    (result, {job: metrics.json})."""
    result = run_cli(
        "s2p-train",
        "-m",
        *TINY,
        f"data.data_dir={synthetic_dir}",
        "hydra.sweep.dir=sweep",
        *overrides,
        cwd=tmp_path,
        env=env,
    )
    root = tmp_path / "sweep"
    jobs = {
        path.name: json.loads((path / "metrics.json").read_text()) for path in root.glob("[0-9]*")
    }
    return result, jobs


# -- launchers: all jobs run, failures stay in their job ------------------------------------------
@pytest.mark.slow
def test_basic_launcher_records_failures_and_compare_ranks_the_runs(tmp_path, synthetic_dir):
    result, jobs = sweep(tmp_path, synthetic_dir, "model.lr=1e-3,3e-3,1e30,-1")
    assert result.returncode == 1  # Hydra runs every job, then reports the first failure
    assert {job: record["status"] for job, record in jobs.items()} == {
        "0": "ok",
        "1": "ok",
        "2": "failed",
        "3": "failed",
    }
    assert jobs["2"]["error"].startswith("TrainingDiverged: the loss became NaN")  # a NaN
    assert jobs["3"]["error"].startswith(
        "UserError: model.lr=-1 must be a positive number"
    )  # a bad value

    compared = run_cli("s2p-compare", "sweep", "--out", "report", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert (
        "4 run(s) under sweep, 2 not ok, sorted by val/psnr (higher is better)" in compared.stdout
    )
    with open(tmp_path / "report" / "comparison.csv") as file:
        rows = list(csv.DictReader(file))
    best = max(("0", "1"), key=lambda job: jobs[job]["metrics"]["val/psnr"])
    assert [row["run"] for row in rows] == [best, "1" if best == "0" else "0", "2", "3"]
    assert rows[0]["model.lr"] in ("0.001", "0.003")
    assert "data.image_size" not in rows[0]  # only what differs
    assert float(rows[0]["val/psnr"]) == pytest.approx(jobs[best]["metrics"]["val/psnr"])
    assert rows[0]["epochs"] == "2"
    assert float(rows[0]["wall_time_s"]) > 0
    assert rows[0]["status"] == "ok"
    assert rows[3]["status"] == "failed"
    assert "model.lr=-1" in rows[3]["error"]
    markdown = (tmp_path / "report" / "comparison.md").read_text().splitlines()
    assert len(markdown) == 2 + 4
    assert markdown[2].startswith(f"| {best} | ")
    assert (tmp_path / "report" / "comparison.png").stat().st_size > 10_000


@pytest.mark.slow
def test_joblib_runs_two_jobs_at_once_with_half_the_cores_each(tmp_path, synthetic_dir):
    result, jobs = sweep(
        tmp_path,
        synthetic_dir,
        "model.lr=1e-3,3e-3",
        "data.batch_size=4,0",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        env={"PYTHONWARNINGS": "default"},  # warnings shown, so that none must be there
    )
    assert result.returncode == 1
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    assert [
        line for line in result.stderr.splitlines() if "Warning" in line
    ] == []  # not once per worker
    assert sorted(jobs) == ["0", "1", "2", "3"]
    for job, record in jobs.items():
        bad = int(job) % 2 == 1  # data.batch_size=0
        assert record["status"] == ("failed" if bad else "ok"), record["error"]
        assert bad == str(record["error"]).startswith(
            "UserError: data.batch_size=0 must be a positive integer"
        )
        log = (tmp_path / "sweep" / job / "train.log").read_text()
        assert f"torch threads: {HALF_THE_CORES}\n" in log


@pytest.mark.slow
def test_submitit_local_isolates_an_exception(tmp_path, synthetic_dir):
    result, jobs = sweep(
        tmp_path,
        synthetic_dir,
        "model.lr=1e-3,3e-3",
        "trainer.precision=32-true,bogus",
        "trainer.max_epochs=1",
        "num_threads=1",
        "hydra/launcher=submitit_local",
    )
    assert result.returncode == 1
    assert "Submitit 'local' sweep output dir" in result.stdout + result.stderr
    assert {job: record["status"] for job, record in jobs.items()} == {
        "0": "ok",
        "1": "failed",
        "2": "ok",
        "3": "failed",
    }
    assert jobs["1"]["error"].startswith("ValueError: Precision 'bogus' is invalid")
    assert jobs["0"]["epochs"] == 1
    assert jobs["2"]["metrics"]["val/psnr"] > 0


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


def test_ddp_on_cpu_splits_the_cores_whatever_the_strategy(tmp_path):
    half = max(1, (os.cpu_count() or 1) // 2)
    for overrides in (["trainer=ddp_cpu"], ["trainer.accelerator=cpu", "trainer.devices=2"]):
        assert parallel_job_resources(compose_config(tmp_path, overrides)) == (half, None), (
            overrides
        )
