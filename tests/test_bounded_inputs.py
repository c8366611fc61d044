"""Small files that would cost gigabytes are bounded: an image larger than the pixel limit is
refused from its header, a large hint layer is pooled a band at a time, sizes and shapes in a model
card or checkpoint are checked before anything is allocated, and a hint list with numbers too large
for a float is one bad file, not a lost batch."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from helpers import compose_config, write_sparse_png
from sketch2photo.checkpoints import read
from sketch2photo.commands.export import export
from sketch2photo.commands.predict import main
from sketch2photo.data import images
from sketch2photo.data.images import BadImageError, open_image, read_image
from sketch2photo.errors import SOME_FILES_FAILED, UserError
from sketch2photo.hints import files
from sketch2photo.hints.files import read_hint_file


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
    claims = write_sparse_png(tmp_path / "claims.png", 9000, 9000, header_only=True)
    with pytest.raises(
        BadImageError, match=r"claims\.png: too large: 9000x9000 is 81\.0 megapixels, more than"
    ):
        open_image(claims)
    with pytest.raises(UserError, match=r"claims\.png: not a readable hint image \(too large"):
        read_hint_file(claims, (9000, 9000), 32)
    small = write_sparse_png(tmp_path / "small.png", 64, 64)
    with pytest.raises(BadImageError, match=r"more than the 63 x 63 \(0\.0\) accepted"):
        read_image(small, max_pixels=4000)  # the app's own, lower limit goes through the same
    assert read_image(small, flatten=False).mode == "RGBA"


def test_a_hint_layer_pooled_a_band_at_a_time_equals_pooling_it_whole(monkeypatch):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (301, 203, 4), dtype=np.uint8)
    rgba[..., 3] *= rng.random((301, 203)) < 0.02  # sparse hints, some of them faint
    monkeypatch.setattr(images, "BAND_PIXELS", 203 * 7)  # 7 rows a band: many bands
    banded = files._at_model_size(Image.fromarray(rgba, "RGBA"), 32)

    pixels = torch.from_numpy(rgba).permute(2, 0, 1)[None].float()  # the whole layer as float
    alpha = pixels[:, 3:] / 255
    weight = F.adaptive_avg_pool2d(alpha, 32)
    colour = F.adaptive_avg_pool2d(pixels[:, :3] * alpha, 32) / weight.clamp_min(1e-12)
    whole = torch.cat(
        [torch.where(weight > 0, (colour / 127.5 - 1).clamp(-1, 1), 0.0), (weight > 0).float()],
        dim=1,
    )[0]
    assert torch.equal(banded[3], whole[3])  # the same cells are hints
    assert torch.allclose(banded, whole, atol=1e-5)


@pytest.mark.slow
def test_an_8000_px_hint_layer_costs_a_fraction_of_its_float_size(tmp_path):
    """250 KB on disk, 256 MB decoded, 1 GB as float: read in a fresh process, its peak memory
    grows by less than 400 MB, and both dots land in their cells."""
    layer = write_sparse_png(
        tmp_path / "layer.png",
        8000,
        8000,
        {(100, 200): (255, 0, 0, 255), (7999, 7999): (0, 0, 255, 255)},
    )
    script = f"""
import json, resource
import torch
from sketch2photo.hints.files import read_hint_file
torch.zeros(1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
hints = read_hint_file({str(layer)!r}, (8000, 8000), 128)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"grew_mib": (after - before) / 1024, "cells": hints[3].nonzero().tolist()}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["cells"] == [[200 * 128 // 8000, 100 * 128 // 8000], [127, 127]]
    assert measured["grew_mib"] < 400, measured


@pytest.fixture
def shared_model(tmp_path, tiny_checkpoint):
    """The tiny model as a safetensors export and its model card: what strangers hand over."""
    pytest.importorskip("safetensors")
    weights = export(tiny_checkpoint, "safetensors", tmp_path / "shared" / "model.safetensors")
    return weights, weights.with_name(weights.name + ".json")


def edit_card(card_path, change) -> None:
    card = json.loads(card_path.read_text())
    change(card)
    card_path.write_text(json.dumps(card))


def test_a_model_card_cannot_ask_for_a_huge_image_size(shared_model):
    weights, card = shared_model
    edit_card(card, lambda c: c.update(image_size=65536))  # 51.5 GB for one sketch's input
    with pytest.raises(
        UserError, match=r"model\.safetensors: image_size=65536 must be a whole number from 8 to"
    ):
        read.load_module(weights)
    edit_card(card, lambda c: c.update(image_size=32, data={**c["data"], "image_size": 65536}))
    with pytest.raises(UserError, match=r"data\.image_size=65536 must be a whole number"):
        read.data_settings(read.read_checkpoint(weights), weights)
    edit_card(card, lambda c: c.update(padding=" " * 2_000_000))
    with pytest.raises(UserError, match=r"is 2\d{6} bytes, more than the 1000000 a card takes"):
        read.read_checkpoint(weights)


def test_a_network_larger_than_its_weights_is_refused_before_it_is_built(shared_model, monkeypatch):
    weights, card = shared_model
    edit_card(card, lambda c: c["network"].update(width=4096))  # gigabytes of parameters

    def build(*args, **kwargs):
        raise AssertionError("the network was built")

    monkeypatch.setattr(read, "ColorizationModule", build)
    with pytest.raises(
        UserError, match=r"model\.safetensors: its network config does not match its weights"
    ):
        read.load_module(weights)


def test_numbers_too_large_for_a_float_are_one_bad_hint_file(tmp_path, hint_checkpoint, caplog):
    sketches, hints, out = tmp_path / "sketches", tmp_path / "hints", tmp_path / "out"
    sketches.mkdir(), hints.mkdir()
    for name in ("ant", "bee", "cat"):
        Image.new("L", (32, 32), 255).save(sketches / f"{name}.png")
    (hints / "ant.json").write_text('[{"x": 1' + "0" * 400 + ', "y": 3, "color": "#ff0000"}]')
    (hints / "cat.json").write_text('[{"x": 3, "y": 3, "color": "#ff0000"}]')
    cfg = compose_config(
        tmp_path,
        [f"ckpt_path={hint_checkpoint}", f"input={sketches}", f"hints={hints}", f"output={out}"],
        config_name="predict",
    )
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit:
        main(cfg)
    assert exit.value.code == SOME_FILES_FAILED
    assert sorted(p.name for p in out.iterdir()) == ["bee.png", "cat.png", "previews"]
    errors = "\n".join(r.message for r in caplog.records)
    assert f"{hints / 'ant.json'}: not a hint list" in errors
