"""A run dir is data, like a checkpoint: `resume=<run dir>` instantiates only the `_target_`s that
the project's configs (and the user's own --config-dir) can name, checked after aliasing and after
resolving interpolations, refuses resolvers that build objects, and writes nowhere outside the run
dir. Nothing it names is called before the check."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from helpers import TINY, compose_config, run_cli
from sketch2photo.commands.train import train
from sketch2photo.errors import UserError
from sketch2photo.runs.record import read_record


class TouchesMarker:
    """Unpickling this creates a file: what a pickle planted in a shared run dir does."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def run_dir(train_config, tmp_path) -> Path:
    """A finished 1-epoch run with its .hydra/config.yaml, as s2p-train leaves it."""
    cfg = train_config("trainer.max_epochs=1")
    train(cfg)
    run = tmp_path / "run"
    saved = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    (run / ".hydra").mkdir()
    OmegaConf.save(saved, run / ".hydra" / "config.yaml")
    return run


def tamper(run: Path, change) -> None:
    """Edit the run's saved config as plain YAML, as someone handing the folder over could."""
    path = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))


def resume(run: Path, *overrides: str):
    return train(compose_config(run, [f"resume={run}", "trainer.max_epochs=2", *overrides]))


def test_a_callback_that_unpickles_code_is_refused_before_it_runs(run_dir, tmp_path):
    marker = tmp_path / "payload-ran"
    torch.save(TouchesMarker(marker), run_dir / "state.pkl")
    tamper(
        run_dir,
        lambda c: c["callbacks"].update(
            state={"_target_": "torch.load", "f": str(run_dir / "state.pkl"), "weights_only": False}
        ),
    )
    with pytest.raises(
        UserError,
        match=rf"resume={run_dir}: its \.hydra/config\.yaml asks to instantiate 'torch\.load' "
        r"\(at callbacks\.state\).*refused, nothing was called",
    ):
        resume(run_dir)
    assert not marker.exists()
    assert read_record(run_dir)["epochs"] == 1  # the run is as it was


def test_a_target_that_overwrites_a_file_outside_the_run_is_refused(run_dir, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (run_dir / "junk.txt").write_text("junk")
    tamper(
        run_dir,
        lambda c: c["trainer"].update(
            plugins=[
                {
                    "_target_": "shutil.copyfile",
                    "src": str(run_dir / "junk.txt"),
                    "dst": str(victim),
                }
            ]
        ),
    )
    with pytest.raises(UserError, match=r"'shutil\.copyfile' \(at trainer\.plugins\[0\]\)"):
        resume(run_dir)
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("resolver", ["oc.create", "oc.decode"])
def test_resolvers_that_build_objects_are_refused(run_dir, tmp_path, resolver):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    built = "{_target_: shutil.copyfile, src: " + str(run_dir / "metrics.json")
    built += ", dst: " + str(victim) + "}"
    if resolver == "oc.decode":
        built = "'" + built + "'"
    tamper(run_dir, lambda c: c["callbacks"].update(extra="${" + resolver + ":" + built + "}"))
    with pytest.raises(
        UserError, match=rf"uses the resolver {resolver} \(at callbacks\.extra\).*refused"
    ):
        resume(run_dir)
    assert victim.read_text() == "precious"


def test_targets_are_checked_after_resolving_interpolations(run_dir, tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    monkeypatch.setenv("S2P_TEST_TARGET", "shutil.copyfile")
    tamper(
        run_dir,
        lambda c: c["callbacks"].update(
            gone={
                "_target_": "${oc.env:S2P_TEST_TARGET}",
                "src": str(run_dir / "metrics.json"),
                "dst": str(victim),
            }
        ),
    )
    with pytest.raises(UserError, match=r"'shutil\.copyfile' \(at callbacks\.gone\)"):
        resume(run_dir)
    # an escaped interpolation resolves to a string that instantiate() would resolve again
    tamper(
        run_dir,
        lambda c: c["callbacks"].update(gone="\\${oc.create:{_target_: os.remove, _args_: [x]}}"),
    )
    with pytest.raises(UserError, match=r"holds an interpolation .* at callbacks\.gone"):
        resume(run_dir)
    assert victim.read_text() == "precious"


def test_checkpoints_and_logs_stay_inside_the_run_dir(run_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    tamper(
        run_dir,
        lambda c: c["callbacks"]["model_checkpoint"].update(dirpath=str(elsewhere)),
    )
    with pytest.raises(
        UserError,
        match=r"callbacks\.model_checkpoint\.dirpath=.*elsewhere, which is outside the run dir",
    ):
        resume(run_dir)
    assert not elsewhere.exists()


def test_the_projects_own_run_dirs_still_resume(run_dir):
    record = resume(run_dir)
    assert read_record(run_dir)["epochs"] == 2
    assert "train/loss" in record


@pytest.mark.slow
def test_a_run_with_the_users_own_targets_resumes_with_the_same_config_dir(tmp_path):
    mine = tmp_path / "my_configs" / "callbacks"
    mine.mkdir(parents=True)
    (mine / "with_lr.yaml").write_text(
        "defaults:\n  - default\n"
        "lr_monitor:\n  _target_: lightning.pytorch.callbacks.LearningRateMonitor\n"
    )
    common = [*TINY, "trainer.max_epochs=1", f"paths.data_dir={tmp_path / 'data'}"]
    first = run_cli(
        "s2p-train",
        "--config-dir",
        "my_configs",
        "callbacks=with_lr",
        *common,
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr[-3000:]

    refused = run_cli("s2p-train", "resume=run", "trainer.max_epochs=2", cwd=tmp_path)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output[-3000:]
    assert "'lightning.pytorch.callbacks.LearningRateMonitor' (at callbacks.lr_monitor)" in output
    assert "--config-dir" in output  # says how to resume it
    assert "Traceback" not in output

    resumed = run_cli(
        "s2p-train",
        "--config-dir",
        "my_configs",
        "resume=run",
        "trainer.max_epochs=2",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert read_record(tmp_path / "run")["epochs"] == 2
