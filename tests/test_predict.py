"""s2p-predict: any size and mode in, names kept, bad files skipped and reported, model from the
checkpoint alone; colour hints from files, and colouring.colour giving the same pixels."""

import json
import logging
import re

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import compose_config, run_cli
from sketch2photo.checkpoints.read import load_module
from sketch2photo.colouring import colour
from sketch2photo.commands.predict import main, predict
from sketch2photo.data.corpora.synthetic import generate_pairs
from sketch2photo.data.images import (
    RESAMPLE,
    open_image,
    sketch_tensor,
    sketch_to_input,
    to_model_range,
    to_uint8,
)
from sketch2photo.errors import SOME_FILES_FAILED, UserError
from sketch2photo.hints.files import hint_image, read_hint_file
from sketch2photo.hints.simulate import HintSampler

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
    """Sketches in every mode the command accepts, at several sizes, plus a corrupt file and a stray
    text file."""
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
    Image.fromarray(np.asarray(grey[4].resize(SIZES["deep16.png"])).astype(np.uint16) * 257).save(
        folder / "deep16.png"
    )
    grey[5].resize(SIZES["small.png"]).save(folder / "small.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "notes.txt").write_text("not an image, ignored")
    return folder


def predict_config(tmp_path, *overrides):
    return compose_config(tmp_path, list(overrides), config_name="predict")


def test_mixed_folder_in_batches(tmp_path, sketch_folder, tiny_checkpoint):
    out = tmp_path / "out"
    writer = predict(
        predict_config(
            tmp_path,
            f"ckpt_path={tiny_checkpoint}",
            f"input={sketch_folder}",
            f"output={out}",
            "batch_size=4",
            "keep_size=false",
        )
    )
    assert writer.written == 6
    assert len(writer.failed) == 1
    assert "corrupt.png" in writer.failed[0]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        name.rsplit(".", 1)[0] + ".png" for name in SIZES
    )

    # each output is the model applied to its own file (no mix-up across batches), at the model's
    # size
    module = load_module(tiny_checkpoint)
    for name in SIZES:
        result = Image.open(out / (name.rsplit(".", 1)[0] + ".png"))
        assert result.mode == "RGB"
        assert result.size == (32, 32)
        with torch.inference_mode():
            expected = to_uint8(
                module(sketch_to_input(sketch_tensor(open_image(sketch_folder / name), 32)[None]))
            )[0]
        got = torch.from_numpy(np.asarray(result).copy()).permute(2, 0, 1)
        assert (got.int() - expected.int()).abs().max() <= 1, name

    # the transparent background became white paper, not black
    assert np.asarray(open_image(sketch_folder / "rgba.png").convert("L")).mean() > 200


def test_keep_size_and_keep_extension(tmp_path, sketch_folder, tiny_checkpoint):
    """By default each result has its sketch's own size, as in s2p-app; keep_size=false gives the
    model's."""
    resized, kept = tmp_path / "resized", tmp_path / "kept"
    predict(
        predict_config(
            tmp_path,
            f"ckpt_path={tiny_checkpoint}",
            f"input={sketch_folder}",
            f"output={resized}",
            "keep_size=false",
        )
    )
    writer = predict(
        predict_config(
            tmp_path,
            f"ckpt_path={tiny_checkpoint}",
            f"input={sketch_folder}",
            f"output={kept}",
            "keep_extension=true",
        )
    )
    assert writer.written == 6
    for name, size in SIZES.items():
        assert Image.open(kept / name).size == size, name
        assert Image.open(resized / f"{name.rsplit('.', 1)[0]}.png").size == (32, 32), name
    # the sketch's size is the model-size result resized back with the same bicubic filter
    back = Image.open(resized / "deep16.png").resize(SIZES["deep16.png"], RESAMPLE)
    assert np.array_equal(np.asarray(Image.open(kept / "deep16.png")), np.asarray(back))
    assert Image.open(kept / "wide.jpg").format == "JPEG"


def test_a_single_file_and_clear_errors(tmp_path, sketch_folder, tiny_checkpoint):
    out = tmp_path / "one"
    predict(
        predict_config(
            tmp_path,
            f"ckpt_path={tiny_checkpoint}",
            f"input={sketch_folder / 'wide.jpg'}",
            f"output={out}",
        )
    )
    assert [p.name for p in out.iterdir()] == ["wide.png"]

    with pytest.raises(UserError, match="would overwrite the input"):
        predict(
            predict_config(
                tmp_path,
                f"ckpt_path={tiny_checkpoint}",
                f"input={sketch_folder}",
                f"output={sketch_folder}",
            )
        )
    with pytest.raises(UserError, match=r"input=.*nowhere does not exist"):
        predict(
            predict_config(
                tmp_path,
                f"ckpt_path={tiny_checkpoint}",
                f"input={tmp_path / 'nowhere'}",
                f"output={out}",
            )
        )
    with pytest.raises(UserError, match=r"input=\.\.\., output=\.\.\. are required"):
        predict(predict_config(tmp_path, f"ckpt_path={tiny_checkpoint}"))


@pytest.mark.slow
def test_a_run_dir_as_ckpt_path_uses_its_best_checkpoint(tmp_path, sketch_folder, tiny_checkpoint):
    run_dir = tiny_checkpoint.parents[1]
    result = run_cli(
        "s2p-predict",
        f"ckpt_path={run_dir}",
        f"input={sketch_folder / 'grey.png'}",
        f"output={tmp_path / 'out'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"ckpt_path={run_dir}: using {run_dir}/checkpoints/best.ckpt" in result.stdout
    assert (tmp_path / "out" / "grey.png").is_file()


@pytest.mark.slow
def test_command_with_only_a_checkpoint_reports_failures(tmp_path, sketch_folder, tiny_checkpoint):
    """No config but the checkpoint, in an empty dir: the U-Net and its 32 px come from the
    checkpoint."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_cli(
        "s2p-predict",
        f"ckpt_path={tiny_checkpoint}",
        f"input={sketch_folder}",
        "output=out",
        cwd=workdir,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "wrote 6 of 7 image(s)" in output
    assert "corrupt.png" in output
    assert "Traceback" not in output
    assert sorted(p.name for p in workdir.iterdir()) == ["out"]  # a tool: no outputs/ or .hydra/
    assert {p.name: Image.open(p).size for p in (workdir / "out").iterdir()} == {
        f"{name.rsplit('.', 1)[0]}.png": size for name, size in SIZES.items()
    }  # each at its sketch's own size, by default

    missing = run_cli("s2p-predict", f"input={sketch_folder}", cwd=workdir)
    assert missing.returncode == 1
    assert "ckpt_path=..., output=... are required" in missing.stdout + missing.stderr


# -- colour hints ----------------------------------------------------------------------------------
HINT_SKETCH_SIZE = 64  # twice the model's 32 px: hint files are read in the sketch's own pixels


@pytest.fixture
def hint_folders(tmp_path):
    """sketches/{ant,bee,cat}.png at 64 px; hints/ant.png (a hint layer with alpha) and
    hints/cat.json, both three patches inside the figure in its photo's colours; bee has no
    hints."""
    sketches, photos = generate_pairs(3, size=HINT_SKETCH_SIZE, seed=7, colours="random")
    hint_maps = HintSampler(min_size=3, max_size=5).draw(
        to_model_range(photos), sketch_to_input(sketches), torch.Generator().manual_seed(0), count=3
    )
    folder, hints = tmp_path / "sketches", tmp_path / "hints"
    folder.mkdir(), hints.mkdir()
    for name, sketch in zip(("ant", "bee", "cat"), sketches, strict=True):
        Image.fromarray(sketch[0].numpy(), "L").save(folder / f"{name}.png")
    hint_image(hint_maps[0]).save(hints / "ant.png")
    rgb = to_uint8(hint_maps[2, :3])
    points = [
        {
            "x": int(x),
            "y": int(y),
            "color": "#{:02x}{:02x}{:02x}".format(*rgb[:, y, x].tolist()),
            "radius": 2,
        }
        for y, x in hint_maps[2, 3].nonzero()[::9].tolist()
    ]
    (hints / "cat.json").write_text(json.dumps(points))
    return folder, hints


def as_array(path):
    return np.asarray(Image.open(path)).astype(int)


def test_hints_from_a_folder_colour_and_preview(tmp_path, hint_folders, hint_checkpoint, caplog):
    sketches, hints = hint_folders
    plain, hinted = tmp_path / "plain", tmp_path / "hinted"
    predict(
        predict_config(
            tmp_path, f"ckpt_path={hint_checkpoint}", f"input={sketches}", f"output={plain}"
        )
    )
    with caplog.at_level(logging.INFO, logger="sketch2photo.predict"):
        writer = predict(
            predict_config(
                tmp_path,
                f"ckpt_path={hint_checkpoint}",
                f"input={sketches}",
                f"hints={hints}",
                f"output={hinted}",
                "batch_size=2",
            )
        )  # ant+bee share a batch
    assert (writer.written, writer.failed) == (3, [])
    assert "1 of 3 sketch(es) have no hint file" in caplog.text
    assert sorted(p.name for p in writer.previews) == ["ant.png", "cat.png"]
    assert sorted(p.name for p in (hinted / "previews").iterdir()) == ["ant.png", "cat.png"]

    for name in (
        "ant",
        "cat",
    ):  # hints change the result; bee, without any, is coloured as without hints=
        assert (
            np.abs(as_array(hinted / f"{name}.png") - as_array(plain / f"{name}.png")).max() > 10
        ), name
    assert np.array_equal(as_array(hinted / "bee.png"), as_array(plain / "bee.png"))

    # the preview, at the model's size: sketch with hints painted on | the result, side by side
    # (make_grid, 2 px padding); the result file is that result resized to its sketch's 64 px
    preview = as_array(hinted / "previews" / "ant.png")
    assert preview.shape == (32 + 4, 2 * 32 + 6, 3)
    result = Image.fromarray(preview[2:34, 36:68].astype(np.uint8))
    assert np.array_equal(
        np.asarray(result.resize((HINT_SKETCH_SIZE,) * 2, RESAMPLE)), as_array(hinted / "ant.png")
    )
    painted = read_hint_file(hints / "ant.png", (HINT_SKETCH_SIZE,) * 2, 32)
    ys, xs = painted[3].nonzero(as_tuple=True)
    assert np.array_equal(
        preview[2:34, 2:34][ys, xs], to_uint8(painted[:3]).permute(1, 2, 0)[ys, xs].numpy()
    )

    # colour(), what an app calls, gives s2p-predict's pixels: from the files, a PIL layer and a
    # list
    module = load_module(hint_checkpoint)
    ant, cat = open_image(sketches / "ant.png"), open_image(sketches / "cat.png")
    for picture, name in (
        (colour(module, ant, hints / "ant.png"), "ant"),
        (colour(module, ant, Image.open(hints / "ant.png")), "ant"),
        (colour(module, cat, json.loads((hints / "cat.json").read_text())), "cat"),
        (colour(module, open_image(sketches / "bee.png")), "bee"),
    ):
        assert (
            np.abs(np.asarray(picture).astype(int) - as_array(hinted / f"{name}.png")).max() <= 1
        ), name
    assert as_array(hinted / "ant.png").shape[:2] == (HINT_SKETCH_SIZE,) * 2  # the sketch's size
    assert colour(module, ant, hints / "ant.png", keep_size=False).size == (32, 32)

    # a drawing app's RGBA sketch (lines on transparent paper) is flattened on white, as open_image
    # does
    lines = np.asarray(ant.convert("L"))
    drawn = Image.fromarray(
        np.dstack([lines, lines, lines, np.where(lines < 250, 255, 0)]).astype(np.uint8), "RGBA"
    )
    drawn.save(tmp_path / "drawn.png")
    assert np.array_equal(
        np.asarray(colour(module, drawn)),
        np.asarray(colour(module, open_image(tmp_path / "drawn.png"))),
    )


def test_a_single_hint_file(tmp_path, hint_folders, hint_checkpoint):
    sketches, hints = hint_folders
    out = tmp_path / "one"
    writer = predict(
        predict_config(
            tmp_path,
            f"ckpt_path={hint_checkpoint}",
            f"input={sketches / 'cat.png'}",
            f"hints={hints / 'cat.json'}",
            f"output={out}",
        )
    )
    assert (writer.written, [p.name for p in writer.previews]) == (1, ["cat.png"])
    with pytest.raises(
        UserError, match=r"hints=.*cat\.json is one hint file but input=.* holds 3 sketches"
    ):
        predict(
            predict_config(
                tmp_path,
                f"ckpt_path={hint_checkpoint}",
                f"input={sketches}",
                f"hints={hints / 'cat.json'}",
                f"output={out}",
            )
        )
    with pytest.raises(UserError, match="is the input folder"):
        predict(
            predict_config(
                tmp_path,
                f"ckpt_path={hint_checkpoint}",
                f"input={sketches}",
                f"hints={sketches}",
                f"output={out}",
            )
        )


def test_hint_problems_are_named_and_skipped(tmp_path, hint_folders, hint_checkpoint, caplog):
    """A hint layer of another aspect ratio and a hint file without its sketch: both named, both
    skipped, exit status 2; the other sketches are still written."""
    sketches, hints = hint_folders
    Image.new("RGBA", (HINT_SKETCH_SIZE, HINT_SKETCH_SIZE // 2), (255, 0, 0, 255)).save(
        hints / "ant.png"
    )
    (hints / "zebra.json").write_text('[{"x": 3, "y": 3, "color": "#ff0000"}]')
    out = tmp_path / "out"
    cfg = predict_config(
        tmp_path,
        f"ckpt_path={hint_checkpoint}",
        f"input={sketches}",
        f"hints={hints}",
        f"output={out}",
    )
    with (
        caplog.at_level(logging.INFO, logger="sketch2photo.predict"),
        pytest.raises(SystemExit) as exit,
    ):
        main(cfg)
    assert exit.value.code == SOME_FILES_FAILED
    assert sorted(p.name for p in out.iterdir()) == ["bee.png", "cat.png", "previews"]
    errors = "\n".join(r.message for r in caplog.records if r.levelno == logging.ERROR)
    assert "2 file(s) could not be used and were skipped" in errors
    assert f"{hints / 'zebra.json'}: no sketch named zebra.* in input={sketches}" in errors
    assert f"{hints / 'ant.png'} is 64x32 but its sketch {sketches / 'ant.png'} is 64x64" in errors
    assert "aspect ratio" in errors


def test_hint_files_transparency_and_scale(tmp_path):
    """PNG: alpha says where the hints are, so an RGB PNG is refused; palette with transparency and
    LA are read. A 1 px dot, or a JSON hint of radius 0, survives the resize to the model's size."""
    sketch_size = (256, 256)
    Image.new("RGB", sketch_size, (255, 0, 0)).save(tmp_path / "rgb.png")
    with pytest.raises(
        UserError, match=r"rgb\.png: a hint image needs transparency .* or give the hints as JSON"
    ):
        read_hint_file(tmp_path / "rgb.png", sketch_size, 32)

    palette = Image.new("P", (128, 128), 0)
    palette.putpalette([0, 0, 0, 255, 128, 0] + [0] * 762)
    palette.paste(1, (0, 0, 64, 64))  # the top-left quarter orange; index 0 transparent
    palette.save(tmp_path / "palette.png", transparency=0)
    hints = read_hint_file(tmp_path / "palette.png", sketch_size, 32)
    assert hints[3].sum() == 16 * 16 and hints[3, :16, :16].all()
    assert torch.allclose(hints[:3, 0, 0], torch.tensor([255, 128, 0]) / 127.5 - 1)

    la = np.zeros((256, 256, 2), dtype=np.uint8)
    la[100, 200] = (255, 255)  # one white pixel: 1/64 of a cell of the 32 px grid
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    hints = read_hint_file(tmp_path / "la.png", sketch_size, 32)
    assert hints[3].nonzero().tolist() == [[100 // 8, 200 // 8]]
    assert hints[:3, 100 // 8, 200 // 8].tolist() == [1.0, 1.0, 1.0]

    (tmp_path / "dot.json").write_text('[{"x": 200, "y": 100, "color": "#00ff00", "radius": 0}]')
    assert read_hint_file(tmp_path / "dot.json", sketch_size, 32)[3].nonzero().tolist() == [
        [100 // 8, 200 // 8]
    ]
    (tmp_path / "off.json").write_text('[{"x": 300, "y": 10, "color": "#00ff00"}]')
    with pytest.raises(
        UserError,
        match=r"off\.json: not a hint list \(hint 0 at \(300, 10\) is outside the 256x256 sketch\)",
    ):
        read_hint_file(tmp_path / "off.json", sketch_size, 32)


def test_a_hint_layer_that_is_nearly_all_hints_is_refused(tmp_path, hint_folders, hint_checkpoint):
    """An opaque PNG (a picture, or hints painted on white) would make every pixel a hint: refused
    with the file's name and what to do, as is one with under 1% left clear. Flat colours in every
    region with the lines left clear (the most a hint layer covers) are read."""
    sketches, hints = hint_folders
    sketch = np.asarray(Image.open(sketches / "ant.png"))
    opaque = Image.new("RGBA", sketch.shape[::-1], (255, 255, 255, 255))
    opaque.save(hints / "ant.png")
    refusal = (
        r"{}: {} of its pixels are hints \(alpha > 0\), so it is a picture, not a hint layer\. "
        r"Paint the hints on a transparent layer \(alpha 0 = no hint\)"
    )
    with pytest.raises(UserError, match=refusal.format(re.escape(str(hints / "ant.png")), "all")):
        read_hint_file(hints / "ant.png", sketch.shape[::-1], 32)

    almost = np.full((*sketch.shape, 4), 255, dtype=np.uint8)
    almost[0, :20, 3] = 0  # 20 of 4096 pixels clear: 99.5% hints
    Image.fromarray(almost, "RGBA").save(hints / "ant.png")
    with pytest.raises(UserError, match=refusal.format(".*ant.png", r"99\.5%")):
        read_hint_file(hints / "ant.png", sketch.shape[::-1], 32)

    # the app's layer goes through the same check
    module = load_module(hint_checkpoint)
    with pytest.raises(UserError, match=refusal.format("the hint image", "all")):
        colour(module, Image.open(sketches / "ant.png"), opaque)

    flats = np.zeros((*sketch.shape, 4), dtype=np.uint8)
    flats[sketch >= 128] = (240, 120, 20, 255)  # everything but the lines, background included
    assert 0.8 < (sketch >= 128).mean() <= 0.99
    Image.fromarray(flats, "RGBA").save(hints / "ant.png")
    assert read_hint_file(hints / "ant.png", sketch.shape[::-1], 32)[3].mean() > 0.8

    # s2p-predict names the file, skips it and colours the others
    Image.new("RGBA", sketch.shape[::-1], (255, 0, 0, 255)).save(hints / "ant.png")
    writer = predict(
        predict_config(
            tmp_path,
            f"ckpt_path={hint_checkpoint}",
            f"input={sketches}",
            f"hints={hints}",
            f"output={tmp_path / 'out'}",
        )
    )
    assert writer.written == 2
    assert len(writer.failed) == 1 and str(hints / "ant.png") in writer.failed[0]
    assert "all of its pixels are hints" in writer.failed[0]


def test_hints_need_a_model_that_takes_them(tmp_path, hint_folders, tiny_checkpoint):
    sketches, hints = hint_folders
    with pytest.raises(
        UserError,
        match=r"hints=.*: this checkpoint's model takes no hints \(it was trained without "
        r"model\.net\.hint_input=true\)",
    ):
        predict(
            predict_config(
                tmp_path,
                f"ckpt_path={tiny_checkpoint}",
                f"input={sketches}",
                f"hints={hints}",
                f"output={tmp_path / 'out'}",
            )
        )
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="model takes no hints"):
        colour(load_module(tiny_checkpoint), open_image(sketches / "ant.png"), hints / "ant.png")
