"""Day one as a new user meets it: instant help and errors (no torch loaded), every Trainer flag
without `+`, quiet runs, TensorBoard against epochs, results that say what they are."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import torch
from lightning.pytorch import Trainer
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from helpers import BIN, TINY, compose_config, run_cli
from sketch2photo.runs.sample_grids import LABEL_WIDTH, sample_grid
from sketch2photo.config import CONFIG_DIR
from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.module import ColorizationModule
from sketch2photo.nets.conditioning import ConditionedGenerator
from sketch2photo.nets.unet import UNet
from sketch2photo.runs.report import FIXED_HPARAMS
from sketch2photo.runs.scaleout import parallel_job_resources
from sketch2photo.commands.train import train

PASSED_BY_TRAIN = {"logger", "callbacks", "plugins", "default_root_dir"}  # s2p-train passes these itself


def run_entry(entry: str, *args: str, cwd) -> tuple[subprocess.CompletedProcess, bool]:
    """Run a console script's entry point in a fresh interpreter; (result, whether torch was imported)."""
    (script,) = entry_points(group="console_scripts", name=entry)
    module, function = script.value.split(":")
    code = (f"import atexit, sys; atexit.register(lambda: print('TORCH_LOADED', 'torch' in sys.modules)); "
            f"sys.argv = {[entry, *args]!r}; from {module} import {function} as main; main()")
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    return result, "TORCH_LOADED True" in result.stdout


# -- 1. help, --cfg and mistakes answer at once ------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("entry, args, expected", [
    ("s2p-train", ["--help"], "s2p-train: train a model that colours line sketches"),
    ("s2p-train", ["--cfg", "job"], "_target_: lightning.pytorch.Trainer"),
    ("s2p-train", ["model.lrr=1"], "model.lrr: did you mean model.lr=1?"),
    ("s2p-train", ["modle=unet"], "modle: did you mean model=unet?"),
    ("s2p-train", ["trainer.fast_dev_runn=true"], "did you mean trainer.fast_dev_run=true?"),
    ("s2p-train", ["model.lr=-1"], "model.lr=-1 must be a positive number"),
    ("s2p-train", ["data.batch_size=0"], "data.batch_size=0 must be a positive integer"),
    ("s2p-eval", ["--help"], "s2p-eval: score a checkpoint"),
    ("s2p-eval", ["subset=bogus", "baseline=white"], "subset='bogus' must be one of"),
    ("s2p-predict", ["--help"], "s2p-predict: colour new sketches"),
    ("s2p-predict", ["input=x"], "ckpt_path=..., output=... are required"),
    ("s2p-export", ["--help"], "s2p-export: write a trained network"),
    ("s2p-export", [], "ckpt_path=... is required"),
    ("s2p-make-pairs", ["--help"], "s2p-make-pairs: turn a folder of colour images"),
    ("s2p-pack", ["--help"], "s2p-pack: pack a dataset's decoded pairs for streaming"),
    ("s2p-app", ["--help"], "s2p-app: a web page that colours sketches"),
    ("s2p-app", [], "ckpt_path=... is required"),
    ("s2p-eval", ["ckpt_path=x.ckpt", "hints=1,-3"], "hints=[1, -3]: give whole numbers of hints from 0 to 255"),
    ("s2p-train", ["data=streaming", "data.input_dir=nowhere"], "data.input_dir=nowhere: no packed dataset can be read"),
    ("s2p-compare", ["--help"], "s2p-compare"),
])
def test_help_and_mistakes_answer_without_torch(tmp_path, entry, args, expected):
    result, torch_loaded = run_entry(entry, *args, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert expected in output, output[-2000:]
    assert not torch_loaded
    assert "Traceback" not in output
    if args == ["--help"]:
        assert output.lstrip().startswith(f"{entry}:")  # what it does, first
    if not args or "=" in args[0]:
        assert result.returncode == 1
        assert not (tmp_path / "outputs").exists()  # refused before any work: no run dir


# -- 2. every Trainer flag, as Lightning users type it -------------------------------------------------
def signature_names(callable_) -> set[str]:
    return {parameter.name for parameter in inspect.signature(callable_).parameters.values()
            if parameter.name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)}


def test_every_trainer_data_model_and_network_argument_is_a_key(tmp_path):
    cfg = compose_config(tmp_path, ["model=unet"])
    assert set(cfg.trainer) - {"_target_"} == signature_names(Trainer.__init__) - PASSED_BY_TRAIN
    assert set(cfg.data) - {"_target_"} == signature_names(PairedSketchDataModule.__init__)
    assert set(cfg.model) - {"_target_"} == signature_names(ColorizationModule.__init__)
    generator = signature_names(UNet.__init__) - {"in_channels", "out_channels"}  # the conditioning sets these
    assert set(cfg.model.net) - {"_target_"} == signature_names(ConditionedGenerator.__init__) | generator
    flags = ["trainer.fast_dev_run=true", "trainer.limit_train_batches=2", "trainer.overfit_batches=1",
             "trainer.gradient_clip_val=0.5", "trainer.accumulate_grad_batches=2", "trainer.profiler=simple",
             "trainer.detect_anomaly=true"]
    cfg = compose_config(tmp_path, flags)  # no `+`
    assert cfg.trainer.limit_train_batches == 2
    assert cfg.trainer.profiler == "simple"


def test_trainer_flags_reach_the_trainer(train_config, tmp_path):
    # 12 pairs: train 10 in batches of 2 is 5 steps an epoch; limit_train_batches=2 makes it 2
    train(train_config("trainer.max_epochs=1", "trainer.limit_train_batches=2", "data.batch_size=2"))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["global_step"] == 2


@pytest.mark.slow
def test_fast_dev_run_is_a_dry_run_that_says_so(tmp_path, synthetic_dir):
    result = run_cli("s2p-train", *TINY, f"data.data_dir={synthetic_dir}", "debug=fast_dev_run", "hydra.run.dir=run", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    run = tmp_path / "run"
    assert not (run / "checkpoints").exists()
    assert not (run / "samples").exists()
    assert not list(run.glob("events.out.tfevents*"))
    assert json.loads((run / "metrics.json").read_text())["dry_run"] is True
    assert "dry run" in output
    assert "TensorBoard:" not in output
    assert "checkpoints/" not in output


# -- 3. a run prints what a person needs, and nothing else -------------------------------------------
@pytest.mark.slow
def test_a_run_prints_no_warnings_and_one_line_each(tmp_path):
    env = {name: value for name, value in os.environ.items() if name != "PYTHONWARNINGS"}  # warnings shown
    result = subprocess.run(
        [str(BIN / "s2p-train"), "trainer.max_epochs=1", "data.synthetic_pairs=24", "data.image_size=32",
         "hydra.run.dir=run"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    warning_lines = [line for line in result.stderr.splitlines() if "warn" in line.lower()]
    assert warning_lines == []
    out = result.stdout
    for noise in ("GPU available", "TPU available", "litlogger", "LeafSpec", "FLOPs", "multiple `ModelCheckpoint`"):
        assert noise not in out + result.stderr, noise
    assert out.count("] - data: 24 pairs used") == 1
    assert out.count("] - model: SeedAutoencoder, 0.27 M parameters, on cpu, precision 32-true") == 1
    assert "final val/* (last epoch, 1)" in out
    assert "final test/* (best.ckpt, epoch 1)" in out
    assert "TensorBoard: tensorboard --logdir" in out


@pytest.mark.slow
def test_a_multirun_ends_with_one_summary_line(tmp_path, synthetic_dir):
    result = run_cli("s2p-train", "-m", *TINY, f"data.data_dir={synthetic_dir}", "trainer.max_epochs=1",
                     "model.lr=1e-3,-1", "hydra.sweep.dir=sweep", cwd=tmp_path)
    output = result.stdout + result.stderr
    best = json.loads((tmp_path / "sweep" / "0" / "metrics.json").read_text())["metrics"]["val/psnr"]
    expected = f"sweep: 2 job(s) ran, 1 succeeded, 1 failed; best by val/psnr: job 0 ({best:.4g}). Compare them: s2p-compare dir=sweep"
    assert expected in output, output[-2000:]


# -- 4. TensorBoard compares runs --------------------------------------------------------------------
def test_scalars_and_images_use_the_epoch_whatever_the_batch_size(train_config, tmp_path):
    steps = {}
    for batch_size in (2, 6):
        train(train_config("trainer.max_epochs=3", f"data.batch_size={batch_size}", f"paths.run_dir={tmp_path / str(batch_size)}"))
        events = EventAccumulator(str(tmp_path / str(batch_size)), size_guidance={"images": 0, "scalars": 0}).Reload()
        steps[batch_size] = {tag: [event.step for event in events.Scalars(tag)] for tag in ("train/loss", "val/psnr")}
        assert [event.step for event in events.Images("samples")] == [1, 2, 3]
        assert "step" not in events.Tags()["scalars"]
    assert steps[2] == steps[6] == {"train/loss": [1, 2, 3], "val/psnr": [1, 2, 3]}


def session_hparams(run_dir) -> dict:
    events = EventAccumulator(str(run_dir)).Reload()
    content = events.PluginTagToContent("hparams")
    assert "_hparams_/experiment" not in content  # columns come from all runs, not the first
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    return dict(start.hparams)


def test_hparams_show_what_was_set_and_the_same_keys_for_every_model(train_config, tmp_path):
    train(train_config("trainer.max_epochs=1", "model.lr=0.002", f"paths.run_dir={tmp_path / 'logs' / 'ae'}"))
    train(train_config("trainer.max_epochs=1", "model=unet", "model.net.depth=2", "model.net.width=8",
                       f"paths.run_dir={tmp_path / 'logs' / 'unet'}"))
    ae, unet = session_hparams(tmp_path / "logs" / "ae"), session_hparams(tmp_path / "logs" / "unet")
    assert ae["lr"].number_value == pytest.approx(0.002)  # typed, and one of the fixed set: under its short name
    assert unet["model.net.depth"].number_value == 2  # typed: under its own name
    assert ae["model"].string_value == "SeedAutoencoder"
    assert unet["model"].string_value == "UNet"
    for name in FIXED_HPARAMS:
        assert name in ae, name
        assert name in unet, name
    assert len(ae) < 25  # not the 47 flattened keys


# -- 6. results say what they are --------------------------------------------------------------------
def test_metrics_say_which_weights_and_the_best_epoch(train_config, tmp_path):
    train(train_config("trainer.max_epochs=3"))
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    best = max(record["history"], key=lambda row: row["val/psnr"])
    assert record["best_epoch"] == best["epoch"]
    assert record["best"]["val/psnr"] == pytest.approx(best["val/psnr"])
    assert record["weights"]["val"] == "last epoch, 3"
    assert record["weights"]["test"] == f"best.ckpt, epoch {best['epoch']}"


def test_a_small_validation_set_is_warned_about_and_grids_fill_up(synthetic_dir, caplog):
    datamodule = PairedSketchDataModule(data_dir=str(synthetic_dir), image_size=32, val_fraction=0.2)  # 2 of 12
    datamodule.setup()
    assert any("only 2 validation pair(s)" in r.message and "data.folds" in r.message for r in caplog.records)
    batch = datamodule.sample_batch(6)
    assert batch["sketch"].shape[0] == 6
    assert batch["from_train"] == [False, False, True, True, True, True]
    assert torch.equal(batch["sketch"][:2], datamodule.sample_batch(2, "val")["sketch"])


def test_sample_grids_label_their_rows_and_epoch(tmp_path):
    images = torch.rand(3, 4, 3, 16, 16) * 2 - 1
    grid = sample_grid(*images, title="epoch 20", column_notes=["", "", "train", "train"])
    plain = sample_grid(*images)
    assert grid.shape == plain.shape  # the same margins, labels or not
    assert grid.shape[2] > 4 * 16 + LABEL_WIDTH - 1
    label_column = grid[:, :, :LABEL_WIDTH - 4]
    rows = label_column.shape[1] // 3
    for row in range(3):  # "sketch", "output", "target": dark text in each row's band
        assert (label_column[:, row * rows:(row + 1) * rows] < 0.5).any(), row
    assert (grid[:, :12, LABEL_WIDTH:] < 0.9).any()  # the notes above the columns
    assert not torch.equal(grid, plain)


def test_ddp_on_cpu_splits_the_cores_whatever_the_strategy(tmp_path):
    half = max(1, (os.cpu_count() or 1) // 2)
    for overrides in (["trainer=ddp_cpu"], ["trainer.accelerator=cpu", "trainer.devices=2"]):
        assert parallel_job_resources(compose_config(tmp_path, overrides)) == (half, None), overrides


# -- 7. defaults that work on any dataset ------------------------------------------------------------
def test_dataset_default_is_a_batch_and_a_full_batch_on_a_large_set_is_warned(tmp_path, synthetic_dir, caplog, monkeypatch):
    assert compose_config(tmp_path, ["data=sketch2photo"]).data.batch_size == 16
    assert compose_config(tmp_path, ["experiment=seed"]).data.batch_size is None
    monkeypatch.setattr("sketch2photo.data.datamodules.pairs.FULL_BATCH_WARNING", 8)
    PairedSketchDataModule(data_dir=str(synthetic_dir), image_size=32, batch_size=None, split="none").setup()
    warned = [r.message for r in caplog.records if "puts all 12 training pairs in one batch" in r.message]
    assert warned
    assert "GB for the batch alone at 32 px" in warned[0]
    assert "data.batch_size" in warned[0]


def test_predict_and_export_errors_look_like_trains(tmp_path):
    messages = {}
    for entry, args in (("s2p-train", ["model.lr=-1"]), ("s2p-predict", ["input=x"]), ("s2p-export", ["ckpt_path=no.ckpt"])):
        result = run_cli(entry, *args, cwd=tmp_path)
        messages[entry] = [line for line in (result.stdout + result.stderr).splitlines() if "[ERROR]" in line]
        assert result.returncode == 1
    for entry, lines in messages.items():
        assert len(lines) == 1, (entry, lines)
        assert "][sketch2photo][ERROR] - " in lines[0], entry
    assert OmegaConf.load(f"{CONFIG_DIR}/predict.yaml").hydra.help.header.startswith("s2p-predict:")
