"""The pix2pix 'aligned' layout (e.g. Sketch2Pokemon: 256x512, sketch on the left) through the data
config."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from helpers import compose_config
from sketch2photo.data.corpora.synthetic import generate_pairs

SPLITS = {"train": 6, "val": 2, "test": 3}


def write_aligned(root, ab_order: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """root/{train,val,test}/<i>.png, each 32x64: sketch and photo side by side. Returns what was
    written."""
    written = {}
    for offset, (split, count) in enumerate(SPLITS.items()):
        sketches, photos = generate_pairs(count, size=32, seed=offset)
        (root / split).mkdir(parents=True)
        for index, (sketch, photo) in enumerate(zip(sketches, photos, strict=True)):
            halves = [sketch.expand(3, -1, -1), photo]
            if ab_order == "photo_left":
                halves.reverse()
            side_by_side = torch.cat(halves, dim=2).permute(1, 2, 0).numpy()
            Image.fromarray(np.ascontiguousarray(side_by_side)).save(root / split / f"{index}.png")
        written[split] = (sketches, photos)
    return written


@pytest.mark.parametrize("ab_order", ["sketch_left", "photo_left"])
def test_aligned_layout_in_both_orders(tmp_path, ab_order):
    data_dir = tmp_path / "pokemon"
    written = write_aligned(data_dir, ab_order)
    cfg = compose_config(
        tmp_path / "run",
        [
            "data=sketch2photo",
            f"data.data_dir={data_dir}",
            "data.layout=aligned",
            f"data.ab_order={ab_order}",
            "data.image_size=32",
            "data.decode_threads=1",
        ],
    )
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    assert {
        stage: len(pairs) for stage, pairs in datamodule.sets.items()
    } == SPLITS  # the folders are the splits
    for split, (sketches, photos) in written.items():
        cached = datamodule.sets[split]
        order = [int(pair.name) for pair in cached.pairs]
        assert torch.equal(cached.sketches, sketches[order]), (
            split
        )  # the sketch half, whichever side it is on
        assert torch.equal(cached.photos, photos[order]), split


def test_wrong_order_is_visible_and_layout_is_auto_detected(tmp_path):
    """Reading photo_left files as sketch_left swaps the halves; auto picks 'aligned' without A/B
    folders."""
    data_dir = tmp_path / "pokemon"
    written = write_aligned(data_dir, "photo_left")
    cfg = compose_config(
        tmp_path / "run", ["data=sketch2photo", f"data.data_dir={data_dir}", "data.image_size=32"]
    )
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    sketches, photos = written["train"]
    order = [int(pair.name) for pair in datamodule.sets["train"].pairs]
    assert not torch.equal(datamodule.sets["train"].sketches, sketches[order])
    grey_photos = torch.from_numpy(
        np.stack(
            [np.asarray(Image.fromarray(p.permute(1, 2, 0).numpy()).convert("L")) for p in photos]
        )
    )
    assert torch.equal(datamodule.sets["train"].sketches[:, 0], grey_photos[order])
