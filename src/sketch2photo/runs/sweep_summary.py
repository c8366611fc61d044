"""The line a multirun ends with: how many jobs ran, and how many of them completed, were pruned
(Optuna) or failed, the best by `optimized_metric`, the s2p-compare command for the sweep, and for
an Optuna search its study and the optuna-dashboard command.

A Hydra callback notes the sweep dir when the multirun starts; cli.py prints the line when Hydra
returns, because a failed job ends Hydra's sweep with its error before on_multirun_end would run."""

from __future__ import annotations

import math
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sketch2photo.metrics import higher_is_better
from sketch2photo.runs.record import read_record


class SweepStart(Callback):
    sweep_dirs: list[Path] = []  # of the multiruns this process started

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        SweepStart.sweep_dirs.append(Path(config.hydra.sweep.dir))


def sweep_summary(sweep_dir: Path) -> str:
    saved = sweep_dir / "multirun.yaml"  # the sweep's config, written by the sweeper when it starts
    metric = (
        OmegaConf.select(OmegaConf.load(saved), "optimized_metric", default=None)
        if saved.is_file()
        else None
    )
    metric = metric or "val/psnr"
    job_dirs = (
        sorted(path for path in sweep_dir.iterdir() if path.is_dir()) if sweep_dir.is_dir() else []
    )
    jobs = {path.name: record for path in job_dirs if (record := read_record(path)) is not None}
    statuses = [record.get("status") for record in jobs.values()]
    ok = {job: record for job, record in jobs.items() if record.get("status") == "ok"}
    scored = {
        job: float(record["metrics"][metric])
        for job, record in ok.items()
        if metric in (record.get("metrics") or {})
        and math.isfinite(float(record["metrics"][metric]))
    }
    line = (
        f"sweep: {len(jobs)} job(s) ran: {len(ok)} complete, {statuses.count('pruned')} pruned, "
        f"{len(jobs) - len(ok) - statuses.count('pruned')} failed"
    )
    if scored:
        best = (max if higher_is_better(metric) else min)(scored, key=scored.get)
        line += f"; best by {metric}: job {best} ({scored[best]:.4g})"
    line += f". Compare them: s2p-compare dir={sweep_dir}"
    study = sweep_dir / "optimization_results.yaml"  # written by the Optuna sweeper at the end
    if study.is_file():
        results = OmegaConf.load(study)
        counts = ", ".join(f"{count} {state}" for state, count in results.trials.items())
        line += f". Study {results.study_name} ({counts}): optuna-dashboard {results.storage}"
    return line
