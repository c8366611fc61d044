"""No command writes over one of its own inputs or through a link out of its output folder, nor
replaces a folder its inputs are in: each is refused with one message naming both paths, before
anything is written."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from PIL import Image

from helpers import compose_config
from sketch2photo.commands.export import export
from sketch2photo.commands.make_pairs import make_pairs
from sketch2photo.commands.pack import pack
from sketch2photo.commands.predict import predict
from sketch2photo.errors import UserError


def predict_with(tmp_path, *overrides):
    return predict(compose_config(tmp_path, list(overrides), config_name="predict"))


@pytest.fixture
def sketches(tmp_path):
    folder = tmp_path / "sketches"
    folder.mkdir()
    for name in ("ant", "bee"):
        Image.new("L", (32, 32), 255).save(folder / f"{name}.png")
    return folder


@pytest.mark.parametrize("format", ["torchscript", "safetensors"])
def test_export_never_replaces_its_checkpoint(tmp_path, tiny_checkpoint, format):
    pytest.importorskip("safetensors")
    ckpt = shutil.copy(tiny_checkpoint, tmp_path / "model.ckpt")
    before = ckpt.read_bytes()
    with pytest.raises(
        UserError, match=rf"output={ckpt} would overwrite ckpt_path {ckpt}; refused"
    ):
        export(ckpt, format, ckpt)
    assert ckpt.read_bytes() == before


def test_export_to_the_default_output_never_replaces_a_checkpoint_named_like_it(
    tmp_path, tiny_checkpoint
):
    ckpt = shutil.copy(tiny_checkpoint, tmp_path / "model.pt")  # format=torchscript's suffix
    before = ckpt.read_bytes()
    with pytest.raises(
        UserError, match=rf"output={ckpt} would overwrite ckpt_path {ckpt}; refused"
    ):
        export(ckpt, "torchscript")
    assert ckpt.read_bytes() == before


def test_export_never_replaces_the_model_card_it_reads(tmp_path, tiny_checkpoint):
    pytest.importorskip("safetensors")
    weights = export(tiny_checkpoint, "safetensors", tmp_path / "model.safetensors")
    card = weights.with_name(weights.name + ".json")
    before = card.read_text()
    with pytest.raises(UserError, match=rf"would overwrite the model card {card}; refused"):
        export(weights, "torchscript", card)  # the export itself, written over the card
    assert card.read_text() == before
    assert json.loads(before)["format"] == "safetensors"


def test_previews_never_overwrite_the_input_sketches(tmp_path, sketches, hint_checkpoint):
    """input=X/previews output=X: the previews of hinted sketches would be X/previews/<name>."""
    work = tmp_path / "work"
    (work / "previews").mkdir(parents=True)
    hints = tmp_path / "hints"
    hints.mkdir()
    for name in ("ant", "bee"):
        shutil.copy(sketches / f"{name}.png", work / "previews" / f"{name}.png")
        (hints / f"{name}.json").write_text('[{"x": 3, "y": 3, "color": "#ff0000"}]')
    before = {p.name: p.read_bytes() for p in (work / "previews").iterdir()}
    with pytest.raises(
        UserError,
        match=rf"output={work} would overwrite the input {work / 'previews' / 'ant.png'}; refused",
    ):
        predict_with(
            tmp_path,
            f"ckpt_path={hint_checkpoint}",
            f"input={work / 'previews'}",
            f"output={work}",
            f"hints={hints}",
        )
    assert {p.name: p.read_bytes() for p in (work / "previews").iterdir()} == before
    assert sorted(p.name for p in work.iterdir()) == ["previews"]


def test_results_never_overwrite_a_hint_file(tmp_path, sketches, hint_checkpoint):
    hints = tmp_path / "out"
    hints.mkdir()
    Image.new("RGBA", (32, 32), (255, 0, 0, 255)).save(hints / "ant.png")
    before = (hints / "ant.png").read_bytes()
    with pytest.raises(UserError, match=rf"would overwrite the hint file {hints / 'ant.png'};"):
        predict_with(
            tmp_path,
            f"ckpt_path={hint_checkpoint}",
            f"input={sketches}",
            f"output={hints}",
            f"hints={hints}",
        )
    assert (hints / "ant.png").read_bytes() == before


def test_links_in_the_output_folder_are_never_followed(tmp_path, sketches, tiny_checkpoint):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    (out / "ant.png").symlink_to(victim)
    with pytest.raises(
        UserError, match=rf"{out / 'ant.png'} is a link to {victim}: refused, .* not followed"
    ):
        predict_with(tmp_path, f"ckpt_path={tiny_checkpoint}", f"input={sketches}", f"output={out}")
    assert victim.read_bytes() == b"precious"

    (out / "ant.png").unlink()
    os.link(sketches / "bee.png", out / "bee.png")  # a hard link: the same file as an input
    before = (sketches / "bee.png").read_bytes()
    with pytest.raises(
        UserError,
        match=rf"would overwrite the input {sketches / 'bee.png'} \(writing {out / 'bee.png'}\)",
    ):
        predict_with(tmp_path, f"ckpt_path={tiny_checkpoint}", f"input={sketches}", f"output={out}")
    assert (sketches / "bee.png").read_bytes() == before


def test_a_linked_previews_folder_is_never_followed(tmp_path, sketches, hint_checkpoint):
    out, elsewhere, hints = tmp_path / "out", tmp_path / "elsewhere", tmp_path / "hints"
    out.mkdir(), elsewhere.mkdir(), hints.mkdir()
    (out / "previews").symlink_to(elsewhere, target_is_directory=True)
    (hints / "ant.json").write_text('[{"x": 3, "y": 3, "color": "#ff0000"}]')
    with pytest.raises(UserError, match=rf"{out / 'previews'} is a link to {elsewhere}"):
        predict_with(
            tmp_path,
            f"ckpt_path={hint_checkpoint}",
            f"input={sketches}",
            f"output={out}",
            f"hints={hints}",
        )
    assert list(elsewhere.iterdir()) == []


def test_an_output_that_is_a_file_is_a_clear_error(tmp_path, sketches, tiny_checkpoint):
    taken = tmp_path / "results.png"
    taken.write_bytes(b"something")
    with pytest.raises(UserError, match=rf"output={taken} is a file; give a folder"):
        predict_with(
            tmp_path, f"ckpt_path={tiny_checkpoint}", f"input={sketches}", f"output={taken}"
        )
    assert taken.read_bytes() == b"something"


def test_make_pairs_never_replaces_the_folder_its_photos_are_in(tmp_path):
    data = tmp_path / "data"
    (data / "testB").mkdir(parents=True)
    for index in range(2):
        Image.new("RGB", (32, 32), (200, 30 * index, 30)).save(data / "testB" / f"{index}_B.png")
    before = sorted(p.name for p in (data / "testB").iterdir())
    with pytest.raises(
        UserError, match=rf"out={data} would replace {data / 'testB'}, which holds the input"
    ):
        make_pairs(
            compose_config(
                tmp_path,
                [f"photos={data / 'testB'}", f"out={data}", "overwrite=true"],
                config_name="make_pairs",
            )
        )
    assert sorted(p.name for p in (data / "testB").iterdir()) == before


def test_pack_never_replaces_the_folder_its_pairs_are_in(tmp_path, synthetic_dir):
    pytest.importorskip("litdata")
    data = tmp_path / "aligned"
    (data / "train").mkdir(parents=True)
    for index in range(6):  # the aligned layout: sketch | photo in one file, in train/
        pair = Image.new("RGB", (64, 32), "white")
        pair.paste(Image.open(synthetic_dir / "testB" / f"{index}_B.png"), (32, 0))
        pair.save(data / "train" / f"{index}.png")
    with pytest.raises(
        UserError, match=rf"out={data} would replace {data / 'train'}, which holds the input"
    ):
        pack(
            compose_config(
                tmp_path,
                [f"data.data_dir={data}", "data.image_size=32", "data.split=none", f"out={data}"],
                "pack",
            )
        )
    assert len(list((data / "train").iterdir())) == 6
