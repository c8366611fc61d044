"""What a run reports: TensorBoard's scalars and images on the epoch axis, one HPARAMS row with the
same columns for every model, metrics.json saying which weights each number comes from, and
labelled sample grids."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from sketch2photo.commands.train import train
from sketch2photo.runs.report import FIXED_HPARAMS
from sketch2photo.runs.sample_grids import LABEL_WIDTH, sample_grid


def test_scalars_and_images_use_the_epoch_whatever_the_batch_size(train_config, tmp_path):
    steps = {}
    for batch_size in (2, 6):
        train(
            train_config(
                "trainer.max_epochs=3",
                f"data.batch_size={batch_size}",
                f"paths.run_dir={tmp_path / str(batch_size)}",
            )
        )
        events = EventAccumulator(
            str(tmp_path / str(batch_size)), size_guidance={"images": 0, "scalars": 0}
        ).Reload()
        steps[batch_size] = {
            tag: [event.step for event in events.Scalars(tag)] for tag in ("train/loss", "val/psnr")
        }
        assert [event.step for event in events.Images("samples")] == [1, 2, 3]
        assert "step" not in events.Tags()["scalars"]
    assert steps[2] == steps[6] == {"train/loss": [1, 2, 3], "val/psnr": [1, 2, 3]}


def session_hparams(run_dir) -> dict:
    events = EventAccumulator(str(run_dir)).Reload()
    content = events.PluginTagToContent("hparams")
    assert "_hparams_/experiment" not in content  # columns come from all runs, not the first
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    return dict(start.hparams)


def test_hparams_tab_gets_the_settings_and_metrics(train_config, tmp_path):
    train(train_config("trainer.max_epochs=1", "model.lr=0.002"))
    hparams = session_hparams(tmp_path / "run")
    assert hparams["lr"].number_value == pytest.approx(0.002)
    assert hparams["image_size"].number_value == 32
    assert hparams["seed"].number_value == 42
    events = EventAccumulator(str(tmp_path / "run")).Reload()
    assert {"val/psnr", "val/ssim", "val/l1", "val/mse"} <= set(
        events.Tags()["scalars"]
    )  # the metric columns


def test_hparams_show_what_was_set_and_the_same_keys_for_every_model(train_config, tmp_path):
    train(
        train_config(
            "trainer.max_epochs=1", "model.lr=0.002", f"paths.run_dir={tmp_path / 'logs' / 'ae'}"
        )
    )
    train(
        train_config(
            "trainer.max_epochs=1",
            "model=unet",
            "model.net.depth=2",
            "model.net.width=8",
            f"paths.run_dir={tmp_path / 'logs' / 'unet'}",
        )
    )
    ae, unet = (
        session_hparams(tmp_path / "logs" / "ae"),
        session_hparams(tmp_path / "logs" / "unet"),
    )
    assert ae["lr"].number_value == pytest.approx(
        0.002
    )  # typed, and one of the fixed set: under its short name
    assert unet["model.net.depth"].number_value == 2  # typed: under its own name
    assert ae["model"].string_value == "SeedAutoencoder"
    assert unet["model"].string_value == "UNet"
    for name in FIXED_HPARAMS:
        assert name in ae, name
        assert name in unet, name
    assert len(ae) < 25  # not the 47 flattened keys


def test_metrics_say_which_weights_and_the_best_epoch(train_config, tmp_path):
    train(train_config("trainer.max_epochs=3"))
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    best = max(record["history"], key=lambda row: row["val/psnr"])
    assert record["best_epoch"] == best["epoch"]
    assert record["best"]["val/psnr"] == pytest.approx(best["val/psnr"])
    assert record["weights"]["val"] == "last epoch, 3"
    assert record["weights"]["test"] == f"best.ckpt, epoch {best['epoch']}"


def test_sample_grids_label_their_rows_and_epoch(tmp_path):
    images = torch.rand(3, 4, 3, 16, 16) * 2 - 1
    grid = sample_grid(*images, title="epoch 20", column_notes=["", "", "train", "train"])
    plain = sample_grid(*images)
    assert grid.shape == plain.shape  # the same margins, labels or not
    assert grid.shape[2] > 4 * 16 + LABEL_WIDTH - 1
    label_column = grid[:, :, : LABEL_WIDTH - 4]
    rows = label_column.shape[1] // 3
    for row in range(3):  # "sketch", "output", "target": dark text in each row's band
        assert (label_column[:, row * rows : (row + 1) * rows] < 0.5).any(), row
    assert (grid[:, :12, LABEL_WIDTH:] < 0.9).any()  # the notes above the columns
    assert not torch.equal(grid, plain)
