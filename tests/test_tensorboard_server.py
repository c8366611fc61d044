"""A real `tensorboard` server on a sweep dir: both runs, their scalars, image grids and one HPARAMS
table with the same columns for every run, read back through its HTTP API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import BIN, TINY, run_cli

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def tensorboard():
    """start(logdir) -> a function that GETs (or POSTs JSON to) the server's HTTP API. Always shut down."""
    servers: list[subprocess.Popen] = []

    def start(logdir: Path):
        port = free_port()
        command = [str(BIN / "tensorboard"), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
                   "--samples_per_plugin", "images=100", "--reload_interval", "1"]
        # its own process group: the server and its data-server child go down together
        servers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))

        def api(path: str, body: dict | None = None):
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        return api

    yield start
    for server in servers:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def wait_for(read, ready, timeout: float = 90):
    """Poll read() until ready(value): the server loads event files in the background."""
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = read()
            if ready(value):
                return value
        except OSError:  # not listening yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"tensorboard did not get there in {timeout} s; last answer: {value}")


def test_tensorboard_shows_a_sweep_side_by_side(tmp_path, synthetic_dir, tensorboard):
    result = run_cli(
        "s2p-train", "-m", *TINY, f"data.data_dir={synthetic_dir}", "model.lr=1e-3,3e-3", "hydra.sweep.dir=sweep", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api = tensorboard(tmp_path / "sweep")

    assert sorted(wait_for(lambda: api("/data/runs"), lambda runs: len(runs) >= 2)) == ["0", "1"]
    scalars = wait_for(lambda: api("/data/plugin/scalars/tags"), lambda tags: all("val/psnr" in tags.get(run, {}) for run in "01"))
    for run in ("0", "1"):
        assert {"train/loss", "val/loss", "val/psnr", "test/psnr"} <= set(scalars[run])
        grids = api(f"/data/plugin/images/images?run={run}&tag=samples&sample=0")
        assert len(grids) == len(list((tmp_path / "sweep" / run / "samples").glob("*.png"))) >= 2

    groups = api("/data/plugin/hparams/session_groups", {
        "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [], "startIndex": 0, "sliceSize": 100,
    })["sessionGroups"]
    assert len(groups) == 2
    assert groups[0]["hparams"].keys() == groups[1]["hparams"].keys()  # the same columns
    assert sorted(group["hparams"]["lr"] for group in groups) == [0.001, 0.003]
