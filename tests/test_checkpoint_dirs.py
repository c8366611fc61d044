"""ckpt_path=<run dir> (and init_from=): the run's best checkpoint, else its last, said in one log
line; a folder without either, or a missing path, is one clear line."""

import logging

import pytest

from sketch2photo.checkpoints.locate import checkpoint_file
from sketch2photo.checkpoints.read import read_checkpoint
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
