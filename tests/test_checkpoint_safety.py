"""Checkpoints are data, not code: a pickle payload, a foreign `_target_`, a truncated file and
another project's checkpoint are each refused with one clear line, and nothing in them runs.
safetensors exports work wherever a .ckpt does."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel
from PIL import Image

from helpers import compose_config, run_cli
from sketch2photo.checkpoints import read as checkpoints
from sketch2photo.commands.evaluate import evaluate
from sketch2photo.commands.export import export
from sketch2photo.commands.predict import predict
from sketch2photo.commands.train import train
from sketch2photo.data.corpora.synthetic import generate_pairs
from sketch2photo.errors import UserError


class CreatesMarker:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def sketches(tmp_path):
    folder = tmp_path / "sketches"
    folder.mkdir()
    for index, sketch in enumerate(generate_pairs(2, size=32, seed=5)[0]):
        Image.fromarray(sketch[0].numpy(), "L").save(folder / f"{index}.png")
    return folder


def predict_with(tmp_path, ckpt, sketches):
    return run_cli(
        "s2p-predict",
        f"ckpt_path={ckpt}",
        f"input={sketches}",
        f"output={tmp_path / 'out'}",
        cwd=tmp_path,
    )


@pytest.mark.slow
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, tiny_checkpoint, sketches):
    marker = tmp_path / "payload-ran"
    evil = torch.load(tiny_checkpoint, weights_only=True)
    evil["hyper_parameters"]["note"] = CreatesMarker(marker)
    torch.save(evil, tmp_path / "evil.ckpt")

    result = predict_with(tmp_path, tmp_path / "evil.ckpt", sketches)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-2000:]
    assert "may not be safe to open" in output
    assert "posix.system" in output  # it names what the file wanted to call
    assert "Traceback" not in output
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
    for key in ("ckpt_path", "init_from"):
        with pytest.raises(UserError, match=f"{key}=.*may not be safe"):
            checkpoints.read_checkpoint(tmp_path / "evil.ckpt", key)
    assert not marker.exists()

    torch.load(
        tmp_path / "evil.ckpt", weights_only=False
    )  # the payload is real: unsafe loading runs it
    assert marker.exists()


def test_a_foreign_target_is_refused_and_nothing_is_called(tmp_path, tiny_checkpoint, sketches):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cases = {
        "net": {"_target_": "builtins.open", "_args_": [str(victim), "w"]},
        "optimizer": {"_target_": "os.remove", "_args_": [str(victim)]},
        "scheduler": {
            "_target_": "torch.optim.lr_scheduler.StepLR",
            "_partial_": True,
            "gamma": {"_target_": "builtins.open", "_args_": [str(victim), "w"]},
        },
    }
    for place, target in cases.items():
        forged = torch.load(tiny_checkpoint, weights_only=True)
        forged["hyper_parameters"][place] = target
        path = tmp_path / f"forged-{place}.ckpt"
        torch.save(forged, path)
        with pytest.raises(
            UserError, match="asks to instantiate 'builtins.open'|asks to instantiate 'os.remove'"
        ):
            predict(
                compose_config(
                    tmp_path,
                    [f"ckpt_path={path}", f"input={sketches}", f"output={tmp_path / 'out'}"],
                    config_name="predict",
                )
            )
        assert victim.read_text() == "precious", place
    with pytest.raises(UserError, match=r"refused, nothing was called"):
        export(tmp_path / "forged-net.ckpt", "torchscript", tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()
    assert victim.read_text() == "precious"


def test_an_interpolation_cannot_smuggle_a_target_in(tmp_path, tiny_checkpoint):
    marker = tmp_path / "marker"
    smuggled = "${oc.create:[{_target_: builtins.open, _args_: [" + str(marker) + ", w]}]}"
    forged = torch.load(tiny_checkpoint, weights_only=True)
    forged["hyper_parameters"]["net"]["_args_"] = smuggled
    torch.save(forged, tmp_path / "forged.ckpt")
    with pytest.raises(
        UserError, match=r"holds an interpolation .* at hyper_parameters.net._args_; refused"
    ):
        checkpoints.load_module(tmp_path / "forged.ckpt")
    assert not marker.exists()

    pytest.importorskip("safetensors")
    weights = export(tiny_checkpoint, "safetensors", tmp_path / "model.safetensors")
    card_path = tmp_path / "model.safetensors.json"
    card = json.loads(card_path.read_text())
    card["network"]["width"] = (
        "${oc.create:{_target_: builtins.open, _args_: [" + str(marker) + ", w]}}"
    )
    card_path.write_text(json.dumps(card))
    with pytest.raises(UserError, match="holds an interpolation"):
        checkpoints.load_module(weights)
    card["network"] = {"_target_": "builtins.open", "_args_": [str(marker), "w"]}
    card_path.write_text(json.dumps(card))
    with pytest.raises(UserError, match="asks to instantiate 'builtins.open'"):
        checkpoints.load_module(weights)
    assert not marker.exists()


def test_data_settings_from_a_file_cannot_write_a_dataset(tmp_path, tiny_checkpoint):
    forged = torch.load(tiny_checkpoint, weights_only=True)
    forged["datamodule_hyper_parameters"].update(
        synthetic_pairs=5, data_dir=str(tmp_path / "written"), num_workers=64
    )
    settings = checkpoints.data_settings(forged, "forged.ckpt")
    assert "synthetic_pairs" not in settings
    assert "num_workers" not in settings
    assert settings["data_dir"] == str(tmp_path / "written")
    forged["datamodule_hyper_parameters"]["image_size"] = {"_target_": "os.remove"}
    with pytest.raises(UserError, match="not plain values"):
        checkpoints.data_settings(forged, "forged.ckpt")
    assert not (tmp_path / "written").exists()


def test_a_target_the_user_types_stays_free(train_config, tmp_path):
    # the user's own config may name any class: here an optimizer that is not in torch.optim
    cfg = train_config(
        "trainer.max_epochs=1",
        "model.optimizer._target_=helpers.PlainSGD",
        "+model.optimizer.momentum=0.5",
    )
    assert np.isfinite(train(cfg)["train/loss"])
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert (
        checkpoints.read_checkpoint(last)["hyper_parameters"]["optimizer"]["_target_"]
        == "helpers.PlainSGD"
    )
    train(
        train_config(
            "trainer.max_epochs=2",
            f"ckpt_path={last}",
            "model.optimizer._target_=helpers.PlainSGD",
            "+model.optimizer.momentum=0.5",
        )
    )  # continuing it instantiates from the user's config
    with pytest.raises(UserError, match="asks to instantiate 'helpers.PlainSGD'"):
        checkpoints.load_module(last)  # rebuilt from the file's own config: refused


def test_a_truncated_file_and_another_projects_checkpoint(tmp_path, tiny_checkpoint):
    data = tiny_checkpoint.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cut.ckpt is not a readable checkpoint"):
        checkpoints.load_module(tmp_path / "cut.ckpt")

    trainer = Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(BoringModel())
    trainer.save_checkpoint(tmp_path / "boring.ckpt")
    with pytest.raises(UserError, match=r"boring.ckpt is not a sketch2photo checkpoint"):
        checkpoints.load_module(tmp_path / "boring.ckpt")


@pytest.mark.slow
def test_safetensors_export_serves_predict_and_eval(
    tmp_path, tiny_checkpoint, synthetic_dir, sketches
):
    pytest.importorskip("safetensors")
    weights = export(tiny_checkpoint, "safetensors", tmp_path / "shared" / "model.safetensors")
    card = json.loads((tmp_path / "shared" / "model.safetensors.json").read_text())
    assert card["format"] == "safetensors"
    assert card["network"]["_target_"] == "sketch2photo.nets.conditioning.ConditionedGenerator"
    assert card["network"]["generator"] == "unet"
    assert card["image_size"] == 32
    assert card["data"]["image_size"] == 32
    with open(weights, "rb") as file:
        header = json.loads(file.read(int.from_bytes(file.read(8), "little")))
    assert all(
        name == "__metadata__" or "dtype" in entry for name, entry in header.items()
    )  # tensors only

    for name, ckpt in (("ckpt", tiny_checkpoint), ("safetensors", weights)):
        result = run_cli(
            "s2p-predict",
            f"ckpt_path={ckpt}",
            f"input={sketches}",
            f"output={tmp_path / name}",
            cwd=tmp_path,
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    for image in sketches.iterdir():
        assert np.array_equal(
            np.asarray(Image.open(tmp_path / "ckpt" / image.name)),
            np.asarray(Image.open(tmp_path / "safetensors" / image.name)),
        ), image.name

    scores = [
        evaluate(
            compose_config(
                tmp_path / f"eval-{i}",
                [f"ckpt_path={ckpt}", f"data.data_dir={synthetic_dir}", "subset=all"],
                config_name="eval",
            )
        )
        for i, ckpt in enumerate((tiny_checkpoint, weights))
    ]
    assert scores[1] == pytest.approx(scores[0], rel=1e-6)

    shutil.move(tmp_path / "shared" / "model.safetensors.json", tmp_path / "card.json")
    with pytest.raises(UserError, match="needs its model card"):
        checkpoints.read_checkpoint(weights)
