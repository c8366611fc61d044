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
        lambda c: c["callbacks"].update(gone="\\${oc.env:S2P_TEST_TARGET}"),
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


@pytest.mark.parametrize(
    "change, where",
    [
        (  # ModelCheckpoint(dirpath, filename) given positionally
            lambda c: c["callbacks"]["model_checkpoint"].update(_args_=["/tmp/elsewhere"]),
            r"callbacks\.model_checkpoint\._args_=.*positional arguments",
        ),
        (
            lambda c: c["callbacks"]["model_checkpoint"].update(filename="../../best"),
            r"callbacks\.model_checkpoint\.filename=\.\./\.\./best, not a plain name",
        ),
        (
            lambda c: c["logger"]["tensorboard"].update(version="../.."),
            r"logger\.tensorboard\.version=\.\./\.\., not a plain name",
        ),
        (
            lambda c: c["callbacks"].update(
                optuna_report={
                    "_target_": "sketch2photo.runs.study.ReportToStudy",
                    "storage": "/tmp/elsewhere/journal.log",
                    "study_name": "x",
                    "trial": 0,
                    "metric": "val/psnr",
                }
            ),
            r"callbacks\.optuna_report\.storage=/tmp/elsewhere/journal\.log, a study storage",
        ),
    ],
)
def test_nothing_in_the_config_writes_outside_the_run_dir_by_another_key(run_dir, change, where):
    tamper(run_dir, change)
    with pytest.raises(UserError, match=where):
        resume(run_dir)
    assert read_record(run_dir)["epochs"] == 1


def test_sizes_and_synthetic_pairs_from_a_run_dir_are_bounded(run_dir, tmp_path):
    tamper(run_dir, lambda c: c["data"].update(image_size=65536))
    with pytest.raises(UserError, match=r"data\.image_size=65536 must be a whole number from 8"):
        resume(run_dir)
    elsewhere = tmp_path / "elsewhere"
    tamper(
        run_dir,
        lambda c: c["data"].update(image_size=32, synthetic_pairs=8, data_dir=str(elsewhere)),
    )
    with pytest.raises(UserError, match=r"writes synthetic pairs to data\.data_dir=.*elsewhere"):
        resume(run_dir)
    assert not elsewhere.exists()


def test_an_escaped_resolver_and_a_target_that_is_not_a_name_are_refused(run_dir):
    # OmegaConf reads \\${...} as a backslash, then a live interpolation
    tamper(run_dir, lambda c: c["callbacks"].update(spy="\\\\${oc.create:{a: 1}}"))
    with pytest.raises(UserError, match=r"uses the resolver oc\.create \(at callbacks\.spy\)"):
        resume(run_dir)
    tamper(
        run_dir,
        lambda c: c["callbacks"].update(spy={"_target_": ["os.system"]}),
    )
    with pytest.raises(
        UserError, match=r"asks to instantiate \['os\.system'\] \(at callbacks\.spy\)"
    ):
        resume(run_dir)


def test_a_run_dir_under_the_config_dir_does_not_vouch_for_itself(run_dir, monkeypatch):
    from sketch2photo.checkpoints import resume as resume_module

    tamper(run_dir, lambda c: c["callbacks"].update(state={"_target_": "os.getcwd"}))
    # --config-dir <a folder holding the run dir>: its .hydra/config.yaml names the target
    folders = resume_module.config_folders()
    monkeypatch.setattr(resume_module, "config_folders", lambda: [*folders, run_dir.parent])
    with pytest.raises(UserError, match=r"'os\.getcwd' \(at callbacks\.state\)"):
        resume(run_dir)


def test_links_in_a_run_dir_are_refused_before_hydra_writes_into_it(run_dir, tmp_path):
    from sketch2photo.runs.run_dir import check_no_links

    victim = tmp_path / "victim.log"
    victim.write_text("precious")
    (run_dir / "train.log").unlink(missing_ok=True)
    (run_dir / "train.log").symlink_to(victim)
    with pytest.raises(UserError, match=r"train\.log is a link to .*victim\.log: refused"):
        check_no_links([f"resume={run_dir}", "trainer.max_epochs=2"])
    check_no_links(["trainer.max_epochs=2"])  # no resume: nothing to check
    assert victim.read_text() == "precious"


def test_a_quoted_run_dir_is_read_as_hydra_reads_it(tmp_path):
    from sketch2photo.runs.run_dir import check_no_links

    spaced = tmp_path / "my runs" / "a=1"
    spaced.mkdir(parents=True)
    (spaced / "train.log").symlink_to(tmp_path)
    with pytest.raises(UserError, match=r"train\.log is a link"):
        check_no_links(["-m", f"resume='{spaced}'", "trainer.max_epochs=2"])
