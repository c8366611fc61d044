"""s2p-make-pairs: any folder of photos becomes a testA/testB dataset of XDoG line sketches."""

import csv

import numpy as np
import pytest
from PIL import Image

from helpers import compose_config, run_cli
from sketch2photo.commands.make_pairs import PREVIEW_SIZE, make_pairs
from sketch2photo.data.corpora.synthetic import generate_photos
from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.errors import UserError

NAMES = ["img1.png", "img2.jpg", "img10.png", "img11.png", "photo_rgba.png"]  # natural order


@pytest.fixture
def photo_folder(tmp_path):
    """Five colour images (one JPEG, one RGBA, one 48x40), a corrupt file and a stray text file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = generate_photos(len(NAMES), size=48, seed=7)
    for name, photo in zip(NAMES, photos, strict=True):
        image = Image.fromarray(photo.permute(1, 2, 0).numpy())
        if name == "img11.png":
            image = image.resize((48, 40))
        elif name == "photo_rgba.png":
            image = image.convert("RGBA")
        image.save(folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (folder / "readme.txt").write_text("not an image")
    return folder


def run(tmp_path, *overrides):
    return make_pairs(compose_config(tmp_path, list(overrides), config_name="make_pairs"))


def test_structure_counts_and_names(tmp_path, photo_folder):
    out = tmp_path / "pairs"
    count, problems = run(tmp_path, f"photos={photo_folder}", f"out={out}", "preview=3")
    assert count == 5
    assert len(problems) == 1
    assert "broken.jpg" in problems[0]
    assert sorted(p.name for p in out.iterdir()) == ["names.csv", "preview.png", "testA", "testB"]
    assert sorted(p.name for p in (out / "testA").iterdir()) == sorted(
        f"{i}_A.png" for i in range(5)
    )
    assert sorted(p.name for p in (out / "testB").iterdir()) == sorted(
        f"{i}_B.png" for i in range(5)
    )
    with open(out / "names.csv") as file:
        assert list(csv.reader(file)) == [
            ["index", "file"],
            *([str(i), name] for i, name in enumerate(NAMES)),
        ]

    # size=null keeps each photo, losslessly; its sketch has the same size
    assert (
        Image.open(out / "testB" / "3_B.png").size
        == (48, 40)
        == Image.open(out / "testA" / "3_A.png").size
    )
    original = np.asarray(Image.open(photo_folder / "img1.png"))
    assert np.array_equal(np.asarray(Image.open(out / "testB" / "0_B.png")), original)

    preview = Image.open(out / "preview.png")
    assert preview.size == (
        3 * (PREVIEW_SIZE + 2) + 2,
        2 * (PREVIEW_SIZE + 2) + 2,
    )  # 3 photos over 3 sketches

    # the result is a dataset the framework reads as it is
    datamodule = PairedSketchDataModule(
        data_dir=str(out), image_size=32, split="none", decode_threads=1
    )
    datamodule.setup("fit")
    assert len(datamodule.sets["train"]) == 5


def test_sketches_are_dark_lines_on_white(tmp_path, photo_folder):
    out = tmp_path / "pairs"
    run(tmp_path, f"photos={photo_folder}", f"out={out}", "size=64")
    for index in range(5):
        sketch = np.asarray(Image.open(out / "testA" / f"{index}_A.png"))
        photo = np.asarray(Image.open(out / "testB" / f"{index}_B.png").convert("L")).astype(float)
        assert sketch.shape == photo.shape == (64, 64)
        assert (sketch > 200).mean() > 0.75  # mostly white paper
        dark = sketch < 64
        assert dark.mean() > 0.01  # with dark lines
        # ... that sit on the photo's edges, not on its flat areas
        edges = np.hypot(*np.gradient(photo)) > 10
        near_edges = (
            edges
            | np.roll(edges, 1, 0)
            | np.roll(edges, -1, 0)
            | np.roll(edges, 1, 1)
            | np.roll(edges, -1, 1)
        )
        assert near_edges[dark].mean() > 0.9


def test_xdog_parameters_reach_the_extractor(tmp_path, photo_folder):
    thin, thick = tmp_path / "thin", tmp_path / "thick"
    run(tmp_path, f"photos={photo_folder}", f"out={thin}", "size=64")
    run(tmp_path, f"photos={photo_folder}", f"out={thick}", "size=64", "xdog.sigma=2.0")
    darkness = [
        (np.asarray(Image.open(out / "testA" / "0_A.png")) < 128).mean() for out in (thin, thick)
    ]
    assert darkness[1] > darkness[0] * 1.2  # larger sigma: thicker lines


def test_refuses_to_mix_with_an_existing_dataset(tmp_path, photo_folder):
    out = tmp_path / "pairs"
    run(tmp_path, f"photos={photo_folder}", f"out={out}")
    with pytest.raises(UserError, match="already holds a dataset.*overwrite=true"):
        run(tmp_path, f"photos={photo_folder}", f"out={out}")
    (out / "testA" / "99_A.png").write_bytes(b"stale")
    count, _ = run(tmp_path, f"photos={photo_folder}", f"out={out}", "overwrite=true")
    assert len(list((out / "testA").iterdir())) == count == 5
    with pytest.raises(UserError, match=r"photos=\.\.\. is required"):
        run(tmp_path, f"out={out}")


@pytest.mark.slow
def test_command_exit_status_names_the_bad_file(tmp_path, photo_folder):
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_cli(
        "python",
        "-m",
        "sketch2photo.make_pairs",
        f"photos={photo_folder}",
        "out=pairs",
        "size=32",
        cwd=workdir,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "wrote 5 pairs" in output
    assert "broken.jpg" in output
    assert "Traceback" not in output
    assert sorted(p.name for p in workdir.iterdir()) == ["pairs"]
    assert Image.open(workdir / "pairs" / "testA" / "0_A.png").size == (32, 32)
