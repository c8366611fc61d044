"""The real command line: a multirun sweep, python -m, and clear errors with no traceback."""

import json

import pytest

from helpers import TINY, run_cli

pytestmark = pytest.mark.slow


def test_two_job_multirun_shares_one_root(tmp_path, synthetic_dir):
    result = run_cli(
        "s2p-train", "-m", *TINY, f"data.data_dir={synthetic_dir}", "model.lr=1e-3,3e-3",
        "hydra.sweep.dir=sweep", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    lrs = []
    for job in ("0", "1"):
        record = json.loads((sweep / job / "metrics.json").read_text())
        assert record["status"] == "ok"
        assert record["epochs"] == 2
        assert any(p.name.startswith("events.out.tfevents") for p in (sweep / job).iterdir())
        assert (sweep / job / ".hydra" / "config.yaml").is_file()
        lrs.append((sweep / job / ".hydra" / "overrides.yaml").read_text())
    assert "model.lr=0.001" in lrs[0]
    assert "model.lr=0.003" in lrs[1]
    assert not (tmp_path / "outputs").exists()  # nothing strays outside the sweep root


def test_python_dash_m_and_a_missing_dataset(tmp_path):
    result = run_cli("python", "-m", "sketch2photo.train", "data=sketch2photo", "data.data_dir=no/such/dir", cwd=tmp_path)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "data.data_dir=no/such/dir does not exist" in output
    assert "testA/<N>_A.jpg" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "override, expected",
    [
        ("trainer.max_epochs=0", "trainer.max_epochs=0 must be a positive integer"),
        ("trainer=gpu", "Use trainer=cpu, or trainer=auto"),
        ("data.image_size=30", "data.image_size=30 does not fit SeedAutoencoder: it must be a multiple of 4"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, synthetic_dir, override, expected):
    result = run_cli("s2p-train", *TINY, f"data.data_dir={synthetic_dir}", override, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-2000:]
    assert expected in output, output[-2000:]
    assert "Traceback" not in output
