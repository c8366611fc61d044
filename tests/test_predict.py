"""s2p-predict: any size and mode in, names kept, bad files skipped and reported, model from the checkpoint alone."""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import compose_config, run_cli
from sketch2photo.data.images import RESAMPLE, open_image, sketch_tensor, sketch_to_input, to_uint8
from sketch2photo.data.synthetic import generate_pairs
from sketch2photo.checkpoints import load_module
from sketch2photo.predict import predict

SIZES = {  # the file each input becomes, and its own size
    "grey.png": (32, 32),
    "wide.jpg": (70, 40),
    "rgba.png": (45, 45),
    "palette.png": (32, 32),
    "deep16.png": (50, 50),
    "small.png": (20, 27),
}


@pytest.fixture
def sketch_folder(tmp_path):
    """Sketches in every mode the command accepts, at several sizes, plus a corrupt file and a stray text file."""
    sketches, _ = generate_pairs(6, size=32, seed=3)
    grey = [Image.fromarray(s[0].numpy(), "L") for s in sketches]
    folder = tmp_path / "sketches"
    folder.mkdir()
    grey[0].save(folder / "grey.png")
    grey[1].resize(SIZES["wide.jpg"]).convert("RGB").save(folder / "wide.jpg")
    lines = np.asarray(grey[2].resize(SIZES["rgba.png"]))
    rgba = np.zeros((*lines.shape, 4), dtype=np.uint8)  # black everywhere, opaque only on the lines
    rgba[..., 3] = np.where(lines < 128, 255, 0)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    grey[3].convert("P").save(folder / "palette.png")
    Image.fromarray(np.asarray(grey[4].resize(SIZES["deep16.png"])).astype(np.uint16) * 257).save(folder / "deep16.png")
    grey[5].resize(SIZES["small.png"]).save(folder / "small.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "notes.txt").write_text("not an image, ignored")
    return folder


def predict_config(tmp_path, *overrides):
    return compose_config(tmp_path, list(overrides), config_name="predict")


def test_mixed_folder_in_batches(tmp_path, sketch_folder, tiny_checkpoint):
    out = tmp_path / "out"
    writer = predict(predict_config(tmp_path, f"ckpt_path={tiny_checkpoint}", f"input={sketch_folder}", f"output={out}", "batch_size=4"))
    assert writer.written == 6
    assert len(writer.failed) == 1
    assert "corrupt.png" in writer.failed[0]
    assert sorted(p.name for p in out.iterdir()) == sorted(name.rsplit(".", 1)[0] + ".png" for name in SIZES)

    # each output is the model applied to its own file (no mix-up across batches), at the model's size
    module = load_module(tiny_checkpoint)
    for name in SIZES:
        result = Image.open(out / (name.rsplit(".", 1)[0] + ".png"))
        assert result.mode == "RGB"
        assert result.size == (32, 32)
        with torch.inference_mode():
            expected = to_uint8(module(sketch_to_input(sketch_tensor(open_image(sketch_folder / name), 32)[None])))[0]
        got = torch.from_numpy(np.asarray(result).copy()).permute(2, 0, 1)
        assert (got.int() - expected.int()).abs().max() <= 1, name

    # the transparent background became white paper, not black
    assert np.asarray(open_image(sketch_folder / "rgba.png").convert("L")).mean() > 200


def test_keep_size_and_keep_extension(tmp_path, sketch_folder, tiny_checkpoint):
    resized, kept = tmp_path / "resized", tmp_path / "kept"
    predict(predict_config(tmp_path, f"ckpt_path={tiny_checkpoint}", f"input={sketch_folder}", f"output={resized}"))
    writer = predict(predict_config(
        tmp_path, f"ckpt_path={tiny_checkpoint}", f"input={sketch_folder}", f"output={kept}", "keep_size=true", "keep_extension=true",
    ))
    assert writer.written == 6
    for name, size in SIZES.items():
        assert Image.open(kept / name).size == size, name
    # keep_size is the model-size result resized back with the same bicubic filter
    back = Image.open(resized / "deep16.png").resize(SIZES["deep16.png"], RESAMPLE)
    assert np.array_equal(np.asarray(Image.open(kept / "deep16.png")), np.asarray(back))
    assert Image.open(kept / "wide.jpg").format == "JPEG"


def test_a_single_file_and_clear_errors(tmp_path, sketch_folder, tiny_checkpoint):
    out = tmp_path / "one"
    predict(predict_config(tmp_path, f"ckpt_path={tiny_checkpoint}", f"input={sketch_folder / 'wide.jpg'}", f"output={out}"))
    assert [p.name for p in out.iterdir()] == ["wide.png"]

    from sketch2photo.errors import UserError

    with pytest.raises(UserError, match="would overwrite the input"):
        predict(predict_config(tmp_path, f"ckpt_path={tiny_checkpoint}", f"input={sketch_folder}", f"output={sketch_folder}"))
    with pytest.raises(UserError, match=r"input=.*nowhere does not exist"):
        predict(predict_config(tmp_path, f"ckpt_path={tiny_checkpoint}", f"input={tmp_path / 'nowhere'}", f"output={out}"))
    with pytest.raises(UserError, match=r"input=\.\.\., output=\.\.\. are required"):
        predict(predict_config(tmp_path, f"ckpt_path={tiny_checkpoint}"))


@pytest.mark.slow
def test_command_with_only_a_checkpoint_reports_failures(tmp_path, sketch_folder, tiny_checkpoint):
    """No config but the checkpoint, in an empty dir: the U-Net and its 32 px come from the checkpoint."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_cli("python", "-m", "sketch2photo.predict", f"ckpt_path={tiny_checkpoint}", f"input={sketch_folder}", "output=out", cwd=workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "wrote 6 of 7 image(s)" in output
    assert "corrupt.png" in output
    assert "Traceback" not in output
    assert sorted(p.name for p in workdir.iterdir()) == ["out"]  # a tool: no outputs/ or .hydra/
    assert {Image.open(p).size for p in (workdir / "out").iterdir()} == {(32, 32)}

    missing = run_cli("s2p-predict", f"input={sketch_folder}", cwd=workdir)
    assert missing.returncode == 1
    assert "ckpt_path=..., output=... are required" in missing.stdout + missing.stderr
