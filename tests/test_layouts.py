"""Finding pairs on disk: matched by name, never by listing order; clear errors that list every
problem."""

from pathlib import Path

import pytest
from PIL import Image

from sketch2photo.data.layouts import find_pairs, natural_key
from sketch2photo.errors import UserError


def touch_image(path: Path, colour=(255, 255, 255), size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def test_pairs_match_by_index_not_listing_order(tmp_path):
    # created in shuffled order, with mixed extensions and case: 10 must pair with 10, not with 2
    for n in (10, 2, 1):
        touch_image(tmp_path / "testA" / f"{n}_A.jpg")
    for n, ext in ((1, "PNG"), (10, "jpeg"), (2, "JPG")):
        touch_image(tmp_path / "testB" / f"{n}_B.{ext}")
    listing = find_pairs(tmp_path)
    pairs = listing.splits["all"]
    assert [p.name for p in pairs] == ["1", "2", "10"]
    for pair in pairs:
        assert pair.sketch.name.startswith(f"{pair.name}_A.")
        assert pair.photo.name.startswith(f"{pair.name}_B.")
    assert listing.problems == []


def test_odd_names_pair_by_stem(tmp_path):
    touch_image(tmp_path / "testA" / "pikachu_A.png")
    touch_image(tmp_path / "testB" / "pikachu_B.png")
    touch_image(tmp_path / "testA" / "cat.png")  # no suffix: pairs with the same stem
    touch_image(tmp_path / "testB" / "cat.png")
    assert [p.name for p in find_pairs(tmp_path).splits["all"]] == ["cat", "pikachu"]


def test_train_and_test_folders(tmp_path):
    for split in ("train", "test"):
        for n in range(3):
            touch_image(tmp_path / f"{split}A" / f"{n}_A.jpg")
            touch_image(tmp_path / f"{split}B" / f"{n}_B.jpg")
    listing = find_pairs(tmp_path)
    assert set(listing.splits) == {"train", "test"}
    assert listing.splits["train"][0].sketch.parent.name == "trainA"
    assert listing.splits["test"][0].sketch.parent.name == "testA"


def test_missing_folder_names_path_and_layout(tmp_path):
    with pytest.raises(UserError) as error:
        find_pairs(tmp_path / "nowhere")
    message = str(error.value)
    assert "nowhere" in message
    assert "testA/<N>_A.jpg" in message
    assert "data.data_dir" in message


def test_half_of_a_folder_pair_missing(tmp_path):
    touch_image(tmp_path / "testA" / "0_A.jpg")
    with pytest.raises(UserError, match="testB is missing"):
        find_pairs(tmp_path)


def test_unpaired_files_are_all_listed(tmp_path):
    for n in (0, 1, 2):
        touch_image(tmp_path / "testA" / f"{n}_A.jpg")
    for n in (0, 3):
        touch_image(tmp_path / "testB" / f"{n}_B.jpg")
    problems = find_pairs(tmp_path).problems
    assert len(problems) == 3
    assert any("1_A.jpg: sketch without a photo" in p for p in problems)
    assert any("2_A.jpg: sketch without a photo" in p for p in problems)
    assert any("3_B.jpg: photo without a sketch" in p for p in problems)


def test_duplicate_index_and_stray_files(tmp_path):
    touch_image(tmp_path / "testA" / "3_A.jpg")
    touch_image(tmp_path / "testA" / "3_A.png")
    touch_image(tmp_path / "testB" / "3_B.jpg")
    touch_image(tmp_path / "testA" / "4_A.jpg")
    touch_image(tmp_path / "testB" / "4_B.jpg")
    (tmp_path / "testA" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "testB" / "Thumbs.db").write_bytes(b"\0\1")
    (tmp_path / "testA" / "sub").mkdir()
    listing = find_pairs(tmp_path)
    assert [p.name for p in listing.splits["all"]] == ["4"]
    assert any(
        "several files for pair '3'" in p and "3_A.jpg" in p and "3_A.png" in p
        for p in listing.problems
    )
    assert {p.name for p in listing.ignored} == {".DS_Store", "Thumbs.db", "sub"}


def test_empty_folders(tmp_path):
    (tmp_path / "testA").mkdir()
    (tmp_path / "testB").mkdir()
    with pytest.raises(UserError, match="no image pairs found .* are empty"):
        find_pairs(tmp_path)


def test_aligned_layout_with_split_folders(tmp_path):
    for split, count in (("train", 3), ("val", 1), ("test", 2)):
        for n in range(count):
            touch_image(tmp_path / split / f"{n}.jpg", size=(16, 8))
    listing = find_pairs(tmp_path)  # auto: no A folders, so aligned
    assert listing.layout == "aligned"
    assert {k: len(v) for k, v in listing.splits.items()} == {"train": 3, "val": 1, "test": 2}
    assert all(p.aligned for p in listing.splits["train"])


def test_natural_sort():
    assert sorted(["10", "2", "1"], key=natural_key) == ["1", "2", "10"]
