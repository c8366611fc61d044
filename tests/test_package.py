"""The package installs like any other: a built wheel, in a fresh venv, run from a folder that is
not the checkout, finds its configs, trains, and takes a user's own experiment file via
--config-dir.

The fresh venv gets the wheel alone (--no-deps); its third-party packages (torch, Lightning, ...)
come from this suite's venv through a .pth file, so the test does not download them again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from helpers import ROOT, run_cli

pytestmark = pytest.mark.slow


def run(program: Path | str, *args, cwd: Path) -> subprocess.CompletedProcess:
    result = run_cli(
        program, *args, cwd=cwd, timeout=600, env={"PYTHONPATH": None}
    )  # only what is installed
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ of a fresh venv holding the wheel built from this checkout."""
    work = tmp_path_factory.mktemp("package")
    source = (
        work / "source"
    )  # a copy: building writes build/ and *.egg-info into the tree it builds
    skipped = {
        ".venv",
        ".git",
        "outputs",
        "data",
        "build",
        "multirun",
    }  # at the top only: src/.../data is code
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=lambda folder, names: [
            name
            for name in names
            if (Path(folder) == ROOT and name in skipped) or name.endswith(".egg-info")
        ],
    )
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        work / "wheels",
        source,
        cwd=work,
    )
    (wheel,) = (work / "wheels").glob("sketch2photo-*.whl")
    run(sys.executable, "-m", "venv", work / "venv", cwd=work)
    bin_dir = work / "venv" / "bin"
    site = Path(
        run(
            bin_dir / "python",
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            cwd=work,
        ).stdout.strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(
        bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=work
    )
    return bin_dir


def test_the_wheel_carries_its_configs_and_trains_outside_the_checkout(installed, tmp_path):
    where = run(
        installed / "python",
        "-c",
        "import sketch2photo; print(sketch2photo.__file__)",
        cwd=tmp_path,
    ).stdout
    assert where.startswith(str(installed.parent))  # the installed copy, not this checkout's src/

    for tool in (
        "s2p-predict",
        "s2p-export",
        "s2p-make-pairs",
        "s2p-compare",
        "s2p-eval",
        "s2p-pack",
        "s2p-app",
    ):
        run(
            installed / tool, "--cfg", "job", cwd=tmp_path
        )  # exits 0 only when every config it composes was shipped
    sweepers = run(
        installed / "python",
        "-c",
        "from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import Sweeper; "
        "import sys; print([sys.modules[p.__module__].__file__ for p in Plugins.instance().discover(Sweeper)])",
        cwd=tmp_path,
    ).stdout
    # Hydra finds the wheel's own Optuna sweeper, and its configs were shipped with it
    assert (
        f"{installed.parent}/lib/" in sweepers
        and "s2p_optuna_sweeper/optuna_sweeper.py" in sweepers
    )
    sweeper = run(
        installed / "s2p-train",
        "hparams_search=optuna",
        "--cfg",
        "hydra",
        "-p",
        "hydra.sweeper",
        cwd=tmp_path,
    ).stdout
    assert "_target_: hydra_plugins.s2p_optuna_sweeper.optuna_sweeper.OptunaSweeper" in sweeper
    assert "_target_: optuna.samplers.TPESampler" in sweeper
    job = run(installed / "s2p-train", "--cfg", "job", cwd=tmp_path).stdout
    assert "_target_: sketch2photo.data.datamodules.pairs.PairedSketchDataModule" in job
    assert (
        "paths:\n  data_dir: data\n  output_dir: outputs\n" in job
    )  # relative: the folder the command runs from

    tiny = [
        "trainer.max_epochs=1",
        "data.synthetic_pairs=8",
        "data.image_size=32",
        "data.batch_size=4",
        "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false",
        "hydra.run.dir=outputs/one",
    ]
    run(installed / "s2p-train", *tiny, cwd=tmp_path)
    record = json.loads((tmp_path / "outputs" / "one" / "metrics.json").read_text())
    assert record["status"] == "ok"
    assert record["epochs"] == 1
    assert (
        tmp_path / "data" / "synthetic-8-32-by_shape" / "testA"
    ).is_dir()  # written where the command ran


def test_a_users_own_experiment_file_through_config_dir(installed, tmp_path):
    (tmp_path / "my_configs" / "experiment").mkdir(parents=True)
    (tmp_path / "my_configs" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /model: unet\n"
        "model:\n  lr: 0.002\n  net:\n    depth: 2\n    width: 8\n"
        "data:\n  synthetic_pairs: 8\n  image_size: 32\n  batch_size: 4\n"
        "trainer:\n  max_epochs: 1\n  enable_progress_bar: false\n"
        "callbacks:\n  progress_bar: null\n"
    )
    run(
        installed / "s2p-train",
        "--config-dir",
        "my_configs",
        "experiment=mine",
        "hydra.run.dir=outputs/mine",
        cwd=tmp_path,
    )
    run_dir = tmp_path / "outputs" / "mine"
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "_target_: sketch2photo.nets.conditioning.ConditionedGenerator" in config
    assert "generator: unet" in config
    assert "lr: 0.002" in config


def test_building_the_package_gives_no_warning(tmp_path):
    """setuptools builds the metadata and the wheel from pyproject.toml without a warning (it once
    warned twice that project.license as a TOML table is deprecated)."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(
        ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    (tmp_path / "meta").mkdir(), (tmp_path / "wheel").mkdir()
    build = (
        "from setuptools import build_meta; "
        "build_meta.prepare_metadata_for_build_wheel('meta'); build_meta.build_wheel('wheel')"
    )
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", build],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert list((tmp_path / "wheel").glob("sketch2photo-*.whl")), output[-3000:]
    warnings = [line for line in output.splitlines() if "warn" in line.lower()]
    assert warnings == [], "\n".join(warnings)


def make_dry_run(target: str, venv: Path) -> str:
    """What `make <target>` would run with its venv at `venv`, without running it."""
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_make_demo_installs_the_openmoji_extra_alone_and_make_test_adds_the_rest(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    venv = tmp_path / "venv"
    assert 'pip install --quiet -e ".[openmoji]"' in make_dry_run("demo", venv)

    venv.mkdir()
    (venv / ".installed-demo").touch()  # what `make demo` leaves: `make test` still installs
    installs = [line for line in make_dry_run("test", venv).splitlines() if "pip install" in line]
    every_extra = installs[-1].split('".[')[1].split("]")[0].split(",")
    assert sorted(every_extra) == sorted(extras)
    assert "pip install" not in make_dry_run("demo", venv)  # the demo's set is there already

    (venv / ".installed-all").touch()
    assert "pip install" not in make_dry_run("test", venv)
