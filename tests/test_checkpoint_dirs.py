"""ckpt_path=<run dir> (and init_from=): the run's best checkpoint, else its last, said in one log
line; a folder without either, or a missing path, is one clear line."""

import logging

import pytest
from omegaconf import open_dict

from helpers import compose_config
from sketch2photo.checkpoints.locate import checkpoint_file
from sketch2photo.checkpoints.read import read_checkpoint
from sketch2photo.checks import check_training_paths
from sketch2photo.errors import UserError


def test_a_run_dir_means_its_best_checkpoint_else_its_last(tmp_path, caplog):
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="sketch2photo"):
        assert checkpoint_file(tmp_path / "run") == checkpoints / "last.ckpt"
    assert f"ckpt_path={tmp_path / 'run'}: using {checkpoints / 'last.ckpt'}" in caplog.text
    (checkpoints / "best.ckpt").write_bytes(b"")
    assert checkpoint_file(tmp_path / "run", "init_from") == checkpoints / "best.ckpt"
    assert checkpoint_file(checkpoints) == checkpoints / "best.ckpt"  # the checkpoints/ folder too
    assert checkpoint_file(checkpoints / "last.ckpt") == checkpoints / "last.ckpt"  # a file as is


def test_a_folder_without_checkpoints_and_a_missing_path_are_one_line(tmp_path):
    with pytest.raises(UserError) as empty:
        checkpoint_file(tmp_path)
    assert str(empty.value) == (
        f"ckpt_path={tmp_path} is a folder without checkpoints/best.ckpt or "
        "checkpoints/last.ckpt; give the run dir of an s2p-train run, or a checkpoint file."
    )
    with pytest.raises(UserError, match=r"^init_from=nowhere does not exist\. Give a checkpoint"):
        checkpoint_file("nowhere", "init_from")


def test_read_checkpoint_takes_a_run_dir(tiny_checkpoint):
    run_dir = tiny_checkpoint.parents[1]
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    checkpoint = read_checkpoint(run_dir)
    assert checkpoint["hyper_parameters"]["net"]["width"] == 8


def test_the_training_precheck_finds_files_and_leaves_made_datasets_alone(tmp_path, caplog):
    run = tmp_path / "earlier_run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"")
    cfg = compose_config(tmp_path, ["data=openmoji", "data.data_dir=not/rendered/yet"])
    check_training_paths(cfg)  # data=openmoji (and synthetic) make their folder on first use
    cfg = compose_config(tmp_path, ["data=sketch2photo", f"data.data_dir={tmp_path}"])
    with open_dict(cfg):
        cfg.init_from = str(run)
    check_training_paths(cfg)
    assert cfg.init_from == str(run / "checkpoints" / "best.ckpt")  # the command reads the file
    with pytest.raises(UserError, match=r"data\.data_dir=no/pairs does not exist"):
        check_training_paths(
            compose_config(tmp_path, ["data=sketch2photo", "data.data_dir=no/pairs"])
        )


def test_a_run_dirs_checkpoint_reached_through_a_link_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "best.ckpt").write_bytes(b"")
    linked_file = tmp_path / "a" / "checkpoints"
    linked_file.mkdir(parents=True)
    (linked_file / "best.ckpt").symlink_to(elsewhere / "best.ckpt")
    with pytest.raises(UserError, match=r"best\.ckpt is reached through a link .* refused"):
        checkpoint_file(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "checkpoints").symlink_to(elsewhere)  # the folder itself a link
    with pytest.raises(UserError, match=r"reached through a link"):
        checkpoint_file(tmp_path / "b")
    assert checkpoint_file(elsewhere) == elsewhere / "best.ckpt"  # the real folder is fine


def test_a_sweep_job_given_a_run_dir_continues_from_its_checkpoint_file(tmp_path):
    """Jobs of a sweep skip cli.py's precheck (each records its own failure): the command's body
    reads the run dir itself."""
    from sketch2photo.checkpoints.resume import resume_config

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    cfg = compose_config(tmp_path, [f"ckpt_path={tmp_path / 'run'}"])
    assert resume_config(cfg)[1] == str(tmp_path / "run" / "checkpoints" / "last.ckpt")
