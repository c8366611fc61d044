"""A corpus of messy dataset inputs: each case is either reported by file name or accepted with
correct tensors. Validation happens while caching, before the first training step."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.errors import UserError

SIZE = 16


def save(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@pytest.fixture
def corpus(tmp_path):
    a, b = tmp_path / "testA", tmp_path / "testB"
    grey = Image.new("RGB", (32, 32), (90, 90, 90))
    photo = Image.new("RGB", (32, 32), (200, 30, 30))
    save(a / "0_A.jpg", grey), save(b / "0_B.jpg", photo)  # a good pair

    jpeg = save(
        tmp_path / "tmp.jpg",
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)),
    )
    (
        (a / "1_A.jpg").write_bytes(jpeg.read_bytes()[:400]),
        save(b / "1_B.jpg", photo),
    )  # truncated JPEG
    save(a / "2_A.jpg", grey), (b / "2_B.jpg").write_bytes(b"")  # zero bytes
    (a / "3_A.jpg").write_text("I am a text file"), save(b / "3_B.jpg", photo)  # text named .jpg

    transparent = Image.new("RGBA", (32, 32), (0, 0, 0, 0))  # accepted: composited on white
    save(a / "4_A.png", transparent), save(b / "4_B.png", photo)
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([60, 60, 60] + [0] * 765)
    deep = Image.fromarray(np.full((32, 32), 65535, dtype=np.uint16))
    (
        save(a / "5_A.png", palette),
        save(b / "5_B.png", deep),
    )  # accepted: palette sketch, 16-bit photo
    (
        save(a / "6_A.jpg", grey),
        save(b / "6_B.jpg", Image.new("CMYK", (32, 32), (0, 255, 255, 0))),
    )  # CMYK red
    (
        save(a / "7_A.jpg", grey.resize((64, 64))),
        save(b / "7_B.jpg", photo),
    )  # different size, same aspect: fine
    save(a / "8_A.jpg", grey), save(b / "8_B.jpg", photo.resize((32, 64)))  # different aspect ratio

    save(a / "9_A.jpg", grey)  # sketch without photo
    save(b / "10_B.jpg", photo)  # photo without sketch
    (
        save(a / "11_A.jpg", grey),
        save(a / "11_A.png", grey),
        save(b / "11_B.jpg", photo),
    )  # duplicate index
    save(a / "cat.jpg", grey), save(b / "dog.jpg", photo)  # names that match nothing
    (
        (a / ".DS_Store").write_bytes(b"\x00\x01"),
        (b / "Thumbs.db").write_bytes(b"\x00"),
    )  # stray files
    (a / "notes").mkdir()
    (
        save(a / "12_A.png", Image.new("L", (128, 128), 255)),
        save(b / "12_B.png", photo),
    )  # "huge" (see test)
    return tmp_path


BAD = {
    "1_A.jpg": "truncated",
    "2_B.jpg": "empty file",
    "3_A.jpg": "not an image",
    "8_B.jpg": "same aspect ratio",
    "9_A.jpg": "sketch without a photo",
    "10_B.jpg": "photo without a sketch",
    "11_A.png": "several files for pair '11'",
    "cat.jpg": "sketch without a photo",
    "dog.jpg": "photo without a sketch",
    "12_A.png": "too large",
}
GOOD = ["0", "4", "5", "6", "7"]


def make(corpus, **settings):
    datamodule = PairedSketchDataModule(
        data_dir=str(corpus), image_size=SIZE, split="none", **settings
    )
    datamodule.setup("fit")
    return datamodule


@pytest.fixture
def small_bomb_limit(monkeypatch):
    """Pillow refuses images over 2 * MAX_IMAGE_PIXELS; lower the limit so 12_A.png (64x64)
    (128x128) trips it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)


def test_every_problem_is_reported_by_name(corpus, small_bomb_limit):
    with pytest.raises(UserError) as error:
        make(corpus)
    message = str(error.value)
    assert f"{len(BAD)} problem(s)" in message
    lines = message.splitlines()
    for name, reason in BAD.items():
        assert any(name in line and reason in line for line in lines), (name, reason)
    assert ".DS_Store" not in message
    assert "Thumbs.db" not in message
    assert "notes" not in message
    assert "data.on_bad_file=skip" in message


def test_skip_keeps_the_valid_pairs_with_correct_tensors(corpus, small_bomb_limit, caplog):
    with caplog.at_level(logging.INFO):
        datamodule = make(corpus, on_bad_file="skip")
    train = datamodule.sets["train"]
    assert [p.name for p in train.pairs] == GOOD
    by_name = {p.name: i for i, p in enumerate(train.pairs)}
    assert torch.all(train.sketches[by_name["4"]] == 255)  # transparent -> white
    assert torch.all(train.sketches[by_name["5"]] == 60)  # palette colour, as grey
    assert torch.all(train.photos[by_name["5"]] == 255)  # 16-bit white stays white
    red = train.photos[by_name["6"]].float().mean(dim=(1, 2))
    assert red[0] > 200
    assert red[1] < 60
    assert red[2] < 60  # CMYK (0, 255, 255, 0) is red
    assert torch.equal(
        train.sketches[by_name["7"]], train.sketches[by_name["0"]]
    )  # resized to the same 16 px
    summary = [r.message for r in caplog.records if r.message.startswith("data:")]
    assert summary
    assert "5 pairs used" in summary[0]
    assert f"{len(BAD)} problem(s) skipped" in summary[0]
    assert sum("skipped:" in r.message for r in caplog.records) == len(BAD)


def test_empty_folders_are_named_with_what_they_should_hold(tmp_path):
    (tmp_path / "testA").mkdir()
    (tmp_path / "testB").mkdir()
    with pytest.raises(UserError) as error:
        make(tmp_path)
    message = str(error.value)
    assert f"no image pairs found in {tmp_path}" in message
    assert f"{tmp_path / 'testA'} and {tmp_path / 'testB'} are empty" in message
    assert "sketches as testA/<N>_A.jpg" in message and "photos as testB/<N>_B.jpg" in message
    assert "on_bad_file" not in message and "Fix or remove" not in message  # nothing to skip

    (tmp_path / "testA" / "notes.txt").write_text("not an image")
    with pytest.raises(UserError, match=r"testA holds no images \(1 other file ignored\)"):
        make(tmp_path)

    aligned = tmp_path / "aligned"
    aligned.mkdir()
    with pytest.raises(UserError, match=rf"{aligned} is empty: put .* side by side"):
        make(aligned)
