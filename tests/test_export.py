"""s2p-export: ONNX run in onnxruntime and TorchScript in plain torch match the Lightning model."""

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

from helpers import run_cli
from sketch2photo.errors import UserError
from sketch2photo.export import export, sketch_like
from sketch2photo.checkpoints import load_module


def lightning_output(ckpt, sketch: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return load_module(ckpt)(sketch).numpy()


@pytest.mark.parametrize("checkpoint", ["tiny_checkpoint", "background_checkpoint"])
def test_onnx_matches_in_onnxruntime(tmp_path, checkpoint, request):
    onnxruntime = pytest.importorskip("onnxruntime")
    tiny_checkpoint = request.getfixturevalue(checkpoint)
    path = export(tiny_checkpoint, "onnx", tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (given,), (returned,) = session.get_inputs(), session.get_outputs()
    assert isinstance(given.shape[0], str)
    assert given.shape[1:] == [3, 32, 32]  # symbolic batch axis
    for batch in (1, 5):
        sketch = sketch_like(batch, 32)
        (photo,) = session.run([returned.name], {given.name: sketch.numpy()})
        assert photo.shape == (batch, 3, 32, 32)
        assert np.abs(photo - lightning_output(tiny_checkpoint, sketch)).max() <= 1e-4

    card = json.loads((tmp_path / "model.onnx.json").read_text())
    assert card["input"] == {"name": given.name, "shape": ["batch", 3, 32, 32], "dtype": "float32", "range": [-1.0, 1.0]}
    assert card["output"]["name"] == returned.name
    assert card["image_size"] == 32
    steps = " ".join(card["preprocessing"])
    assert "'L'" in steps
    assert "bicubic" in steps
    assert "x / 127.5 - 1" in steps
    assert "3 channels" in steps
    assert "(y + 1) * 127.5" in card["postprocessing"][0]
    assert not list(tmp_path.glob("*.data"))  # one self-contained file


@pytest.mark.parametrize("checkpoint", ["tiny_checkpoint", "background_checkpoint"])
def test_torchscript_matches_in_plain_torch(tmp_path, checkpoint, request):
    tiny_checkpoint = request.getfixturevalue(checkpoint)
    path = export(tiny_checkpoint, "torchscript", tmp_path / "model.pt")
    scripted = torch.jit.load(str(path))
    for batch in (1, 5):
        sketch = sketch_like(batch, 32)
        with torch.inference_mode():
            photo = scripted(sketch).numpy()
        assert photo.shape == (batch, 3, 32, 32)
        assert np.abs(photo - lightning_output(tiny_checkpoint, sketch)).max() <= 1e-4
    assert json.loads((tmp_path / "model.pt.json").read_text())["format"] == "torchscript"


def test_missing_extra_says_what_to_install(tmp_path, tiny_checkpoint, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a))
    with pytest.raises(UserError, match=r"format=onnx needs onnxruntime: pip install -e \.\[export\]"):
        export(tiny_checkpoint, "onnx", tmp_path / "model.onnx")
    with pytest.raises(UserError, match="format='tflite' must be one of onnx, torchscript"):
        export(tiny_checkpoint, "tflite")


@pytest.mark.slow
def test_command_writes_next_to_the_checkpoint(tmp_path, tiny_checkpoint):
    ckpt = shutil.copy(tiny_checkpoint, tmp_path / "best.ckpt")
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_cli("s2p-export", f"ckpt_path={ckpt}", "format=torchscript", cwd=workdir)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (tmp_path / "best.pt").is_file()
    assert (tmp_path / "best.pt.json").is_file()
    assert list(workdir.iterdir()) == []  # a tool: no outputs/ or .hydra/
