"""Decoding and the seed's preprocessing: shapes, range, replicated grey, odd modes, bad files."""

import numpy as np
import pytest
import torch
from PIL import Image

from sketch2photo.data.images import (
    BadImageError,
    open_image,
    photo_tensor,
    sketch_tensor,
    sketch_to_input,
    split_aligned,
    to_model_range,
    to_uint8,
)


def test_seed_preprocessing_exactly(tmp_path):
    """Same numbers as the seed's load_image: PIL convert + resize (bicubic default),
    / 127.5 - 1."""
    rng = np.random.default_rng(0)
    path = tmp_path / "x.png"
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    seed_sketch = (
        np.asarray(Image.open(path).convert("L").resize((16, 16))).astype("float32") / 127.5 - 1.0
    )
    seed_photo = (
        np.asarray(Image.open(path).convert("RGB").resize((16, 16))).astype("float32") / 127.5 - 1.0
    )

    image = open_image(path)
    sketch = sketch_to_input(sketch_tensor(image, 16)[None])
    photo = to_model_range(photo_tensor(image, 16)[None])
    assert sketch.shape == (1, 3, 16, 16)
    assert photo.shape == (1, 3, 16, 16)
    assert torch.equal(sketch[0, 0], sketch[0, 1])
    assert torch.equal(sketch[0, 0], sketch[0, 2])
    np.testing.assert_allclose(sketch[0, 0].numpy(), seed_sketch, atol=1e-6)
    np.testing.assert_allclose(photo[0].permute(1, 2, 0).numpy(), seed_photo, atol=1e-6)
    assert sketch.min() >= -1
    assert sketch.max() <= 1


def test_range_endpoints_round_trip():
    extremes = torch.tensor([0, 255, 128], dtype=torch.uint8)
    as_float = to_model_range(extremes)
    assert as_float.tolist()[:2] == [-1.0, 1.0]
    assert torch.equal(to_uint8(as_float), extremes)


def save(tmp_path, name, image):
    path = tmp_path / name
    image.save(path)
    return path


def test_rgba_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    rgba.putpixel((0, 0), (0, 0, 255, 255))  # one opaque blue pixel
    image = open_image(save(tmp_path, "a.png", rgba))
    assert image.mode == "RGB"
    assert image.getpixel((1, 1)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (0, 0, 255)


def test_palette_16bit_cmyk(tmp_path):
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([10, 20, 30] + [0] * 765)
    assert open_image(save(tmp_path, "p.png", palette)).getpixel((0, 0)) == (10, 20, 30)

    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))  # white in 16 bits
    deep_path = save(tmp_path, "d.png", deep)
    assert open_image(deep_path).mode == "L"
    assert open_image(deep_path).getpixel((0, 0)) == 255
    mid = Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))
    assert (
        open_image(save(tmp_path, "m.png", mid)).getpixel((0, 0)) == 128
    )  # scaled, not clipped to 255

    cmyk = Image.new("CMYK", (4, 4), (0, 0, 0, 0))  # no ink: white
    assert open_image(save(tmp_path, "c.jpg", cmyk)).getpixel((0, 0)) == pytest.approx(
        (255, 255, 255), abs=2
    )


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("text.jpg", b"this is not a picture\n", "not an image"),
    ],
)
def test_bad_files_name_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadImageError, match=reason) as error:
        open_image(path)
    assert name in str(error.value)


def test_truncated_jpeg(tmp_path):
    good = save(
        tmp_path,
        "good.jpg",
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)),
    )
    data = good.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError, match="truncated") as error:
        open_image(cut)
    assert "cut.jpg" in str(error.value)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = save(tmp_path, "huge.png", Image.new("L", (64, 64), 255))
    monkeypatch.setattr(
        Image, "MAX_IMAGE_PIXELS", 1000
    )  # 4096 px > 2x the limit: Pillow's bomb error
    with pytest.raises(BadImageError, match="too large") as error:
        open_image(path)
    assert "huge.png" in str(error.value)


def test_split_aligned_both_orders(tmp_path):
    image = Image.new("RGB", (8, 4), "white")
    image.paste((0, 0, 0), (0, 0, 4, 4))  # left half black
    left, right = split_aligned(image, tmp_path / "x.png", "left")
    assert left.getpixel((0, 0)) == (0, 0, 0)
    assert right.getpixel((0, 0)) == (255, 255, 255)
    sketch, photo = split_aligned(image, tmp_path / "x.png", "right")
    assert sketch.getpixel((0, 0)) == (255, 255, 255)
    assert photo.getpixel((0, 0)) == (0, 0, 0)
    with pytest.raises(BadImageError, match="odd"):
        split_aligned(Image.new("RGB", (7, 4)), tmp_path / "x.png", "left")
