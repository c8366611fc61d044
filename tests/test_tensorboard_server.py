"""A real `tensorboard` server on a sweep dir: both runs, their scalars, image grids and one HPARAMS
table with the same columns for every run, read back through its HTTP API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from helpers import free_port, start_cli, two_job_sweep, wait_until

pytestmark = pytest.mark.slow

RUNS = {"0/model.lr=0.001": "0", "1/model.lr=0.003": "1"}  # TensorBoard's run name: job dir


@pytest.fixture
def tensorboard():
    """start(logdir) -> a function that GETs (or POSTs JSON to) the server's HTTP API. Always shut
    down."""
    servers: list[subprocess.Popen] = []

    def start(logdir: Path):
        port = free_port()
        # its own process group: the server and its data-server child go down together
        servers.append(
            start_cli(
                "tensorboard",
                "--logdir",
                logdir,
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--samples_per_plugin",
                "images=100",
                "--reload_interval",
                "1",
                stdout=subprocess.DEVNULL,
            )
        )

        def api(path: str, body: dict | None = None):
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                data=data,
                headers={"Content-Type": "application/json"},
            )
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


def test_tensorboard_shows_a_sweep_side_by_side(tmp_path, synthetic_dir, tensorboard):
    api = tensorboard(two_job_sweep(tmp_path, synthetic_dir))

    def both_runs():  # the server loads event files in the background
        runs = api("/data/runs")
        return runs if len(runs) >= 2 else None

    def both_runs_scalars():
        tags = api("/data/plugin/scalars/tags")
        return tags if all("val/psnr" in tags.get(run, {}) for run in RUNS) else None

    # named by what the sweep varies (data.data_dir and the tiny settings are the same for both)
    assert sorted(wait_until(both_runs, "both runs", timeout=90, interval=0.5)) == list(RUNS)
    scalars = wait_until(both_runs_scalars, "both runs' scalars", timeout=90, interval=0.5)
    for run, job in RUNS.items():
        assert {"train/loss", "val/loss", "val/psnr"} <= set(scalars[run])
        # the curves only: SCALARS opens on its first group, train/; test/* (one number per
        # run) is in metrics.json
        assert {tag.split("/")[0] for tag in scalars[run]} == {"train", "val"}
        grids = api(f"/data/plugin/images/images?run={quote(run)}&tag=samples&sample=0")
        assert len(grids) == len(list((tmp_path / "sweep" / job / "samples").glob("*.png"))) >= 2

    groups = api(
        "/data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": [
                "STATUS_UNKNOWN",
                "STATUS_SUCCESS",
                "STATUS_FAILURE",
                "STATUS_RUNNING",
            ],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 100,
        },
    )["sessionGroups"]
    assert len(groups) == 2
    assert groups[0]["hparams"].keys() == groups[1]["hparams"].keys()  # the same columns
    assert sorted(group["hparams"]["lr"] for group in groups) == [0.001, 0.003]
