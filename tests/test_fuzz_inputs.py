"""The image reader and the hint reader on random and mutated files (hypothesis, derandomized: the
same examples every run, a few hundred in well under a minute): every outcome is an image (or a hint
map) or a UserError naming the file, never another exception, and the process's peak memory grows
by less than the limit's worth (an RGBA image at MAX_PIXELS is 256 MB decoded). The image and the
hint readers are the app's too: an upload is such a file."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sketch2photo.data.images import MAX_PIXELS, read_image
from sketch2photo.errors import UserError
from sketch2photo.hints.files import read_hint_file

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # a fixed seed: the same files every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MEMORY_MIB = MAX_PIXELS * 4 / 2**20 + 256  # one image at the limit, decoded, and its bands


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def seeds() -> list[bytes]:
    """Small valid files of the kinds users hand over, to be mutated."""
    rgba = Image.new("RGBA", (24, 16), (0, 0, 0, 0))
    rgba.paste((200, 40, 40, 255), (3, 3, 9, 9))
    palette = rgba.convert("P")
    return [
        encoded(rgba, "PNG"),
        encoded(palette, "PNG", transparency=0),
        encoded(rgba.convert("LA"), "PNG"),
        encoded(rgba.convert("RGB"), "JPEG"),
        encoded(rgba.convert("I;16"), "PNG"),
        encoded(rgba, "WEBP"),
        encoded(rgba.convert("RGB"), "BMP"),
        encoded(rgba, "GIF"),
        encoded(rgba, "TIFF"),
    ]


def with_size(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims another size (its CRC fixed, so the claim is believed)."""
    header = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + header + struct.pack(">I", zlib.crc32(header) & 0xFFFFFFFF) + png[33:]


@st.composite
def mutated_files(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds())))
    kind = draw(st.sampled_from(["flip", "cut", "insert", "size", "random"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif kind == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    elif kind == "size" and data.startswith(b"\x89PNG"):
        sides = st.integers(0, 70_000)
        data = bytearray(with_size(bytes(data), draw(sides), draw(sides)))
    elif kind == "random":
        data = bytearray(draw(st.binary(max_size=512)))
    return bytes(data)


def status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


@pytest.fixture
def peak_memory():
    """Asserts, after the test, that this process's peak resident memory rose less than MEMORY_MIB
    above where it was: the peak (VmHWM) is reset first, so earlier tests' peaks do not hide it."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak")
    Path("/proc/self/clear_refs").write_text("5")
    before = status_mib("VmRSS")
    yield
    grew = status_mib("VmHWM") - before
    assert grew < MEMORY_MIB, f"peak memory grew by {grew:.0f} MiB"


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated_files(), flatten=st.booleans())
def test_any_file_is_an_image_or_a_message(tmp_path, peak_memory, data, flatten):
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    for source in (path, data):
        try:
            image = read_image(source, flatten=flatten, name="upload.png")
        except UserError as error:
            assert str(error).startswith("upload.png: ")
            continue
        assert isinstance(image, Image.Image)
        assert image.width * image.height <= MAX_PIXELS
        assert not flatten or image.mode in ("L", "RGB")


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated_files())
def test_any_hint_image_is_a_hint_map_or_a_message(tmp_path, peak_memory, data):
    path = tmp_path / "hints.png"
    path.write_bytes(data)
    check_hints(path, (24, 16))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.sampled_from([10**400, -(2**1024), 10**309])  # too large for a float
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["#ff0000", "red", "#12345", "hsl(120, 50%, 50%)"]),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(["x", "y", "color", "radius", "other"]), children)
    ),
    max_leaves=20,
)
# Mostly the shape of a hint list, so that odd values reach the code that reads each field.
coordinates = st.integers(0, 50) | json_values
dots = st.fixed_dictionaries(
    {
        "x": coordinates,
        "y": coordinates,
        "color": st.sampled_from(["#ff0000", "#0a0"]) | json_values,
    },
    optional={"radius": st.floats(0, 10) | json_values},
)
hint_lists = st.lists(dots, max_size=4) | json_values


@pytest.mark.timeout(300)
@FUZZ
@given(value=hint_lists, raw=st.none() | st.binary(max_size=64))
def test_any_hint_list_is_a_hint_map_or_a_message(tmp_path, peak_memory, value, raw):
    path = tmp_path / "hints.json"
    if raw is None:
        path.write_text(json.dumps(value))  # 1e400 as an int; NaN and Infinity as JSON allows
    else:
        path.write_bytes(raw)
    check_hints(path, (40, 30))


def check_hints(path: Path, sketch_size: tuple[int, int]) -> None:
    try:
        hints = read_hint_file(path, sketch_size, 32)
    except UserError as error:
        assert str(error).startswith(f"{path}")
        return
    assert hints.shape == (4, 32, 32) and hints.dtype == torch.float32
    assert torch.isfinite(hints).all()
    assert set(hints[3].unique().tolist()) <= {0.0, 1.0}
