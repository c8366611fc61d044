"""s2p-export: ONNX run in onnxruntime and TorchScript in plain torch match the Lightning model,
with the hint map as a second input for a model that takes hints."""

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

from helpers import run_cli, tiny_unet_checkpoint
from sketch2photo.checkpoints.read import load_module
from sketch2photo.commands.export import export, hinted_probe, sketch_like
from sketch2photo.errors import UserError
from sketch2photo.hints.spread import spread_hints
from sketch2photo.regions import background_mask, regions_of


def lightning_output(ckpt, sketch: torch.Tensor, hints: torch.Tensor | None = None) -> np.ndarray:
    with torch.inference_mode():
        return load_module(ckpt)(sketch, hints).numpy()


# 16 px, not 32: the ONNX exporter's optimizer takes time superlinear in the graph's size, and the
# hint spreading unrolls into H + W steps (about 40 s here against 100 s at 32 px on 2 busy cores)
HINT_SIZE = 16


@pytest.fixture(scope="module")
def small_hint_checkpoint(tmp_path_factory, synthetic_dir):
    """conftest's hint_checkpoint at HINT_SIZE."""
    return tiny_unet_checkpoint(
        tmp_path_factory.mktemp("hint_run"),
        synthetic_dir,
        "model.net.hint_input=true",
        f"data.image_size={HINT_SIZE}",
    )


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
    assert card["input"] == {
        "name": given.name,
        "shape": ["batch", 3, 32, 32],
        "dtype": "float32",
        "range": [-1.0, 1.0],
    }
    assert card["takes_hints"] is False and "hints_input" not in card
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


def test_the_probe_has_hints_that_spread():
    """The parity check's probe: hints inside each drawing's regions, which spreading carries
    further."""
    sketches, hints = hinted_probe(3, 32)
    patches = hints[:, 3].sum((1, 2))
    spread = spread_hints(hints, regions_of(sketches, background_mask(sketches), 0.9))[:, 3].sum(
        (1, 2)
    )
    assert (patches > 0).all()
    assert (spread > patches).any()


def check_card_hints(card: dict, size: int = HINT_SIZE) -> None:
    assert card["takes_hints"] is True
    hints = card["hints_input"]
    assert (hints["name"], hints["shape"], hints["dtype"]) == (
        "hints",
        ["batch", 4, size, size],
        "float32",
    )
    assert "mask: 1 where there is a hint" in hints["channels"][3]
    assert "alpha > 0" in hints["preprocessing"][0]


def test_hint_model_onnx_takes_the_hint_map(tmp_path, small_hint_checkpoint):
    onnxruntime = pytest.importorskip("onnxruntime")
    path = export(small_hint_checkpoint, "onnx", tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sketch_input, hints_input = session.get_inputs()
    assert (sketch_input.name, hints_input.name) == ("sketch", "hints")
    assert isinstance(hints_input.shape[0], str) and hints_input.shape[1:] == [
        4,
        HINT_SIZE,
        HINT_SIZE,
    ]
    sketch, hints = hinted_probe(2, HINT_SIZE, seed=5)
    (photo,) = session.run(["photo"], {"sketch": sketch.numpy(), "hints": hints.numpy()})
    expected = lightning_output(small_hint_checkpoint, sketch, hints)
    assert np.abs(photo - expected).max() <= 1e-4
    assert (
        np.abs(expected - lightning_output(small_hint_checkpoint, sketch)).max() > 1e-2
    )  # the hints mattered
    check_card_hints(json.loads((tmp_path / "model.onnx.json").read_text()))


def test_hint_model_torchscript_and_safetensors(tmp_path, small_hint_checkpoint):
    path = export(small_hint_checkpoint, "torchscript", tmp_path / "model.pt")
    scripted = torch.jit.load(str(path))
    sketch, hints = hinted_probe(2, HINT_SIZE, seed=5)
    with torch.inference_mode():
        photo = scripted(sketch, hints).numpy()
        without = scripted(sketch, torch.zeros_like(hints)).numpy()
    assert np.abs(photo - lightning_output(small_hint_checkpoint, sketch, hints)).max() <= 1e-4
    assert (
        np.abs(without - lightning_output(small_hint_checkpoint, sketch)).max() <= 1e-4
    )  # zeros: no hints
    check_card_hints(json.loads((tmp_path / "model.pt.json").read_text()))

    export(small_hint_checkpoint, "safetensors", tmp_path / "model.safetensors")
    card = json.loads((tmp_path / "model.safetensors.json").read_text())
    assert (
        card["takes_hints"] is True and "hints_input" not in card
    )  # weights only: the network takes them as in Python
    assert load_module(tmp_path / "model.safetensors").takes_hints


def test_missing_extra_says_what_to_install(tmp_path, tiny_checkpoint, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a),
    )
    with pytest.raises(
        UserError, match=r"format=onnx needs onnxruntime: pip install -e \.\[export\]"
    ):
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
