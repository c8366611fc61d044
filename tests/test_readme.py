"""The README's first hour, run as written from a temporary folder: every command of the code
blocks marked `<!-- first-hour ... -->`, with short training appended to each s2p-train."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from helpers import BIN, free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
# 1 epoch on 64 of the 1,200 glyphs: the commands stay as written, only shorter
SHORT_TRAINING = " trainer.max_epochs=1 data.train_glyphs=64"
SERVERS = {  # commands that serve until stopped: how to give them a free port, and their page
    "s2p-app": lambda port: f" port={port}",
    "tensorboard": lambda port: f" --port {port}",
}


def first_hour_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- first-hour[^>]*-->\n```bash\n(.*?)```", readme, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def fetch(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read() if response.status == 200 else None
    except OSError:
        return None


def serve_and_fetch(command: str, cwd: Path, env: dict) -> bytes:
    port = free_port()
    program = command.split()[0]
    server = subprocess.Popen(
        ["bash", "-c", f"exec {command}{SERVERS[program](port)}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        return wait_until(
            lambda: fetch(f"http://127.0.0.1:{port}/"), f"{program}'s page", 180, server
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
def test_the_first_hour_runs_as_written(tmp_path):
    pytest.importorskip("gradio", reason="the app extra (make install) is not installed")
    pytest.importorskip("resvg_py", reason="the openmoji extra (make install) is not installed")
    commands = first_hour_commands()
    programs = [command.split()[0] for command in commands]
    assert programs == [
        "s2p-train",
        "s2p-predict",
        "echo",
        "s2p-predict",
        "s2p-app",
        "s2p-train",
        "s2p-compare",
        "tensorboard",
    ]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        if command.startswith("s2p-train"):
            command += SHORT_TRAINING
        if command.split()[0] in SERVERS:
            page = serve_and_fetch(command, tmp_path, env)
            assert b"<html" in page.lower() or b"<!doctype html" in page.lower()
            continue
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,  # a command that hangs fails here, named, not at pytest's timeout
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"

    assert (tmp_path / "outputs/first-hour/checkpoints/last.ckpt").is_file()
    assert (tmp_path / "coloured/1F431_A.png").is_file()
    assert (tmp_path / "coloured-hints/previews/1F431_A.png").is_file()
    events = (tmp_path / "outputs/first-sweep").glob("*/*/events.out.tfevents.*")
    # TensorBoard's two runs: <job number>/<what the sweep varies>
    runs = {(path.parent.parent.name, path.parent.name) for path in events}
    assert runs == {("0", "model.lr=0.0003"), ("1", "model.lr=0.001")}
    assert (tmp_path / "outputs/first-sweep/comparison.csv").is_file()
