"""Shared fixtures: synthetic datasets, tiny configs and checkpoints, the real data when present.
Helpers that tests import live in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

import helpers
from helpers import REAL_DATA, TINY, compose_config, tiny_unet_checkpoint
from sketch2photo.data.corpora.synthetic import write_dataset


@pytest.fixture(autouse=True)
def only_slow_tests_start_processes(request):
    """A test that is not marked slow fails if it starts a process: `make test-fast` stays fast."""
    helpers.subprocesses_allowed = request.node.get_closest_marker("slow") is not None
    yield
    helpers.subprocesses_allowed = True


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory) -> Path:
    """Decoded caches (paths.cache_dir) in a temporary dir, not in the checkout's data/cache;
    subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("decoded_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("S2P_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """12 synthetic pairs at 32 px in the testA/testB layout."""
    return write_dataset(
        tmp_path_factory.mktemp("data") / "synthetic", num_pairs=12, size=32, seed=0
    )


@pytest.fixture
def real_data_dir() -> Path:
    if not (REAL_DATA / "testA").is_dir():
        pytest.skip(f"real data not present at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture
def train_config(tmp_path, synthetic_dir):
    """compose(overrides) -> a tiny config on the synthetic data, run dir in tmp_path/run."""

    def make(*overrides: str):
        base = [*TINY, f"data.data_dir={synthetic_dir}", "data.synthetic_pairs=null"]
        return compose_config(tmp_path / "run", [*base, *overrides])

    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, synthetic_dir) -> Path:
    return tiny_unet_checkpoint(tmp_path_factory.mktemp("tiny_run"), synthetic_dir)


@pytest.fixture(scope="session")
def background_checkpoint(tmp_path_factory, synthetic_dir) -> Path:
    """The tiny U-Net given the sketch's background as an input channel and painting it white."""
    return tiny_unet_checkpoint(
        tmp_path_factory.mktemp("tiny_run"),
        synthetic_dir,
        "model.net.background_input=true",
        "model.net.background_fill=true",
    )


@pytest.fixture(scope="session")
def hint_checkpoint(tmp_path_factory, synthetic_dir) -> Path:
    """The tiny U-Net that takes colour hints (trained with simulated ones)."""
    return tiny_unet_checkpoint(
        tmp_path_factory.mktemp("tiny_run"), synthetic_dir, "model.net.hint_input=true"
    )


@pytest.fixture(scope="session")
def pix2pix_checkpoint(tmp_path_factory) -> Path:
    """A tiny pix2pix (the tests' U-Net, a narrow PatchGAN) that takes colour hints, trained for 2
    epochs with simulated ones on shapes of random colours."""
    from sketch2photo.commands.train import train

    run = tmp_path_factory.mktemp("pix2pix_run")
    data = write_dataset(run / "data", 24, size=32, colours="random")
    gan = [
        "model=pix2pix",
        "model.net.depth=2",
        "model.net.width=8",
        "model.discriminator.ndf=8",
        "model.net.hint_input=true",
        "model.net.hint_residual=true",
    ]
    train(compose_config(run, [*TINY, f"data.data_dir={data}", "data.synthetic_pairs=null", *gan]))
    return run / "checkpoints" / "last.ckpt"
