"""Paired augmentation keeps each sketch aligned with its photo, and really augments."""

from types import SimpleNamespace

import pytest
import torch

from sketch2photo.data.augment import PairedAugment
from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.data.images import to_model_range
from sketch2photo.errors import UserError


@pytest.mark.parametrize(
    "options",
    [
        {"min_scale": 0.5},
        {"min_scale": 1.0, "degrees": 20, "translate": 0.2},
        {"min_scale": 0.7, "degrees": 10, "translate": 0.1},
    ],
)
def test_pairs_stay_aligned(options):
    torch.manual_seed(0)
    sketches = torch.rand(6, 3, 32, 32) * 2 - 1
    sketches[:, :, :, :8] = 1.0  # asymmetric content, so a flip is visible
    # the photo is a pixelwise function of its sketch, linear (interpolation keeps it) and white at
    # white (the border that rotations and shifts fill in)
    photos = 0.5 * sketches + 0.5
    augment = PairedAugment(32, flip=True, **options)
    out_sketches, out_photos = augment(sketches, photos)
    assert out_sketches.shape == sketches.shape
    assert out_photos.shape == photos.shape
    torch.testing.assert_close(
        out_photos, 0.5 * out_sketches + 0.5, atol=1e-5, rtol=0
    )  # the relation survives
    changed = [not torch.allclose(out_sketches[i], sketches[i]) for i in range(6)]
    assert sum(changed) >= 4  # flips and crops happened, drawn per pair


def test_only_training_batches_are_augmented(synthetic_dir):
    datamodule = PairedSketchDataModule(
        data_dir=str(synthetic_dir),
        image_size=32,
        split="none",
        augment={"enabled": True, "min_scale": 0.5},
    )
    datamodule.setup()
    batch = next(iter(datamodule.train_dataloader()))
    datamodule.trainer = SimpleNamespace(training=False, max_epochs=10, current_epoch=0)
    plain = datamodule.on_after_batch_transfer(dict(batch), 0)
    torch.testing.assert_close(plain["photo"], to_model_range(batch["photo"]))
    datamodule.trainer = SimpleNamespace(training=True, max_epochs=10, current_epoch=0)
    torch.manual_seed(1)
    augmented = datamodule.on_after_batch_transfer(dict(batch), 0)
    assert not torch.allclose(augmented["photo"], plain["photo"])


@pytest.mark.parametrize("max_epochs", [10, -1])
def test_stop_after_trains_the_last_epochs_on_the_pairs_as_they_are(synthetic_dir, max_epochs):
    datamodule = PairedSketchDataModule(
        data_dir=str(synthetic_dir),
        image_size=32,
        split="none",
        augment={"enabled": True, "min_scale": 0.5, "stop_after": 0.8},
    )
    datamodule.setup()
    batch = next(iter(datamodule.train_dataloader()))
    plain = to_model_range(batch["photo"])
    for epoch in range(10):
        datamodule.trainer = SimpleNamespace(
            training=True, max_epochs=max_epochs, current_epoch=epoch
        )
        augmented = not torch.allclose(
            datamodule.on_after_batch_transfer(dict(batch), 0)["photo"], plain
        )
        assert augmented == (epoch < 8 or max_epochs == -1), (
            epoch
        )  # no epoch limit: no end to count back from


def test_off_is_identity_and_bad_scale_is_rejected():
    sketches, photos = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    same_sketches, same_photos = PairedAugment(8, flip=False, min_scale=1.0)(sketches, photos)
    assert same_sketches is sketches
    assert same_photos is photos
    with pytest.raises(UserError, match="data.augment.min_scale=0"):
        PairedAugment(8, min_scale=0)
    with pytest.raises(UserError, match="data.augment.p=1.5"):
        PairedAugment(8, p=1.5)
    with pytest.raises(UserError, match="data.augment.degrees=-5"):
        PairedAugment(8, degrees=-5)
    with pytest.raises(UserError, match="data.augment.stop_after=1.5"):
        PairedSketchDataModule(data_dir="unused", augment={"enabled": True, "stop_after": 1.5})


def test_p_leaves_the_other_pairs_exactly_as_they_are():
    torch.manual_seed(0)
    sketches = torch.rand(200, 3, 8, 8)
    out, _ = PairedAugment(8, flip=False, degrees=30, p=0.5)(sketches, sketches.clone())
    untouched = sum(torch.equal(out[i], sketches[i]) for i in range(200))
    assert 70 <= untouched <= 130  # about half, each pair drawn on its own
