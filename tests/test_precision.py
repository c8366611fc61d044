"""trainer.precision=auto: bf16-mixed on CPUs with AMX, by GPU generation on CUDA, else 32-true;
the reference and cross-validation experiments pinned to 32-true."""

import logging
from pathlib import Path

import pytest
import torch

from helpers import compose_config
from sketch2photo import precision
from sketch2photo.commands.train import train
from sketch2photo.config import CONFIG_DIR
from sketch2photo.precision import cpu_has_amx, resolve_precision

ZEN4 = "flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"


def test_other_values_pass_through():
    for value in ("32-true", "bf16-mixed", "16-mixed", 32):
        assert resolve_precision(value, "cpu") == value


@pytest.mark.parametrize(
    "flags, torch_says, expected",
    [
        (SAPPHIRE_RAPIDS, True, "bf16-mixed"),
        (SAPPHIRE_RAPIDS, False, "32-true"),  # the kernel has not enabled the tiles for torch
        (ZEN4, True, "32-true"),  # AVX-512 BF16 without AMX
    ],
)
def test_auto_on_a_cpu_takes_bf16_with_amx_only(tmp_path, monkeypatch, flags, torch_says, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\n{flags}")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: torch_says)
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: cpu_has_amx(cpuinfo))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("auto", "auto") == expected
    assert not cpu_has_amx(tmp_path / "absent")  # not Linux


@pytest.mark.parametrize(
    "capability, expected", [((9, 0), "bf16-mixed"), ((7, 5), "16-mixed"), ((6, 1), "32-true")]
)
def test_auto_on_a_gpu_follows_its_generation(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: capability)
    assert resolve_precision("auto", "auto") == expected
    assert resolve_precision("auto", "gpu") == expected
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: False)
    assert resolve_precision("auto", "cpu") == "32-true"  # trainer=cpu on a GPU machine


def test_auto_is_the_default_and_the_published_experiments_are_32_bit(tmp_path):
    assert compose_config(tmp_path, []).trainer.precision == "auto"
    assert compose_config(tmp_path, ["trainer=cpu"]).trainer.precision == "auto"
    experiments = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))
    published = [e for e in experiments if e == "seed" or e.startswith("cv_")]
    assert "cv_unet_hints" in published
    for experiment in published:
        for trainer in ("auto", "cpu", "ddp_cpu"):
            cfg = compose_config(tmp_path, [f"experiment={experiment}", f"trainer={trainer}"])
            assert cfg.trainer.precision == "32-true", (experiment, trainer)


@pytest.mark.parametrize("amx, expected", [(False, "32-true"), (True, "bf16-mixed")])
def test_s2p_train_resolves_auto(train_config, monkeypatch, caplog, amx, expected):
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: amx)
    with caplog.at_level(logging.INFO):
        train(train_config("trainer.max_epochs=1", "trainer.accelerator=cpu"))
    assert f"trainer.precision=auto: {expected} on a CPU" in caplog.text
    assert f"precision {expected}" in caplog.text  # the run's model line
