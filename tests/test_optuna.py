"""The Optuna sweeper (src/hydra_plugins/s2p_optuna_sweeper) and a trial's link to its study
(runs/study.py): the search space users type, a study stored in SQLite, a journal file or a real
PostgreSQL server, resumed after SIGKILL and shared by two workers, pruned trials, and a wrong
metric name."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from helpers import TINY, compose_config, free_port, run_cli, start_cli, wait_until
from hydra_plugins.s2p_optuna_sweeper._impl import quoted
from hydra_plugins.s2p_optuna_sweeper._search_space import search_space
from sketch2photo.checks import check_optuna_sweeper
from sketch2photo.commands.train import train
from sketch2photo.errors import UnknownMetric, UserError
from sketch2photo.runs.record import read_record

# A quick search: tiny runs, one thread each, heartbeats every second (a killed trial is stale
# after 2 s)
SEARCH = [
    *TINY,
    "hparams_search=optuna",
    "num_threads=1",
    "data.batch_size=4",
    "hydra.sweeper.heartbeat_interval=1",
    "hydra.sweeper.grace_period=2",
    "hydra.sweeper.sampler.seed=0",
]
# Prunes every trial after its first epoch: no trial reaches 1000 dB
PRUNE_ALL = [
    "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
    "+hydra.sweeper.pruner.lower=1000",
]


def sweep(cwd: Path, data_dir: Path, *overrides: str, sweep_dir: str = "sweep", **kwargs):
    return run_cli(
        "s2p-train",
        "-m",
        *SEARCH,
        f"data.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
        cwd=cwd,
        **kwargs,
    )


def records(sweep_dir: Path) -> dict[int, dict]:
    """{trial number: metrics.json} of a sweep dir's jobs (named by trial number)."""
    return {
        int(path.name): read_record(path) for path in sweep_dir.iterdir() if path.name.isdigit()
    }


def load(storage: str, name: str) -> optuna.Study:
    if "://" not in storage:
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(storage)
        )
    return optuna.load_study(study_name=name, storage=storage)


# -- the search space users type (README, configs/hparams_search/optuna.yaml) --------------------
def test_every_search_space_form_the_readme_shows():
    space = search_space(
        [
            "model.lr=tag(log, interval(1e-5, 1e-2))",  # hparams_search/optuna.yaml
            "data.batch_size=choice(4, 8, 16)",
            "model.lr=tag(log, interval(1e-4, 1e-2))",  # the command line replaces it
            "data.image_size=choice(64, 128)",
            "model.ssim_weight=interval(0.5, 0.9)",
            "trainer.max_epochs=range(10, 41, 10)",
            "model.loss=mse,l1",
            "data.split_seed=shuffle(range(0, 3))",
            "data.augment.enabled=true",  # a plain value fixes the key
            "+model.scheduler=null",
        ]
    )
    assert space.distributions == {
        "model.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "data.batch_size": CategoricalDistribution((4, 8, 16)),
        "data.image_size": CategoricalDistribution((64, 128)),
        "model.ssim_weight": FloatDistribution(0.5, 0.9),
        "trainer.max_epochs": IntDistribution(10, 40, step=10),  # the stop is left out, as in -m
        "model.loss": CategoricalDistribution(("mse", "l1")),
        "data.split_seed": IntDistribution(0, 2),
    }
    assert space.fixed == ["data.augment.enabled=true", "+model.scheduler=null"]
    params = {
        "model.lr": 3e-4,
        "data.batch_size": 8,
        "data.image_size": 64,
        "model.ssim_weight": 0.75,
        "trainer.max_epochs": 30,
        "model.loss": "l1",
        "data.split_seed": 2,
    }
    overrides = space.overrides(params)
    parsed = OverridesParser.create().parse_overrides(overrides)
    assert {o.key_or_group: o.value() for o in parsed[: len(params)]} == params  # the job gets them
    assert overrides[len(params) :] == space.fixed
    with pytest.raises(ValueError, match="sampler=grid needs choice"):
        space.grid()  # an interval has no list of values
    grid = search_space(["trainer.max_epochs=range(10, 41, 10)", "model.loss=mse,l1"]).grid()
    assert grid == {"trainer.max_epochs": [10, 20, 30, 40], "model.loss": ["mse", "l1"]}


def test_choices_that_are_not_plain_values_reach_the_job_as_typed():
    space = search_space(["model.optimizer=choice({lr: 1}, 'a b')", "data.fold=3,1"])
    assert space.distributions["model.optimizer"] == CategoricalDistribution(("{lr:1}", "a b"))
    assert space.overrides({"model.optimizer": "{lr:1}", "data.fold": 1}) == [
        "model.optimizer={lr:1}",
        "data.fold=1",
    ]
    assert space.overrides({"model.optimizer": "a b", "data.fold": 3})[0] == "model.optimizer=a\\ b"


def test_storage_urls_reach_the_jobs_unchanged():
    parser = OverridesParser.create()
    for url in ("sqlite:////tmp/a b/study.db", "postgresql://me@db:5432/s2p?sslmode=require&x=1"):
        assert parser.parse_override(f"hydra.sweeper.storage={quoted(url)}").value() == url


def test_hparams_search_optuna_composes_the_sweeper_study_and_pruners(tmp_path):
    cfg = compose_config(tmp_path, ["hparams_search=optuna", "hydra.sweeper.n_trials=7"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.s2p_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert (sweeper.n_trials, sweeper.n_jobs, sweeper.max_failure_rate) == (7, 1, 1.0)
    assert sweeper.direction == "maximize" and cfg.optimized_metric == "val/psnr"
    assert dict(sweeper.params) == {
        "model.lr": "tag(log, interval(1e-5, 1e-2))",
        "data.batch_size": "choice(4, 8, 16)",
    }
    name = sweeper.study_name
    assert name.startswith("train-") and len(name) == len("train-") + 8
    assert sweeper.storage == f"sqlite:///outputs/sweeps/{name}/study.db"  # not in the sweep dir
    assert isinstance(instantiate(sweeper.sampler), optuna.samplers.TPESampler)
    assert isinstance(instantiate(sweeper.pruner), optuna.pruners.NopPruner)

    same = compose_config(tmp_path, ["hparams_search=optuna", "hydra.sweeper.n_trials=50"])
    assert same.hydra.sweeper.study_name == name  # more trials for the same search: its study
    other = compose_config(tmp_path, ["hparams_search=optuna", "optimized_metric=val/loss"])
    assert other.hydra.sweeper.study_name != name
    assert other.hydra.sweeper.direction == "minimize"
    for choice, pruner in (
        ("median", optuna.pruners.MedianPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
    ):
        cfg = compose_config(tmp_path, ["hparams_search=optuna", f"hydra/sweeper/pruner={choice}"])
        assert isinstance(instantiate(cfg.hydra.sweeper.pruner), pruner)


# -- a trial job reports to its study (in-process) ------------------------------------------------
def a_running_trial(tmp_path: Path) -> list[str]:
    """A study in SQLite with trial 0 asked (running); the overrides that make a run that trial."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=storage, direction="maximize").ask()
    return [
        "hparams_search=optuna",
        "optuna_trial=0",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=s",
    ]


def test_a_pruned_run_stops_at_once_and_keeps_its_checkpoint(train_config, tmp_path):
    cfg = train_config(*a_running_trial(tmp_path), *PRUNE_ALL, "trainer.max_epochs=5")
    with pytest.raises(optuna.TrialPruned):
        train(cfg)
    record = read_record(tmp_path / "run")
    assert record["status"] == "pruned" and record["error"] is None
    assert record["epochs"] == 1 and len(record["history"]) == 1
    assert "val/psnr" in record["metrics"] and "test/psnr" not in record["metrics"]  # not tested
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    trial = load(f"sqlite:///{tmp_path / 'study.db'}", "s").trials[0]
    assert trial.intermediate_values == {1: pytest.approx(record["metrics"]["val/psnr"])}
    # its checkpoint goes on outside the search, reporting to no study
    saved = tmp_path / "run" / ".hydra" / "config.yaml"  # as Hydra saves it
    saved.parent.mkdir()
    OmegaConf.save(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), saved)
    train(compose_config(tmp_path / "run", [f"resume={tmp_path / 'run'}", "trainer.max_epochs=2"]))
    record = read_record(tmp_path / "run")
    assert (record["status"], record["epochs"]) == ("ok", 2)
    assert load(f"sqlite:///{tmp_path / 'study.db'}", "s").trials[0].intermediate_values.keys() == {
        1
    }


def test_a_wrong_metric_name_fails_after_the_first_validation_epoch(train_config, tmp_path):
    cfg = train_config(
        *a_running_trial(tmp_path), "optimized_metric=val/psnrr", "trainer.max_epochs=5"
    )
    with pytest.raises(UnknownMetric) as error:
        train(cfg)
    assert str(error.value).startswith(
        "optimized_metric=val/psnrr is not a metric of this run (did you mean val/psnr?); "
        "after a validation epoch it has: val/cf, val/cf_target, val/dcf, val/dcf_signed, val/de00, "
        "val/haarpsi, val/l1, val/loss, val/mse, val/psnr, val/ssim."
    )
    assert read_record(tmp_path / "run")["epochs"] == 0  # in the first epoch
    cfg = train_config("hparams_search=optuna", "optimized_metric=test/psnr")
    with pytest.raises(UnknownMetric, match="use optimized_metric=val/psnr"):
        train(cfg)
    cfg = train_config("hparams_search=optuna", "optimized_metric=val/cf")  # logged, no direction
    with pytest.raises(UnknownMetric, match="val/cf has no better direction"):
        train(cfg)


# -- whole sweeps ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_optuna_minimizes_val_loss_and_records_a_failed_trial(tmp_path, synthetic_dir):
    result = sweep(
        tmp_path,
        synthetic_dir,
        "optimized_metric=val/loss",
        "hydra.sweeper.n_trials=3",
        "model.lr=choice(1e-3,1e30)",
        "data.batch_size=range(4, 9, 4)",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]  # a failed trial does not stop the search
    jobs = records(tmp_path / "sweep")
    assert sorted(jobs) == [0, 1, 2]
    for number, record in jobs.items():
        diverged = job_overrides(tmp_path / "sweep" / str(number))["model.lr"] == 1e30
        assert record["status"] == ("failed" if diverged else "ok")
        assert diverged == str(record["error"]).startswith("TrainingDiverged")
    assert "setup plugin" not in output  # optuna's alembic import, silenced
    assert "Warning" not in output
    results = yaml_load(tmp_path / "sweep" / "optimization_results.yaml")
    best = results["best_trial"]
    assert results["best_value"] == pytest.approx(jobs[best]["metrics"]["val/loss"])
    assert results["best_params"]["model.lr"] == 1e-3
    # TPE's seed 0 draws 1e30 (diverges), 1e-3, 1e30
    assert results["trials"] == {"complete": 1, "pruned": 0, "failed": 2, "running": 0}
    study_file = yaml_load(tmp_path / "sweep" / "study.yaml")
    assert (
        study_file["storage"]
        == f"sqlite:///{tmp_path}/outputs/sweeps/{results['study_name']}/study.db"
    )
    assert Path(study_file["storage"].removeprefix("sqlite:///")).is_file()
    summary = output.strip().splitlines()[-1]
    assert summary.startswith(
        f"sweep: 3 job(s) ran: {results['trials']['complete']} complete, 0 pruned, "
        f"{results['trials']['failed']} failed; best by val/loss: job {best} "
    )
    assert f"optuna-dashboard {study_file['storage']}" in summary


def job_overrides(run_dir: Path) -> dict:
    """A trial job's own overrides, as it ran them."""
    lines = yaml_load(run_dir / ".hydra" / "overrides.yaml")
    parsed = OverridesParser.create().parse_overrides(lines)
    return {o.key_or_group: o.value() for o in parsed}


def yaml_load(path: Path):
    import yaml

    return yaml.safe_load(path.read_text())


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_rerunning_a_finished_trial(tmp_path, synthetic_dir):
    command = [*SEARCH, f"data.data_dir={synthetic_dir}", "trainer.max_epochs=6"]
    command += ["hydra.sweeper.n_trials=3", "hydra.sweeper.study_name=killed"]
    first = start_cli("s2p-train", "-m", *command, "hydra.sweep.dir=first", cwd=tmp_path)
    try:  # killed while trial 1 trains, trial 0 done
        wait_until(
            lambda: (tmp_path / "first" / "1" / "train.log").is_file(),
            "trial 1 to start",
            process=first,
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    storage = f"sqlite:///{tmp_path}/outputs/sweeps/killed/study.db"
    before = {t.number: t for t in load(storage, "killed").trials}
    finished = {n for n, t in before.items() if t.state == TrialState.COMPLETE}
    assert finished == {0} and before[1].state == TrialState.RUNNING

    result = run_cli("s2p-train", "-m", *command, "hydra.sweep.dir=second", cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    after = load(storage, "killed").trials
    rerun = records(tmp_path / "second")
    assert not set(rerun) & finished  # 0 finished trials run again
    assert after[1].state == TrialState.FAIL  # the killed one: failed, and re-queued
    retry = next(t for t in after if t.system_attrs.get("failed_trial") == 1)
    assert retry.params == before[1].params and retry.state == TrialState.COMPLETE
    assert sorted(rerun) == [2, 3] and retry.number in (2, 3)
    assert [t.state for t in after if t.number != 1] == [TrialState.COMPLETE] * 3
    # the rerun's sampler (seed 0) does not draw the first run's values again
    assert len({tuple(t.params.values()) for t in after if t.number != 1}) == 3
    assert all(record["status"] == "ok" for record in rerun.values())


def two_workers_on(storage: str, study_name: str, tmp_path, data_dir):
    """Two sweeps started at once on one study storage: (the study's trials, each worker's
    records by trial number), once both have exited 0."""
    command = [
        *SEARCH,
        f"data.data_dir={data_dir}",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.study_name={study_name}",
        "hydra.sweeper.sampler.seed=null",  # one seed would give both workers the same values
        f"hydra.sweeper.storage={storage}",
    ]
    workers = [
        start_cli("s2p-train", "-m", *command, f"hydra.sweep.dir=worker{k}", cwd=tmp_path)
        for k in (0, 1)
    ]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], (
        outputs[0][-2000:] + outputs[1][-2000:]
    )
    trials = load(storage, study_name).trials
    ran = [records(tmp_path / f"worker{k}") for k in (0, 1)]
    assert not set(ran[0]) & set(ran[1])  # no trial done twice
    assert sorted([*ran[0], *ran[1]]) == [t.number for t in trials]  # none lost
    # two workers that ask at the same moment may each add one beyond n_trials
    assert 4 <= len(trials) <= 5 and all(t.state == TrialState.COMPLETE for t in trials)
    return trials, ran


@pytest.mark.slow
def test_two_workers_share_a_journal_study(tmp_path, synthetic_dir):
    journal = tmp_path / "shared" / "journal.log"
    trials, ran = two_workers_on(str(journal), "shared", tmp_path, synthetic_dir)
    assert all(ran), "both workers ran trials"
    for records_of in ran:
        for number, record in records_of.items():
            assert record["status"] == "ok"
            assert trials[number].value == pytest.approx(record["metrics"]["val/psnr"])


@pytest.mark.slow
def test_pruned_trials_in_a_batch_on_submitit_and_in_s2p_compare(tmp_path, synthetic_dir):
    # both trials at once, each in its own process, reporting to the study in SQLite
    launcher = ["hydra/launcher=submitit_local", "hydra.sweeper.n_jobs=2"]
    result = sweep(tmp_path, synthetic_dir, "hydra.sweeper.n_trials=2", *launcher, *PRUNE_ALL)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    jobs = records(tmp_path / "sweep")
    assert [jobs[n]["status"] for n in (0, 1)] == ["pruned", "pruned"]
    assert "Submitit 'local' sweep output dir" in output
    assert "trial 0 pruned after epoch 1" in (tmp_path / "sweep" / "0" / "train.log").read_text()
    assert (tmp_path / "sweep" / "1" / "checkpoints" / "last.ckpt").is_file()
    assert "Error executing job" not in output
    assert "sweep: 2 job(s) ran: 0 complete, 2 pruned, 0 failed." in output
    results = yaml_load(tmp_path / "sweep" / "optimization_results.yaml")
    assert results["trials"] == {"complete": 0, "pruned": 2, "failed": 0, "running": 0}
    compared = run_cli("s2p-compare", "dir=sweep", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert "2 run(s) under sweep, 2 not ok (2 pruned by the Optuna study" in compared.stdout
    table = compared.stdout.split("\n\n")[1].splitlines()
    assert "optuna_trial" not in table[0]  # the run's name is its trial number
    assert all(line.rstrip().endswith("pruned") for line in table[2:])


@pytest.mark.slow
def test_a_wrong_metric_name_stops_the_search_at_the_first_trial(tmp_path, synthetic_dir):
    result = sweep(
        tmp_path,
        synthetic_dir,
        "optimized_metric=val/psnrr",
        "hydra.sweeper.n_trials=3",
        "trainer.max_epochs=20",
    )
    assert result.returncode == 1
    message = (
        "optimized_metric=val/psnrr is not a metric of this run (did you mean val/psnr?); "
        "after a validation epoch it has: val/cf, val/cf_target, val/dcf, val/dcf_signed, val/de00, "
        "val/haarpsi, val/l1, val/loss, val/mse, val/psnr, val/ssim."
    )
    assert message in result.stderr.splitlines()  # alone on its line: no traceback
    assert "Traceback" not in result.stderr
    jobs = records(tmp_path / "sweep")
    assert list(jobs) == [0] and jobs[0]["epochs"] == 0  # in the first epoch of the first trial


# -- PostgreSQL: a real server, started here ----------------------------------------------------
POSTGRES_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


@pytest.fixture
def postgres_url():
    """A PostgreSQL server of Debian's package in a temporary dir, run as the `postgres` user
    (the server refuses root), listening on 127.0.0.1; the URL of an empty database."""
    if not POSTGRES_BIN or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    bin_dir = Path(POSTGRES_BIN[-1])
    root = Path(tempfile.mkdtemp(prefix="s2p-postgres-"))
    shutil.chown(root, "postgres")
    port = free_port()

    def as_postgres(*command: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True,
            capture_output=True,
            timeout=120,
        )

    try:
        as_postgres(str(bin_dir / "initdb"), "-D", f"{root}/data", "--auth=trust", "-U", "postgres")
        as_postgres(
            str(bin_dir / "pg_ctl"),
            "-D",
            f"{root}/data",
            "-l",
            f"{root}/server.log",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
            "-w",
            "start",
        )
        as_postgres(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "s2p")
        yield f"postgresql://postgres@127.0.0.1:{port}/s2p"
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(bin_dir / "pg_ctl"),
                "-D",
                f"{root}/data",
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_a_study_on_a_postgresql_server(tmp_path, synthetic_dir, postgres_url):
    trials, _ = two_workers_on(postgres_url, "on_postgres", tmp_path, synthetic_dir)
    assert trials[0].intermediate_values.keys() == {1, 2}  # reported to the server every epoch


def test_the_old_hydra_optuna_sweeper_is_named_when_it_is_still_installed(monkeypatch):
    from sketch2photo import checks

    check_optuna_sweeper(["-m", "hparams_search=optuna"])  # not installed here: nothing to say
    real = checks.importlib.util.find_spec
    monkeypatch.setattr(
        checks.importlib.util,
        "find_spec",
        lambda name: object() if name == "hydra_plugins.hydra_optuna_sweeper" else real(name),
    )
    with pytest.raises(UserError, match="pip uninstall hydra-optuna-sweeper"):
        check_optuna_sweeper(["-m", "hparams_search=optuna"])
    check_optuna_sweeper(["-m", "model.lr=1e-3,1e-4"])  # a grid sweep does not need it
