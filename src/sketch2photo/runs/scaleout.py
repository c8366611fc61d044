"""How a run shares the machine: threads and GPUs of parallel sweep jobs, and DDP ranks in
sweeps."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from omegaconf import DictConfig, OmegaConf, read_write

from sketch2photo.errors import UserError
from sketch2photo.runs.run_dir import in_multirun


def parallel_job_resources(cfg: DictConfig) -> tuple[int | None, int | None]:
    """(torch threads, GPU index) for this job.

    num_threads=null means automatic: with hydra/launcher=joblib, n_jobs jobs share the CPU
    cores and each gets cores // n_jobs threads; with several CPU devices (trainer=ddp_cpu, or
    trainer.accelerator=cpu trainer.devices=2) each process gets cores // devices. On a multi-GPU
    machine each joblib job takes GPU (job number % GPUs).
    """
    cores = os.cpu_count() or 1
    sharing, gpu = 1, None
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        if "joblib" in str(OmegaConf.select(hydra_cfg, "launcher._target_", default="")):
            n_jobs = int(hydra_cfg.launcher.n_jobs)
            sharing = cores if n_jobs < 0 else n_jobs
            gpus = torch.cuda.device_count()
            if gpus > 1 and str(cfg.trainer.get("accelerator")) in ("gpu", "cuda", "auto"):
                gpu = int(hydra_cfg.job.num) % gpus
    devices = cfg.trainer.get("devices", 1)
    if cfg.trainer.get("accelerator") == "cpu" and isinstance(devices, int) and devices > 1:
        sharing *= (
            devices  # one process per device, whatever the strategy (ddp, or auto, which picks ddp)
        )
    if cfg.get("num_threads"):
        return int(cfg.num_threads), gpu
    return (max(1, cores // sharing) if sharing > 1 else None), gpu


@contextlib.contextmanager
def keep_ddp_children_in_this_run(trainer):
    """Lightning starts DDP ranks > 0 by re-running this command with sys.argv. Under a Hydra
    multirun that would start a second sweep with new output dirs. Re-run exactly this job, in
    this job's dir, instead.

    Afterwards wait for those ranks and undo the process group and the environment variables of
    the launch, so that the next job of a sweep in this process starts its own ranks.
    """
    launcher = getattr(trainer.strategy, "launcher", None)
    if not isinstance(launcher, _SubprocessScriptLauncher) or not HydraConfig.initialized():
        yield
        return
    hydra_cfg = HydraConfig.get()
    if in_multirun() and not str(hydra_cfg.launcher._target_).endswith("BasicLauncher"):
        raise UserError(
            f"trainer.strategy=ddp starts its other ranks by running s2p-train again, which a "
            f"{hydra_cfg.launcher._target_.rsplit('.', 1)[-1]} job cannot do. Sweep DDP runs with the default "
            "launcher, or on SLURM let srun start one task per device: "
            "hydra/launcher=submitit_slurm hydra.launcher.tasks_per_node=<trainer.devices>."
        )
    saved = sys.argv, dict(os.environ), torch.get_num_threads()
    if in_multirun():
        sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    finished = False
    try:
        yield
        finished = True
    finally:
        # Take the ranks away from Lightning's observer thread: it kills this process (and with it
        # the rest of the sweep) when a rank exits non-zero, e.g. after a UserError on every rank.
        children, launcher.procs[:] = list(launcher.procs), []
        for child in children:
            try:
                child.wait(timeout=120 if finished else 0)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        sys.argv = saved[0]
        os.environ.clear()
        os.environ.update(saved[1])
        torch.set_num_threads(saved[2])
