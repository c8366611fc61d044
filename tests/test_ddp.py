"""trainer=ddp_cpu: DDP over 2 CPU processes (gloo), in a run and inside a sweep.

Rank 1 is started by Lightning re-running s2p-train; it must land in the same job dir (its log
is <job dir>/train_ddp_process_1.log), never start a second sweep or a new output dir, a failed
DDP job must not take the rest of the sweep down, and the validation metrics must count every pair
once, as one process does on the same weights.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch import Trainer
from omegaconf import OmegaConf

from helpers import TINY, compose_config, run_cli
from sketch2photo.checkpoints.read import load_module
from sketch2photo.errors import UserError
from sketch2photo.module import epoch_metrics
from sketch2photo.runs.scaleout import keep_ddp_children_in_this_run

THREADS_PER_RANK = max(1, (os.cpu_count() or 1) // 2)


def ranks_ran(job_dir) -> dict:
    """metrics.json of a 2-process job, after checking that rank 1 ran in this dir."""
    record = json.loads((job_dir / "metrics.json").read_text())
    assert record["status"] == "ok", record["error"]
    assert record["world_size"] == 2, record["error"]
    rank_1 = (job_dir / "train_ddp_process_1.log").read_text()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in rank_1
    assert f"torch threads: {THREADS_PER_RANK}\n" in rank_1
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in (job_dir / "train.log").read_text()
    return record


def one_process_metrics(run_dir, stage: str, ckpt: str) -> dict[str, float]:
    """The metrics of `stage` computed by one process on the run's checkpoint and split."""
    datamodule = instantiate(OmegaConf.load(run_dir / ".hydra" / "config.yaml").data)
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    run = trainer.validate if stage == "val" else trainer.test
    return epoch_metrics(
        run(load_module(run_dir / "checkpoints" / ckpt), datamodule=datamodule, verbose=False)[0]
    )


@pytest.mark.slow
def test_two_processes_count_every_pair_once(tmp_path, synthetic_dir):
    # 12 pairs: 3 for validation (2 on rank 0, 1 on rank 1),
    # 1 for test (fewer than ranks: each rank takes it)
    overrides = [
        f"data.data_dir={synthetic_dir}",
        "data.val_fraction=0.25",
        "data.batch_size=2",
        "trainer=ddp_cpu",
    ]
    result = run_cli("s2p-train", *TINY, *overrides, "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]  # no second run dir
    metrics = ranks_ran(tmp_path / "run")["metrics"]
    assert metrics["val/loss"] == pytest.approx(
        metrics["val/mse"], rel=1e-5
    )  # the MSE loss, by another metric
    for stage, ckpt in (("val", "last.ckpt"), ("test", "best.ckpt")):
        alone = one_process_metrics(tmp_path / "run", stage, ckpt)
        assert {name: metrics[name] for name in alone} == pytest.approx(alone, rel=1e-5), stage


@pytest.mark.slow
def test_ddp_jobs_of_a_sweep_stay_in_their_job_dirs(tmp_path, synthetic_dir):
    result = run_cli(
        "s2p-train",
        "-m",
        *TINY,
        f"data.data_dir={synthetic_dir}",
        "trainer=ddp_cpu",
        "trainer.max_epochs=1",
        "model.lr=1e30,1e-3",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[
        -3000:
    ]  # job 0 diverges (on both ranks): reported at the end
    assert output.count("Launching 2 jobs locally") == 1  # one sweep, not one more per rank 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sweep"]
    assert sorted(path.name for path in (tmp_path / "sweep").iterdir()) == [
        "0",
        "1",
        "multirun.yaml",
    ]
    failed = json.loads((tmp_path / "sweep" / "0" / "metrics.json").read_text())
    assert failed["status"] == "failed"
    assert failed["error"].startswith("TrainingDiverged")
    assert (
        "GLOBAL_RANK: 1, MEMBER: 2/2"
        in (tmp_path / "sweep" / "0" / "train_ddp_process_1.log").read_text()
    )
    # the sweep survived the failed ranks, and job 1 started its own rank 1 in its own dir
    assert ranks_ran(tmp_path / "sweep" / "1")["epochs"] == 1


def test_ddp_under_a_parallel_launcher_is_a_clear_error(tmp_path):
    compose_config(tmp_path, ["trainer=ddp_cpu", "hydra/launcher=joblib", "hydra.mode=MULTIRUN"])
    trainer = Trainer(accelerator="cpu", strategy="ddp", devices=2, logger=False)
    with pytest.raises(
        UserError, match="JoblibLauncher job cannot do.*hydra.launcher.tasks_per_node"
    ):
        with keep_ddp_children_in_this_run(trainer):
            pass
    assert not torch.distributed.is_initialized()
