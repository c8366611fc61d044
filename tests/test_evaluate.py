"""s2p-eval on a tiny trained checkpoint and on the trivial baselines."""

import csv
import json

import pytest

from helpers import compose_config
from sketch2photo.commands.evaluate import evaluate
from sketch2photo.commands.train import train
from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.data.images import to_model_range
from sketch2photo.errors import UserError


@pytest.fixture
def trained_checkpoint(train_config, tmp_path):
    metrics = train(train_config("trainer.max_epochs=2"))
    return tmp_path / "run" / "checkpoints" / "best.ckpt", metrics  # the weights s2p-train tested


def test_eval_writes_metrics_csv_and_grid(trained_checkpoint, tmp_path):
    ckpt, train_metrics = trained_checkpoint
    out = tmp_path / "eval"
    means = evaluate(compose_config(out, [f"ckpt_path={ckpt}"], config_name="eval"))
    record = json.loads((out / "metrics.json").read_text())
    assert record["metrics"] == pytest.approx(means)
    # the checkpoint's own test split, same weights as the end of training: same numbers
    assert means["test/psnr"] == pytest.approx(train_metrics["test/psnr"], rel=1e-4)
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == record["pairs"] == 1  # test_fraction 0.1 of 12 pairs
    assert set(rows[0]) >= {"name", "psnr", "ssim", "l1", "mse"}
    assert sum(float(r["ssim"]) for r in rows) / len(rows) == pytest.approx(
        means["test/ssim"], rel=1e-4
    )
    assert (out / "grid.png").stat().st_size > 0


def test_eval_any_folder_and_baselines(trained_checkpoint, synthetic_dir, tmp_path):
    ckpt, _ = trained_checkpoint
    out = tmp_path / "all"
    evaluate(
        compose_config(
            out,
            [f"ckpt_path={ckpt}", f"data.data_dir={synthetic_dir}", "subset=all"],
            config_name="eval",
        )
    )
    assert json.loads((out / "metrics.json").read_text())["pairs"] == 12

    settings = [
        f"data.data_dir={synthetic_dir}",
        "data.image_size=32",
        "data.folds=3",
        "data.fold=1",
        "subset=val",
    ]
    datamodule = PairedSketchDataModule(data_dir=str(synthetic_dir), image_size=32, folds=3, fold=1)
    datamodule.setup()
    train_photos, val_photos = (to_model_range(datamodule.sets[s].photos) for s in ("train", "val"))
    expected = {
        "white": (val_photos - 1).square().mean().item(),
        "mean": (val_photos - train_photos.mean(dim=0)).square().mean().item(),
    }
    for kind, mse in expected.items():
        scores = evaluate(
            compose_config(tmp_path / kind, [f"baseline={kind}", *settings], config_name="eval")
        )
        assert scores["val/mse"] == pytest.approx(mse, rel=1e-5)
    with pytest.raises(
        UserError, match="baseline=mean subset=all would score the mean of all pairs"
    ):
        evaluate(
            compose_config(
                tmp_path / "all-mean",
                ["baseline=mean", f"data.data_dir={synthetic_dir}", "subset=all"],
                config_name="eval",
            )
        )
