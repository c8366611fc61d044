"""What pruning saves in an Optuna search, and what a killed search loses.

1. The same 20-trial search over model.lr and data.batch_size, once per pruner (none, median,
   hyperband), same sampler seed: experiment=cv_seed (the reference autoencoder, 128 px unless
   --image-size) on fold 0 of the real pairs, 200 epochs a trial, one torch thread a trial. The
   sweeps run side by side (one process each). For each: the best val/psnr found (the final value
   of the best complete trial), the training epochs spent over all trials, and the ratios against
   pruner=none.
2. A search killed with SIGKILL after a few trials, then the same command again: how many trials
   that had finished before the kill ran again (must be 0).

Writes bench/results/sweep_pruning.json with the commands. At 128 px a 200-epoch trial took 400 s
on 2 cores shared with other work (load average 11): 2 hours for the unpruned search; at 64 px:
    nice -n 10 python bench/sweep_pruning.py --image-size 64 [--data ../shared/data/sketch2photo]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "sweep_pruning.json"
S2P_TRAIN = str(Path(sys.executable).parent / "s2p-train")
PRUNERS = ("none", "median", "hyperband")


def search(args, sweep_dir: Path, study: str, epochs: int, trials: int) -> list[str]:
    return [
        S2P_TRAIN,
        "-m",
        "hparams_search=optuna",
        "experiment=cv_seed",
        "data.fold=0",
        f"data.data_dir={args.data}",
        f"data.image_size={args.image_size}",
        f"trainer.max_epochs={epochs}",
        "num_threads=1",
        "model.lr=tag(log, interval(1e-4, 1e-2))",
        "data.batch_size=choice(4, 8, 16)",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.sampler.seed={args.seed}",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.storage=sqlite:///{args.work}/{study}.db",
        f"hydra.sweep.dir={sweep_dir}",
        "trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null",
    ]


def run(command: list[str], log: Path) -> subprocess.Popen:
    """Start a search in a session of its own (killpg stops it with its jobs), output to log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        command,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )


def study_summary(storage: str, name: str) -> dict:
    study = optuna.load_study(study_name=name, storage=storage)
    states = [trial.state.name.lower() for trial in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    first, last = (
        min(t.datetime_start for t in study.trials),
        max(t.datetime_complete for t in study.trials),
    )
    return {
        "trials": {state: states.count(state) for state in sorted(set(states))},
        # from the first trial's start to the last one's end; the searches shared the machine
        "search_wall_time_s": round((last - first).total_seconds(), 1),
        # epochs trained: a trial reports after every epoch (step = epochs so far)
        "epochs": sum(max(t.intermediate_values, default=0) for t in study.trials),
        "best_val_psnr": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": best.params if best else None,
    }


def pruner_search(args, pruner: str) -> list[str]:
    command = search(args, args.work / pruner, f"pruning-{pruner}", args.epochs, args.trials)
    return [*command, f"hydra/sweeper/pruner={pruner}"]


def compare_pruners(args) -> None:
    """The three searches side by side."""
    runs = {
        pruner: run(pruner_search(args, pruner), args.work / f"{pruner}.log") for pruner in PRUNERS
    }
    for pruner, process in runs.items():
        status = process.wait()
        assert status == 0, f"{pruner}: exit status {status}, see {args.work / f'{pruner}.log'}"


def pruner_results(args) -> dict:
    results = {}
    for pruner in PRUNERS:
        summary = study_summary(f"sqlite:///{args.work}/pruning-{pruner}.db", f"pruning-{pruner}")
        command = pruner_search(args, pruner)
        results[pruner] = {"command": shlex.join(["s2p-train", *command[1:]]), **summary}
        print(
            pruner,
            json.dumps(results[pruner]["trials"]),
            summary["epochs"],
            "epochs,",
            f"best {summary['best_val_psnr']:.3f} dB",
            flush=True,
        )
    baseline = results["none"]
    for pruner in PRUNERS[1:]:
        results[pruner]["epochs_vs_none"] = round(results[pruner]["epochs"] / baseline["epochs"], 3)
        results[pruner]["best_minus_none_db"] = round(
            results[pruner]["best_val_psnr"] - baseline["best_val_psnr"], 3
        )
    return results


def kill_and_rerun(args) -> None:
    """A 6-trial search, killed once 3 trials have finished, then run again."""
    process = run(killed_search(args, 1), args.work / "killed-1.log")
    storage = f"sqlite:///{args.work}/killed.db"

    def finished() -> set[int]:
        try:
            study = optuna.load_study(study_name="killed", storage=storage)
        except KeyError:  # not created yet
            return set()
        return {t.number for t in study.trials if t.state.is_finished()}

    while len(finished()) < 3:
        assert process.poll() is None, "the search ended before it was killed"
        time.sleep(1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert run(killed_search(args, 2), args.work / "killed-2.log").wait() == 0


def killed_search(args, attempt: int) -> list[str]:
    return search(args, args.work / f"killed-{attempt}", "killed", args.kill_epochs, 6)


def trial_dirs(sweep_dir: Path, finished: bool = False) -> set[int]:
    """The trial numbers of a sweep dir's jobs; only those that wrote metrics.json (a trial
    killed with SIGKILL writes none) when `finished`."""
    return {
        int(path.name)
        for path in sweep_dir.iterdir()
        if path.name.isdigit() and (not finished or (path / "metrics.json").is_file())
    }


def kill_results(args) -> dict:
    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{args.work}/killed.db")
    before = trial_dirs(args.work / "killed-1", finished=True)
    rerun = sorted(trial_dirs(args.work / "killed-2"))
    command = killed_search(args, 1)
    return {
        "command": shlex.join(["s2p-train", *command[1:]]),
        "finished_before_kill": sorted(before),
        "trials_run_by_the_rerun": rerun,
        "finished_trials_rerun": len(set(rerun) & before),
        "trials": {
            s: [t.state.name.lower() for t in study.trials].count(s)
            for s in ("complete", "fail", "pruned")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "sketch2photo"
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--image-size", type=int, default=128, help="cv_seed's 128; 64 takes a quarter of the work"
    )
    parser.add_argument("--kill-epochs", type=int, default=30, help="epochs a trial in part 2")
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "outputs" / "bench" / f"sweep_pruning-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    parser.add_argument(
        "--summarize", action="store_true", help="only read the results of --work's searches"
    )
    parser.add_argument(
        "--part",
        choices=("all", "pruners", "kill"),
        default="all",
        help="one part only: the other's results in the JSON are kept",
    )
    args = parser.parse_args()
    args.work = args.work.resolve()
    parts = {
        "pruners": (compare_pruners, pruner_results),
        "kill_and_rerun": (kill_and_rerun, kill_results),
    }
    if args.part != "all":
        parts = {name: part for name, part in parts.items() if name.startswith(args.part)}
    if not args.summarize:
        args.work.mkdir(parents=True)
        print(f"work dir {args.work}; load average {os.getloadavg()[0]:.2f}", flush=True)
        for run_part, _ in parts.values():
            run_part(args)
    words, kept = iter(sys.argv[1:]), []
    for word in words:  # the command that ran the searches: without --summarize and --work
        if word == "--work":
            next(words, None)
        elif word != "--summarize" and not word.startswith("--work="):
            kept.append(word)
    command = shlex.join(["nice", "-n", "10", "python", "bench/sweep_pruning.py", *kept])
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() and args.part != "all" else {}
    results["cores"] = os.cpu_count()
    for name, (_, read) in parts.items():
        results[name] = {"bench_command": command, **read(args)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
