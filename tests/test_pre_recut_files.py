"""Files written before the re-cut (0.1.0, fixtures/pre_recut/: how they were made is in its README)
still load with the same outputs, evaluate, predict, resume and start a fine-tune, and one that set
a dropped flag loads with one warning naming it."""

import json
import logging
import shutil

import pytest
import torch
from PIL import Image

from helpers import TESTS, compose_config
from sketch2photo.checkpoints.read import load_module
from sketch2photo.commands.evaluate import evaluate
from sketch2photo.commands.predict import predict
from sketch2photo.commands.train import train
from sketch2photo.nets.conditioning import ConditionedGenerator
from sketch2photo.runs.record import read_record

OLD = TESTS / "fixtures" / "pre_recut"
RUN = OLD / "run_hints"


@pytest.mark.parametrize("weights", ["last.ckpt", "last.safetensors"])
def test_an_old_checkpoint_gives_the_outputs_it_gave_before(weights):
    module = load_module(RUN / "checkpoints" / weights)
    assert isinstance(module.net, ConditionedGenerator) and module.takes_hints
    expected = torch.load(RUN / "expected_outputs.pt", weights_only=True)  # written by the old code
    with torch.inference_mode():
        assert torch.equal(module(expected["sketch"], expected["hints"]), expected["output"])
        assert torch.equal(module(expected["sketch"]), expected["output_without_hints"])


def test_an_old_checkpoint_evaluates_and_predicts(tmp_path, synthetic_dir):
    ckpt = RUN / "checkpoints" / "last.ckpt"
    scores = evaluate(
        compose_config(
            tmp_path / "eval",
            [f"ckpt_path={ckpt}", f"data.data_dir={synthetic_dir}", "hints=[0,3]"],
            config_name="eval",
        )
    )
    assert 5 < scores["test/psnr"] < 40
    assert [row["hints"] for row in read_record(tmp_path / "eval")["hints"]] == [0, 3, 0, 3]

    sketches, hints = tmp_path / "sketches", tmp_path / "hints"
    sketches.mkdir(), hints.mkdir()
    shutil.copy(synthetic_dir / "testA" / "0_A.png", sketches / "cat.png")
    (hints / "cat.json").write_text(
        json.dumps([{"x": 16, "y": 16, "color": "#2050e0", "radius": 3}])
    )
    writer = predict(
        compose_config(
            tmp_path,
            [
                f"ckpt_path={ckpt}",
                f"input={sketches}",
                f"output={tmp_path / 'out'}",
                f"hints={hints}",
            ],
            config_name="predict",
        )
    )
    assert writer.written == 1 and not writer.failed
    assert Image.open(tmp_path / "out" / "cat.png").size == (32, 32)
    assert (tmp_path / "out" / "previews" / "cat.png").is_file()


def test_an_old_run_dir_resumes(tmp_path, synthetic_dir):
    run = tmp_path / "run_hints"
    shutil.copytree(RUN, run)
    earlier = read_record(run)
    train(
        compose_config(
            run,
            [
                f"resume={run}",
                f"data.data_dir={synthetic_dir}",
                "trainer.max_epochs=3",
                "callbacks.progress_bar=null",
            ],
        )
    )
    record = read_record(run)
    assert record["status"] == "ok" and record["epochs"] == 3
    assert record["history"][:2] == earlier["history"]  # its two epochs, then the third
    assert [row["epoch"] for row in record["history"]] == [1, 2, 3]


def test_an_old_checkpoint_starts_a_fine_tune_of_todays_config(train_config):
    conditioned = [
        "model=unet",
        "model.net.depth=2",
        "model.net.width=8",
        "model.net.background_input=true",
        "model.net.background_fill=true",
        "model.net.hint_input=true",
        "model.net.hint_residual=true",
        "model.net.hint_correction=0.25",
        "trainer.max_epochs=1",
    ]
    metrics = train(train_config(*conditioned, f"init_from={RUN / 'checkpoints' / 'last.ckpt'}"))
    assert metrics["val/psnr"] > 5


def test_a_dropped_flag_loads_with_one_warning_naming_it(caplog):
    with caplog.at_level(logging.WARNING, logger="sketch2photo.checkpoints.aliases"):
        module = load_module(OLD / "line_fill.ckpt")
        load_module(OLD / "line_fill.ckpt")  # read again, as resume does: no second warning
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1, warnings
    assert "model.net.hint_line_fill=2, model.net.hint_whole_figure=true" in warnings[0]
    assert "line_fill.ckpt" in warnings[0]
    assert "hint_line_fill" not in module.hparams.net and module.takes_hints
