"""PairedSketchDataModule: cache, splits, folds, batching, clear errors before training."""

import pytest
import torch
from PIL import Image

from sketch2photo.data.corpora.synthetic import generate_pairs, write_dataset
from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.errors import UserError


def make_datamodule(data_dir, **overrides) -> PairedSketchDataModule:
    settings = dict(data_dir=str(data_dir), image_size=32, decode_threads=2)
    settings.update(overrides)
    datamodule = PairedSketchDataModule(**settings)
    datamodule.setup("fit")
    return datamodule


def test_cache_is_uint8_and_matches_files(synthetic_dir):
    datamodule = make_datamodule(synthetic_dir, split="none")
    train = datamodule.sets["train"]
    assert train.sketches.dtype == torch.uint8
    assert train.sketches.shape == (12, 1, 32, 32)
    assert train.photos.dtype == torch.uint8
    assert train.photos.shape == (12, 3, 32, 32)
    sketches, photos = generate_pairs(12, size=32, seed=0)  # what write_dataset wrote, lossless PNG
    names = [int(pair.name) for pair in train.pairs]
    assert torch.equal(train.sketches, sketches[names])
    assert torch.equal(train.photos, photos[names])


def test_full_batch_and_float_conversion(synthetic_dir):
    datamodule = make_datamodule(synthetic_dir, split="none", batch_size=None)
    loader = datamodule.train_dataloader()
    batches = list(loader)
    assert len(batches) == 1
    assert batches[0]["sketch"].shape[0] == 12
    batch = datamodule.on_after_batch_transfer(batches[0], 0)
    assert batch["sketch"].dtype == torch.float32
    assert batch["sketch"].shape == (12, 3, 32, 32)
    assert batch["sketch"].min() >= -1
    assert batch["sketch"].max() <= 1
    assert torch.equal(batch["sketch"][:, 0], batch["sketch"][:, 2])


def test_batch_size(synthetic_dir):
    datamodule = make_datamodule(synthetic_dir, split="none", batch_size=5)
    assert [len(b["index"]) for b in datamodule.train_dataloader()] == [5, 5, 2]


def test_default_split_with_20_pairs_keeps_validation(tmp_path):
    data_dir = write_dataset(tmp_path / "d", num_pairs=20, size=32)
    datamodule = make_datamodule(data_dir)
    sizes = {stage: len(s) for stage, s in datamodule.sets.items()}
    assert sizes["val"] >= 1
    assert sizes["test"] >= 1
    assert sum(sizes.values()) == 20
    again = make_datamodule(data_dir)
    assert [p.name for p in again.sets["val"].pairs] == [
        p.name for p in datamodule.sets["val"].pairs
    ]


def test_folds_are_disjoint_and_cover_all_pairs(synthetic_dir):
    held_out = []
    for fold in range(5):
        datamodule = make_datamodule(synthetic_dir, folds=5, fold=fold)
        train = {p.name for p in datamodule.sets["train"].pairs}
        val = {p.name for p in datamodule.sets["val"].pairs}
        assert train.isdisjoint(val)
        assert len(train | val) == 12
        assert datamodule.sets["test"] is datamodule.sets["val"]
        held_out.append(val)
    assert sorted(n for fold in held_out for n in fold) == sorted(str(i) for i in range(12))
    assert all(a.isdisjoint(b) for i, a in enumerate(held_out) for b in held_out[i + 1 :])


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"batch_size": 0}, "data.batch_size=0"),
        ({"image_size": 4}, "data.image_size=4"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "leaves no training data"),
        ({"folds": 5, "fold": 5}, "data.fold=5 is out of range"),
        ({"split": "sometimes"}, "data.split='sometimes'"),
        ({"on_bad_file": "ignore"}, "data.on_bad_file='ignore'"),
    ],
)
def test_bad_settings_fail_before_reading(tmp_path, overrides, key):
    with pytest.raises(UserError, match=key):
        PairedSketchDataModule(data_dir=str(tmp_path / "never-read"), **overrides)


def test_every_problem_is_listed_then_skip_carries_on(tmp_path):
    data_dir = write_dataset(tmp_path / "d", num_pairs=6, size=32)
    (data_dir / "testA" / "1_A.png").write_bytes(b"not a png")
    (data_dir / "testB" / "2_B.png").unlink()
    Image.new("RGB", (32, 64)).save(data_dir / "testB" / "3_B.png")  # other aspect ratio
    with pytest.raises(UserError) as error:
        make_datamodule(data_dir)
    message = str(error.value)
    assert "3 problem(s)" in message
    assert "1_A.png" in message
    assert "2_A.png: sketch without a photo" in message
    assert "3_B.png is 32x64" in message
    assert "data.on_bad_file=skip" in message

    datamodule = make_datamodule(data_dir, on_bad_file="skip", split="none")
    assert sorted(p.name for p in datamodule.sets["train"].pairs) == ["0", "4", "5"]


def test_synthetic_data_is_written_once(tmp_path):
    datamodule = PairedSketchDataModule(
        data_dir=str(tmp_path / "syn"), image_size=32, synthetic_pairs=7, split="none"
    )
    datamodule.setup("fit")
    assert len(datamodule.sets["train"]) == 7
    assert len(list((tmp_path / "syn" / "testA").iterdir())) == 7


def test_a_small_validation_set_is_warned_about_and_grids_fill_up(synthetic_dir, caplog):
    datamodule = PairedSketchDataModule(
        data_dir=str(synthetic_dir), image_size=32, val_fraction=0.2
    )  # 2 of 12
    datamodule.setup()
    assert any(
        "only 2 validation pair(s)" in r.message and "data.folds" in r.message
        for r in caplog.records
    )
    batch = datamodule.sample_batch(6)
    assert batch["sketch"].shape[0] == 6
    assert batch["from_train"] == [False, False, True, True, True, True]
    assert torch.equal(batch["sketch"][:2], datamodule.sample_batch(2, "val")["sketch"])
