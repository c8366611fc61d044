"""In-process fits through the composed config: run dir, metrics.json, TensorBoard, checkpoints."""

import json
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sketch2photo.checkpoints.read import load_module
from sketch2photo.commands.train import train


def test_tiny_fit_writes_the_run_dir(train_config, tmp_path):
    cfg = train_config("trainer.max_epochs=3")
    metrics = train(cfg)
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "epoch_0001.png",
        "epoch_0002.png",
        "epoch_0003.png",
    ]
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "ok"
    assert record["epochs"] == 3
    assert [row["epoch"] for row in record["history"]] == [1, 2, 3]
    for key in (
        "train/loss",
        "val/loss",
        "val/psnr",
        "val/ssim",
        "val/l1",
        "val/mse",
        "test/psnr",
        "test/ssim",
    ):
        assert key in record["metrics"], key
        assert record["metrics"][key] == pytest.approx(metrics[key])
    assert record["history"][-1]["train/loss"] < record["history"][0]["train/loss"]

    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert {"train/loss", "val/psnr", "val/ssim"} <= set(tags["scalars"])
    # test/*: in metrics.json (above), not in TensorBoard, whose SCALARS page opens on train/
    assert not [tag for tag in tags["scalars"] if tag.startswith("test/")]
    assert [e.step for e in events.Scalars("train/loss")][:3] == sorted(
        e.step for e in events.Scalars("train/loss")
    )[:3]
    assert len(events.Scalars("train/loss")) >= 3
    assert "samples" in tags["images"]
    assert len(events.Images("samples")) == 3
    assert "hp_metric" not in tags["scalars"]


def test_history_survives_testing_an_earlier_best_checkpoint(train_config, tmp_path):
    # "best" = the highest train loss = epoch 1, so trainer.test restores an older callback state
    metrics = train(
        train_config(
            "trainer.max_epochs=3",
            "callbacks.model_checkpoint.monitor=train/loss",
            "callbacks.model_checkpoint.mode=max",
        )
    )
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [row["epoch"] for row in record["history"]] == [1, 2, 3]
    assert record["history"][-1]["train/loss"] == pytest.approx(metrics["train/loss"])
    checkpoints = tmp_path / "run" / "checkpoints"
    assert torch.load(checkpoints / "best.ckpt", weights_only=True)["epoch"] == 0
    assert (
        torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 2
    )  # the latest, not the best


def test_last_checkpoint_holds_the_final_epoch_whatever_the_interval(train_config, tmp_path):
    train(train_config("trainer.max_epochs=3", "callbacks.model_checkpoint.every_n_epochs=2"))
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert (
        torch.load(last, weights_only=True)["global_step"] == record["global_step"] > 0
    )  # not epoch 2's
    train(
        train_config(f"ckpt_path={last}", "trainer.max_epochs=4")
    )  # and training continues from it
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert resumed["epochs"] == 4
    assert resumed["global_step"] == record["global_step"] * 4 // 3
    # without the best-checkpoint callback, last.ckpt is still written
    train(
        train_config(
            "trainer.max_epochs=1",
            "callbacks.model_checkpoint=null",
            f"paths.run_dir={tmp_path / 'alone'}",
        )
    )
    assert (tmp_path / "alone" / "checkpoints" / "last.ckpt").is_file()


def test_checkpoint_restores_without_config(train_config, tmp_path):
    train(
        train_config("trainer.max_epochs=1", "model=unet", "model.net.depth=2", "model.net.width=8")
    )
    module = load_module(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert type(module.net).__name__ == "ConditionedGenerator"
    assert type(module.net.generator).__name__ == "UNet"
    assert module.hparams.image_size == 32
    with torch.inference_mode():
        assert module(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_seed_setup_trains_on_all_pairs(train_config, tmp_path):
    metrics = train(train_config("experiment=seed", "trainer.max_epochs=2", "data.image_size=32"))
    assert set(metrics) == {"train/loss"}  # no validation or test split: all 12 pairs train
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["global_step"] == 2  # full batch: one step per epoch


@pytest.mark.parametrize(
    "cv_experiment", ["cv_seed", "cv_unet", "cv_unet_fit", "cv_unet_background"]
)
def test_crossval_experiments_run_on_a_fold(train_config, tmp_path, synthetic_dir, cv_experiment):
    # the benchmark's configs, on the 12 synthetic pairs: 5 folds leave 2 or 3 held out
    cfg = train_config(
        f"experiment={cv_experiment}",
        f"data.data_dir={synthetic_dir}",
        "data.image_size=32",
        "trainer.max_epochs=2",
        "data.fold=4",
    )
    metrics = train(cfg)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "ok"
    assert all(math.isfinite(metrics[key]) for key in ("test/psnr", "train/loss"))
    steps_per_epoch = {"cv_seed": 1, "cv_unet": 1}.get(
        cv_experiment, 3
    )  # 10 training pairs, batches of 4
    assert record["global_step"] == 2 * steps_per_epoch
    if cv_experiment == "cv_unet_background":
        net = load_module(tmp_path / "run" / "checkpoints" / "last.ckpt").net
        assert net.background_input
        assert net.background_fill


def test_early_stopping_is_a_config_option(train_config):
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import EarlyStopping

    cfg = train_config("callbacks=early_stopping", "callbacks.early_stopping.patience=3")
    stopper = instantiate(cfg.callbacks.early_stopping)
    assert isinstance(stopper, EarlyStopping)
    assert stopper.monitor == "val/psnr"
    assert stopper.patience == 3
    assert cfg.callbacks.model_checkpoint.monitor == "val/psnr"  # best.ckpt: by held-out PSNR


def test_init_from_starts_a_fresh_run_from_a_checkpoints_weights(
    train_config, tmp_path, tiny_checkpoint
):
    from sketch2photo.errors import UserError

    # the tiny checkpoint's network, under another seed than the one it was trained with
    unet = ["model=unet", "model.net.depth=2", "model.net.width=8", "seed=7"]
    start = torch.load(tiny_checkpoint, weights_only=True)
    # lr ~0: an Adam step moves each weight by about lr, so the run's checkpoint shows where it
    # started
    train(
        train_config(
            *unet, f"init_from={tiny_checkpoint}", "model.lr=1e-12", "trainer.max_epochs=1"
        )
    )
    finetuned = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert finetuned["epoch"] == 0
    assert finetuned["global_step"] == start["global_step"]  # epochs start afresh
    weights = [name for name, _ in load_module(tiny_checkpoint).named_parameters()]
    for name in weights:
        torch.testing.assert_close(
            finetuned["state_dict"][name], start["state_dict"][name], atol=1e-9, rtol=0
        )

    train(
        train_config(*unet, "model.lr=1e-12", "trainer.max_epochs=1")
    )  # without it: a random start
    fresh = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    kernels = [
        name for name in weights if start["state_dict"][name].ndim == 4
    ]  # norms start at 1 and 0 anyway
    assert kernels
    assert not any(
        torch.allclose(fresh["state_dict"][n], start["state_dict"][n], atol=1e-3) for n in kernels
    )

    with pytest.raises(UserError, match="init_from=.* holds a different model"):
        train(train_config(f"init_from={tiny_checkpoint}"))  # the autoencoder
    with pytest.raises(UserError, match="init_from=nowhere.ckpt does not exist"):
        train(train_config("init_from=nowhere.ckpt"))


def test_checkpoints_saved_before_an_option_existed_still_match(
    train_config, tmp_path, tiny_checkpoint
):
    from sketch2photo.errors import UserError

    old = torch.load(tiny_checkpoint, weights_only=True)
    for option in (
        "background_input",
        "background_fill",
        "background_threshold",
    ):  # added after the first U-Nets
        old["hyper_parameters"]["net"].pop(option)
    torch.save(old, tmp_path / "old.ckpt")
    unet = ["model=unet", "model.net.depth=2", "model.net.width=8", "trainer.max_epochs=1"]
    train(
        train_config(*unet, f"init_from={tmp_path / 'old.ckpt'}")
    )  # its options' defaults are this config's
    with pytest.raises(UserError, match="holds a different model"):
        train(
            train_config(
                *unet, f"init_from={tmp_path / 'old.ckpt'}", "model.net.background_fill=true"
            )
        )


def test_a_run_saved_before_the_callbacks_moved_still_resumes(train_config, tmp_path):
    from omegaconf import OmegaConf

    from helpers import compose_config

    cfg = train_config("trainer.max_epochs=1")
    train(cfg)
    saved = (
        tmp_path / "run" / ".hydra" / "config.yaml"
    )  # as Hydra saves it for a run from the command line
    saved.parent.mkdir()
    OmegaConf.save(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), saved)
    old = OmegaConf.load(saved)  # the callbacks' old homes, and no dirpath for the interrupt save
    old.callbacks.last_checkpoint._target_ = "sketch2photo.checkpointing.LastCheckpoint"
    old.callbacks.sample_grids._target_ = "sketch2photo.samples.SampleGrids"
    old.callbacks.interrupt = {"_target_": "sketch2photo.checkpointing.CheckpointOnInterrupt"}
    OmegaConf.save(old, saved)
    train(compose_config(tmp_path / "run", [f"resume={tmp_path / 'run'}", "trainer.max_epochs=2"]))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"] == 2


def test_trainer_flags_reach_the_trainer(train_config, tmp_path):
    # 12 pairs: train 10 in batches of 2 is 5 steps an epoch; limit_train_batches=2 makes it 2
    train(
        train_config("trainer.max_epochs=1", "trainer.limit_train_batches=2", "data.batch_size=2")
    )
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["global_step"] == 2
