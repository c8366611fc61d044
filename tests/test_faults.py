"""Faults never lose work: killed runs resume exactly, checkpoint writes are atomic, Ctrl-C saves,
NaN stops with a clear message, bad checkpoints and resume requests are clear errors."""

import os
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from helpers import TINY, run_cli, start_cli, wait_until
from sketch2photo.checkpoints.callbacks import CheckpointOnInterrupt
from sketch2photo.checkpoints.write import AtomicCheckpointIO
from sketch2photo.commands.train import train
from sketch2photo.errors import UserError
from sketch2photo.module import TrainingDiverged
from sketch2photo.runs.record import read_record

pytestmark = pytest.mark.slow

# 6 steps an epoch with shuffling and augmentation, so resuming must restore both RNG streams
RUN = [
    *TINY,
    "data.synthetic_pairs=24",
    "data.batch_size=4",
    "data.augment.enabled=true",
    "trainer.max_epochs=8",
]


def start(tmp_path: Path, name: str, *extra: str) -> subprocess.Popen:
    return start_cli(
        "s2p-train",
        *RUN,
        f"paths.data_dir={tmp_path / 'data'}",
        f"hydra.run.dir={name}",
        *extra,
        cwd=tmp_path,
    )


def output_of(process: subprocess.Popen, timeout: float = 120) -> str:
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        pytest.fail(f"the run hung; its threads' stacks:\n{process.communicate()[0][-6000:]}")


# pix2pix: two networks, two optimizers and two schedulers (decaying over epochs 5-8) to restore
PIX2PIX = [
    "model=pix2pix",
    "model.net.depth=2",
    "model.net.width=8",
    "model.discriminator.ndf=8",
]


@pytest.mark.parametrize("model", [[], PIX2PIX], ids=["autoencoder", "pix2pix"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, model):
    reference, killed = (
        start(tmp_path, "reference", *model),
        start(tmp_path, "killed", *model),
    )  # side by side, to save time
    wait_until(
        (tmp_path / "killed" / "samples" / "epoch_0004.png").exists,
        "epoch 4's sample grid",
        process=killed,
    )
    killed.kill()  # SIGKILL: no cleanup of any kind
    killed.wait()
    assert reference.wait(timeout=300) == 0, reference.stdout.read()[-3000:]
    assert not (tmp_path / "killed" / "metrics.json").exists()  # it really died mid-run
    saved_epoch = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)[
        "epoch"
    ]
    assert 2 <= saved_epoch < 7  # 0-based: at least 3 epochs done, the run not finished
    saved_config = (tmp_path / "killed" / ".hydra" / "config.yaml").read_text()

    resumed = run_cli("s2p-train", "resume=killed", cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    expected, got = read_record(tmp_path / "reference"), read_record(tmp_path / "killed")
    assert got["status"] == "ok"
    assert got["epochs"] == 8
    assert [row["epoch"] for row in got["history"]] == list(range(1, 9))
    for name, value in expected["metrics"].items():
        assert got["metrics"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert (
        tmp_path / "killed" / ".hydra" / "config.yaml"
    ).read_text() == saved_config  # resuming keeps it


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_and_exits_cleanly(tmp_path, stop):
    run = start(tmp_path, "interrupted", "trainer.max_epochs=200")
    wait_until(
        (tmp_path / "interrupted" / "samples" / "epoch_0002.png").exists,
        "epoch 2's sample grid",
        process=run,
    )
    run.send_signal(stop)
    output = output_of(run)
    assert run.returncode == (1 if stop == signal.SIGINT else 128 + signal.SIGTERM), output[-3000:]
    assert "Interrupted: saved" in output
    assert "resume=" in output
    assert "Traceback" not in output
    checkpoint = torch.load(
        tmp_path / "interrupted" / "checkpoints" / "last.ckpt", weights_only=True
    )
    assert checkpoint["epoch"] >= 1
    assert read_record(tmp_path / "interrupted")["status"] == "interrupted"


def test_checkpoint_write_is_atomic(tmp_path):
    """Kill a process in the middle of writing a checkpoint: the previous file is intact."""
    target = tmp_path / "last.ckpt"
    script = textwrap.dedent(f"""
        import sys, time, torch
        from sketch2photo.checkpoints.write import AtomicCheckpointIO
        io = AtomicCheckpointIO()
        io.save_checkpoint({{"version": 1}}, {str(target)!r})
        def stalled_save(obj, file):
            file.write(b"half a checkpoint")
            file.flush()
            print("writing", flush=True)
            time.sleep(120)
        torch.save = stalled_save
        io.save_checkpoint({{"version": 2}}, {str(target)!r})
    """)
    process = start_cli("python", "-c", script)
    try:
        assert process.stdout.readline().strip() == "writing"
    finally:
        process.kill()
        process.wait()
    assert torch.load(target, weights_only=True) == {"version": 1}


def test_ctrl_c_during_a_checkpoint_write_waits_for_the_file(tmp_path, monkeypatch):
    """KeyboardInterrupt inside torch.save's writer would surface as a RuntimeError and lose the
    save."""
    real_save = torch.save

    def save_interrupted_midway(obj, file):
        file.write(b"x" * 100)
        os.kill(os.getpid(), signal.SIGINT)
        file.seek(0)
        real_save(obj, file)

    monkeypatch.setattr(torch, "save", save_interrupted_midway)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a foreground run
    try:
        with pytest.raises(KeyboardInterrupt):
            AtomicCheckpointIO().save_checkpoint({"version": 3}, tmp_path / "last.ckpt")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.undo()
    assert torch.load(tmp_path / "last.ckpt", weights_only=True) == {"version": 3}


def test_held_back_interrupts_respect_an_ignored_sigint(tmp_path):
    """After a Ctrl-C Lightning ignores SIGINT while it shuts down: a save then must not turn it
    back on."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        AtomicCheckpointIO().save_checkpoint({"version": 4}, tmp_path / "last.ckpt")
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert torch.load(tmp_path / "last.ckpt", weights_only=True) == {"version": 4}


def test_an_interrupt_before_training_starts_keeps_last_ckpt():
    """Ctrl-C while a resumed run is still loading: the model does not hold the run's weights
    yet."""
    saved = []
    trainer = SimpleNamespace(
        fast_dev_run=False, default_root_dir="run", current_epoch=0, save_checkpoint=saved.append
    )
    callback = CheckpointOnInterrupt(dirpath="run/checkpoints")
    callback.on_exception(trainer, None, KeyboardInterrupt())
    assert saved == []
    callback.on_train_start(trainer, None)
    callback.on_exception(trainer, None, RuntimeError("a crash"))
    assert (
        saved == []
    )  # only an interrupt saves: a crash must not overwrite the last good checkpoint
    callback.on_exception(trainer, None, KeyboardInterrupt())
    assert [Path(path) for path in saved] == [Path("run") / "checkpoints" / "last.ckpt"]


def test_ctrl_c_during_training_waits_for_the_end_of_the_batch():
    """Raised mid-bytecode, KeyboardInterrupt can leave TensorBoard's writer lock held, and the
    shutdown then hangs on it: the first Ctrl-C only asks, the second stops at once."""
    trainer = SimpleNamespace(fast_dev_run=False, default_root_dir="run", current_epoch=0)
    previous = signal.signal(
        signal.SIGINT, signal.default_int_handler
    )  # a background job (nohup) ignores it
    callback = CheckpointOnInterrupt(dirpath="run/checkpoints")
    try:
        callback.on_train_start(trainer, None)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs here, in the middle of the "step", and must not raise
        assert callback.stop_requested
        with pytest.raises(KeyboardInterrupt):
            callback.on_train_batch_end(trainer, None, None, None, 0)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

        callback = CheckpointOnInterrupt(dirpath="run/checkpoints")
        callback.on_train_start(trainer, None)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_nan_stops_with_a_clear_message_and_no_bad_checkpoint(train_config, tmp_path):
    with pytest.raises(
        TrainingDiverged, match=r"NaN or inf in epoch \d+; .* Lower model.lr \(now 1e\+30\)"
    ):
        train(train_config("model.lr=1e30", "trainer.max_epochs=4"))
    run = tmp_path / "run"
    result = read_record(run)
    assert result["status"] == "failed"
    assert "TrainingDiverged" in result["error"]
    for checkpoint in (
        (run / "checkpoints").glob("*.ckpt") if (run / "checkpoints").exists() else []
    ):
        state = torch.load(checkpoint, weights_only=True)["state_dict"]
        assert all(torch.isfinite(value).all() for value in state.values()), checkpoint


def test_bad_checkpoints_and_resume_requests(train_config, tmp_path):
    with pytest.raises(UserError, match="ckpt_path=nowhere.ckpt does not exist"):
        train(train_config("ckpt_path=nowhere.ckpt"))
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(UserError, match="is not a readable checkpoint"):
        train(train_config(f"ckpt_path={tmp_path / 'junk.ckpt'}"))

    train(train_config("trainer.max_epochs=1"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(UserError, match="holds a different model"):
        train(train_config(f"ckpt_path={last}", "model=unet", "model.net.depth=2"))
    with pytest.raises(UserError, match="no .hydra/config.yaml"):
        train(train_config(f"resume={tmp_path}"))


def test_resume_refuses_group_changes(tmp_path):
    first = run_cli(
        "s2p-train",
        *RUN,
        "trainer.max_epochs=1",
        f"paths.data_dir={tmp_path / 'data'}",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    refused = run_cli("s2p-train", "resume=run", "model=unet", cwd=tmp_path)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1
    assert "only value changes such as trainer.max_epochs" in output
    assert "Traceback" not in output
    longer = run_cli("s2p-train", "resume=run", "trainer.max_epochs=2", cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr[-2000:]
    assert read_record(tmp_path / "run")["epochs"] == 2
    failed = run_cli("s2p-train", "resume=run", "trainer.max_epochs=0", cwd=tmp_path)
    assert failed.returncode == 1
    assert "trainer.max_epochs=0 must be a positive integer" in failed.stderr + failed.stdout
    assert read_record(tmp_path / "run")["status"] == "ok"
    assert read_record(tmp_path / "run")["epochs"] == 2  # not overwritten
    assert (
        tmp_path / "run" / ".hydra" / "resumed" / "overrides.yaml"
    ).is_file()  # the original config is kept
    assert "trainer.max_epochs=1" in (tmp_path / "run" / ".hydra" / "overrides.yaml").read_text()


def test_a_full_disk_is_one_line_saying_so_and_where(tmp_path):
    """Checkpoints and metrics.json written to /dev/full (ENOSPC, as on a full disk) by the real
    command: one line naming the file, no traceback; the command is s2p-train itself."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from sketch2photo.checkpoints.write import partial_path
        run = Path("run")
        (run / "checkpoints").mkdir(parents=True)
        for name in ("last.ckpt", "best.ckpt"):
            partial_path(run / "checkpoints" / name).symlink_to("/dev/full")
        (run / "metrics.json.partial").symlink_to("/dev/full")
        sys.argv = ["s2p-train", *{RUN!r}, "trainer.max_epochs=1",
                    "paths.data_dir={tmp_path / "data"}", "hydra.run.dir=run"]
        from sketch2photo.cli import train
        train()
    """)
    result = run_cli("python", "-c", script, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1, output[-3000:]
    assert "the disk is full" in errors[0]
    assert "run/checkpoints/" in errors[0] and ".ckpt" in errors[0]
    assert "resume=" in errors[0]


def test_partial_checkpoints_of_killed_writers_are_removed_on_the_next_save(tmp_path):
    """kill -9 during a write leaves .last.ckpt.partial-*; the next save in that folder removes
    those of dead processes on this host, and leaves a live writer's and another host's alone."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    ended = subprocess.Popen(["true"])
    ended.wait()  # a pid that no longer runs
    host = socket.gethostname()
    stale = [
        folder / f".last.ckpt.partial-{ended.pid}",  # named before the host was in the name
        folder / f".last.ckpt.partial-{host}-{ended.pid}",
        folder / f".best.ckpt.partial-{host}-{ended.pid}",
    ]
    kept = [
        folder / f".last.ckpt.partial-{host}-{os.getppid()}",  # a live process
        folder / f".last.ckpt.partial-another-host-{ended.pid}",  # its pids are not ours to judge
        folder / "notes.partial-1.txt",
    ]
    for path in stale + kept:
        path.write_bytes(b"half a checkpoint")
    AtomicCheckpointIO().save_checkpoint({"version": 1}, folder / "last.ckpt")
    assert [path for path in stale if path.exists()] == []
    assert [path for path in kept if not path.exists()] == []
    assert torch.load(folder / "last.ckpt", weights_only=True) == {"version": 1}
