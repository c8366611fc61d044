"""Paired augmentation keeps each sketch aligned with its photo, and really augments."""

from types import SimpleNamespace

import pytest
import torch

from sketch2photo.data.datamodule import PairedSketchDataModule
from sketch2photo.data.images import to_model_range

from sketch2photo.data.augment import PairedAugment
from sketch2photo.errors import UserError


def test_pairs_stay_aligned():
    torch.manual_seed(0)
    sketches = torch.rand(6, 3, 32, 32) * 2 - 1
    sketches[:, :, :, :8] = 1.0  # asymmetric content, so a flip is visible
    photos = -sketches  # the photo is a pixelwise function of its sketch
    augment = PairedAugment(32, flip=True, min_scale=0.5)
    out_sketches, out_photos = augment(sketches, photos)
    assert out_sketches.shape == sketches.shape and out_photos.shape == photos.shape
    torch.testing.assert_close(out_photos, -out_sketches, atol=1e-5, rtol=0)  # the relation survives
    changed = [not torch.allclose(out_sketches[i], sketches[i]) for i in range(6)]
    assert sum(changed) >= 4  # flips and crops happened, drawn per pair


def test_only_training_batches_are_augmented(synthetic_dir):
    datamodule = PairedSketchDataModule(
        data_dir=str(synthetic_dir), image_size=32, split="none", augment={"enabled": True, "min_scale": 0.5}
    )
    datamodule.setup()
    batch = next(iter(datamodule.train_dataloader()))
    datamodule.trainer = SimpleNamespace(training=False)
    plain = datamodule.on_after_batch_transfer(dict(batch), 0)
    torch.testing.assert_close(plain["photo"], to_model_range(batch["photo"]))
    datamodule.trainer = SimpleNamespace(training=True)
    torch.manual_seed(1)
    augmented = datamodule.on_after_batch_transfer(dict(batch), 0)
    assert not torch.allclose(augmented["photo"], plain["photo"])


def test_off_is_identity_and_bad_scale_is_rejected():
    sketches, photos = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    same_sketches, same_photos = PairedAugment(8, flip=False, min_scale=1.0)(sketches, photos)
    assert same_sketches is sketches and same_photos is photos
    with pytest.raises(UserError, match="data.augment.min_scale=0"):
        PairedAugment(8, min_scale=0)
