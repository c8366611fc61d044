"""A pix2pix checkpoint in every command that colours or scores, unchanged: s2p-eval (with hints
and the colour metrics), s2p-predict, s2p-export (the generator alone) and s2p-app; s2p-compare's
columns; a two-rank DDP run and a sweep of model=pix2pix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import TINY, compose_config, run_cli
from sketch2photo.checkpoints.read import load_module
from sketch2photo.commands.compare import compare
from sketch2photo.commands.evaluate import evaluate
from sketch2photo.commands.export import export, run_exported
from sketch2photo.commands.predict import predict
from sketch2photo.data.corpora.synthetic import write_dataset
from sketch2photo.hints.files import prepare_hints

GAN = ["model=pix2pix", "model.net.depth=2", "model.net.width=8", "model.discriminator.ndf=8"]
COLOUR_METRICS = ("de00", "cf", "cf_target", "dcf", "dcf_signed", "haarpsi")


def test_eval_scores_the_generator_with_hints_and_colour_metrics(pix2pix_checkpoint, tmp_path):
    means = evaluate(
        compose_config(
            tmp_path / "eval",
            [f"ckpt_path={pix2pix_checkpoint}", "hints=[0,10]", "hint_placements=[random]"],
            config_name="eval",
        )
    )
    assert {f"test/{name}" for name in ("psnr", "ssim", *COLOUR_METRICS)} <= means.keys()
    rows = json.loads((tmp_path / "eval" / "hints.json").read_text())
    assert [row["hints"] for row in rows] == [0, 10]
    assert rows[1]["de00"] < rows[0]["de00"]  # ten hints of the true colours bring it closer
    header = (tmp_path / "eval" / "per_image.csv").read_text().splitlines()[0].split(",")
    assert set(COLOUR_METRICS) <= set(header)
    record = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert record["metrics"] == means
    text, _ = compare(tmp_path)  # s2p-compare's eval table has the colour columns
    assert "dcf_signed" in text and "de00" in text


def test_predict_export_and_a_hint_on_the_generator(pix2pix_checkpoint, tmp_path):
    sketch = Image.new("L", (32, 32), 255)
    sketch.save(tmp_path / "blank.png")
    (tmp_path / "hints").mkdir()
    (tmp_path / "hints" / "blank.json").write_text(
        json.dumps([{"x": 16, "y": 16, "color": "#1d4ed8", "radius": 4}])
    )
    module = load_module(pix2pix_checkpoint)
    assert module.takes_hints
    predict(
        compose_config(
            tmp_path / "hydra",
            [
                f"ckpt_path={pix2pix_checkpoint}",
                f"input={tmp_path / 'blank.png'}",
                f"output={tmp_path / 'out'}",
                f"hints={tmp_path / 'hints'}",
            ],
            config_name="predict",
        )
    )
    coloured = np.asarray(Image.open(tmp_path / "out" / "blank.png").convert("RGB"), dtype=float)
    assert coloured[16, 16, 2] > coloured[16, 16, 0] + 40  # the blue hint shows at its place
    assert (tmp_path / "out" / "previews" / "blank.png").is_file()

    path = export(pix2pix_checkpoint, "torchscript", tmp_path / "generator.pt")
    card = json.loads(path.with_name(path.name + ".json").read_text())
    assert card["network"]["_target_"].endswith("ConditionedGenerator") and card["takes_hints"]
    traced = torch.jit.load(str(path))
    assert not any(name.startswith("discriminator") for name, _ in traced.named_parameters())
    probe = torch.rand(2, 3, 32, 32) * 2 - 1
    hints = prepare_hints(tmp_path / "hints" / "blank.json", (32, 32), 32)[None].expand(
        2, -1, -1, -1
    )
    with torch.inference_mode():
        expected = module(probe, hints)
    assert (run_exported(path, "torchscript", probe, hints) - expected).abs().max() <= 1e-4


@pytest.mark.slow
def test_the_app_colours_with_a_pix2pix_checkpoint(pix2pix_checkpoint, tmp_path):
    """gradio_client against the real s2p-app (test_app.py drives the browser on a U-Net)."""
    pytest.importorskip("gradio", reason="the app extra is not installed")
    from gradio_client import Client, handle_file

    from helpers import free_port, start_cli, wait_until

    port = free_port()
    log = tmp_path / "app.log"
    with log.open("w") as output:
        app = start_cli(
            "s2p-app",
            f"ckpt_path={pix2pix_checkpoint}",
            f"port={port}",
            cwd=tmp_path,
            stdout=output,
        )
    try:
        wait_until(lambda: " at http://" in log.read_text(), "s2p-app to listen", process=app)
        client = Client(f"http://127.0.0.1:{port}/", download_files=str(tmp_path), verbose=False)
        Image.new("L", (64, 64), 255).save(tmp_path / "blank.png")
        layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        layer.paste((29, 78, 216, 255), (24, 24, 40, 40))
        layer.save(tmp_path / "layer.png")

        def colour(*layers):
            value = {
                "background": handle_file(tmp_path / "blank.png"),
                "layers": [handle_file(path) for path in layers],
                "composite": None,
            }
            return np.asarray(
                Image.open(client.predict(value, True, api_name="/colour")).convert("RGB"), float
            )

        plain, hinted = colour(), colour(tmp_path / "layer.png")
        assert plain.shape == hinted.shape == (64, 64, 3)
        assert hinted[32, 32, 2] - hinted[32, 32, 0] > plain[32, 32, 2] - plain[32, 32, 0] + 40
    finally:
        app.terminate()
        app.wait(timeout=60)
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_two_ddp_ranks_train_pix2pix(tmp_path, synthetic_dir):
    from test_ddp import one_process_metrics, ranks_ran

    result = run_cli(
        "s2p-train",
        *TINY,
        *GAN,
        f"data.data_dir={synthetic_dir}",
        "data.val_fraction=0.25",
        "data.batch_size=2",
        "trainer=ddp_cpu",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = ranks_ran(tmp_path / "run")
    metrics = record["metrics"]
    assert {"train/d_loss", "train/g_loss", "train/d_real_accuracy"} <= metrics.keys()
    alone = one_process_metrics(tmp_path / "run", "val", "last.ckpt")
    # every pair counted once; batches of other sizes than one process's move the outputs by
    # float rounding, which a barely trained, nearly grey output's colourfulness (~2) and SSIM
    # (~0.002) show at 1e-5 relative
    assert {name: metrics[name] for name in alone} == pytest.approx(alone, rel=1e-4, abs=1e-6)


@pytest.mark.slow
def test_a_sweep_over_the_adversarial_loss(tmp_path):
    data = write_dataset(tmp_path / "data", 12, size=32)
    result = run_cli(
        "s2p-train",
        "-m",
        *TINY,
        *GAN,
        "trainer.max_epochs=1",
        f"data.data_dir={data}",
        "model.gan_loss=vanilla,hinge",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        record = json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())
        assert record["status"] == "ok" and "train/d_loss" in record["metrics"]
    text, _ = compare(tmp_path / "sweep")
    assert "model.gan_loss" in text and "val/dcf" in text
