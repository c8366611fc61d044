"""The real command line: help and mistakes answered at once without torch, one clear line per
error and no traceback, a multirun and its summary line, python -m, a quiet run, a dry run."""

import json
import subprocess
import time
from importlib.metadata import entry_points

import pytest
from omegaconf import OmegaConf

from helpers import TINY, run_cli, run_on_a_terminal, two_job_sweep
from sketch2photo.config import CONFIG_DIR

pytestmark = pytest.mark.slow


def test_two_job_multirun_shares_one_root(tmp_path, synthetic_dir):
    sweep = two_job_sweep(tmp_path, synthetic_dir)
    overrides = []
    for job, lr in (("0", "0.001"), ("1", "0.003")):
        record = json.loads((sweep / job / "metrics.json").read_text())
        assert record["status"] == "ok"
        assert record["epochs"] == 2
        events = sweep / job / f"model.lr={lr}"  # TensorBoard's run: what the sweep varies
        assert any(p.name.startswith("events.out.tfevents") for p in events.iterdir())
        assert (sweep / job / ".hydra" / "config.yaml").is_file()
        overrides.append((sweep / job / ".hydra" / "overrides.yaml").read_text())
    assert "model.lr=0.001" in overrides[0]
    assert "model.lr=0.003" in overrides[1]
    assert not (tmp_path / "outputs").exists()  # nothing strays outside the sweep root


def test_python_dash_m_and_a_missing_dataset(tmp_path):
    result = run_cli(
        "python",
        "-m",
        "sketch2photo.train",
        "data=sketch2photo",
        "data.data_dir=no/such/dir",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "data.data_dir=no/such/dir does not exist" in output
    assert "testA/<N>_A.jpg" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "override, expected",
    [
        ("trainer.max_epochs=0", "trainer.max_epochs=0 must be a positive integer"),
        ("trainer=gpu", "Use trainer=cpu, or trainer=auto"),
        (
            "data.image_size=30",
            "data.image_size=30 does not fit SeedAutoencoder: it must be a multiple of 4",
        ),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, synthetic_dir, override, expected):
    result = run_cli("s2p-train", *TINY, f"data.data_dir={synthetic_dir}", override, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-2000:]
    assert expected in output, output[-2000:]
    assert "Traceback" not in output


def run_entry(entry: str, *args: str, cwd) -> tuple[subprocess.CompletedProcess, bool]:
    """Run a console script's entry point in a fresh interpreter; (result, whether torch was
    imported)."""
    (script,) = entry_points(group="console_scripts", name=entry)
    module, function = script.value.split(":")
    code = (
        f"import atexit, sys; atexit.register(lambda: print('TORCH_LOADED', 'torch' in sys.modules)); "
        f"sys.argv = {[entry, *args]!r}; from {module} import {function} as main; main()"
    )
    result = run_cli("python", "-c", code, cwd=cwd, timeout=120)
    return result, "TORCH_LOADED True" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "entry, args, expected",
    [
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
        (
            "s2p-eval",
            ["ckpt_path=x.ckpt", "hints=1,-3"],
            "hints=[1, -3]: give whole numbers of hints from 0 to 255",
        ),
        (
            "s2p-train",
            ["data=streaming", "data.input_dir=nowhere"],
            "data.input_dir=nowhere: no packed dataset can be read",
        ),
        ("s2p-compare", ["--help"], "s2p-compare"),
        (
            "s2p-train",
            ["+model.lrr=1"],
            "+model.lrr=1: model (sketch2photo.module.ColorizationModule) takes no argument "
            "'lrr'; did you mean model.lr=1?",
        ),
        ("s2p-train", ["++trainer.max_epochs=0"], "trainer.max_epochs=0 must be a positive"),
        (
            "s2p-train",
            ["data=sketch2photo", "data.data_dir=no/such"],
            "data.data_dir=no/such does not exist",
        ),
        ("s2p-train", ["init_from=nowhere.ckpt"], "init_from=nowhere.ckpt does not exist"),
        ("s2p-eval", ["ckpt_path=nowhere.ckpt"], "ckpt_path=nowhere.ckpt does not exist"),
        ("s2p-export", ["ckpt_path=nowhere.ckpt"], "ckpt_path=nowhere.ckpt does not exist"),
        ("s2p-app", ["ckpt_path=nowhere.ckpt"], "ckpt_path=nowhere.ckpt does not exist"),
        (
            "s2p-predict",
            ["ckpt_path=.", "input=x", "output=y"],
            "ckpt_path=. is a folder without checkpoints/best.ckpt or checkpoints/last.ckpt",
        ),
    ],
)
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


def test_a_typo_of_a_known_key_is_the_projects_line_alone(tmp_path):
    result = run_cli("s2p-train", "model.lrr=0.1", "trainer.max_epoch=3", cwd=tmp_path)
    assert result.returncode == 1
    first, second = result.stderr.splitlines()  # nothing of Hydra's before, between or after
    assert first == "model.lrr: did you mean model.lr=0.1?"
    assert second.startswith("trainer.max_epoch: did you mean trainer.max_epochs=3 or")
    assert result.stdout == ""
    unknown = run_cli("s2p-train", "zzzz=1", cwd=tmp_path)  # no near-miss: Hydra's own advice
    assert unknown.returncode == 1
    assert "Could not override 'zzzz'.\nTo append to your config use +zzzz=1" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_missing_files_and_a_bad_output_fail_fast_without_torch(tmp_path):
    (tmp_path / "given.ckpt").write_bytes(b"only checked for existence before torch loads")
    (tmp_path / "sketch.png").write_bytes(b"only checked for its name before torch loads")
    for entry, args, expected in (
        ("s2p-predict", ["ckpt_path=gone.ckpt", "input=sketch.png", "output=out"], "gone.ckpt"),
        ("s2p-eval", ["ckpt_path=gone.ckpt"], "ckpt_path=gone.ckpt does not exist"),
        ("s2p-train", ["data=sketch2photo", "data.data_dir=gone"], "data.data_dir=gone does"),
        (
            "s2p-predict",
            ["ckpt_path=given.ckpt", "input=sketch.png", "output=sketch.png"],
            "output=sketch.png is a file; give a folder",
        ),
    ):
        started = time.monotonic()
        result, torch_loaded = run_entry(entry, *args, cwd=tmp_path)
        seconds = time.monotonic() - started
        assert result.returncode == 1 and expected in result.stdout + result.stderr
        assert not torch_loaded
        assert seconds < 3, f"{entry} {args}: {seconds:.1f} s (about 0.8 s when the cores are free)"


def test_predict_and_export_errors_look_like_trains(tmp_path):
    messages = {}
    for entry, args in (
        ("s2p-train", ["model.lr=-1"]),
        ("s2p-predict", ["input=x"]),
        ("s2p-export", ["ckpt_path=no.ckpt"]),
    ):
        result = run_cli(entry, *args, cwd=tmp_path)
        messages[entry] = [
            line for line in (result.stdout + result.stderr).splitlines() if "[ERROR]" in line
        ]
        assert result.returncode == 1
    for entry, lines in messages.items():
        assert len(lines) == 1, (entry, lines)
        assert "][sketch2photo][ERROR] - " in lines[0], entry
    assert OmegaConf.load(f"{CONFIG_DIR}/predict.yaml").hydra.help.header.startswith("s2p-predict:")


@pytest.mark.slow
def test_a_run_prints_no_warnings_and_one_line_each(tmp_path):
    result = run_cli(
        "s2p-train",
        "trainer.max_epochs=1",
        "data.synthetic_pairs=24",
        "data.image_size=32",
        "hydra.run.dir=run",
        cwd=tmp_path,
        env={"PYTHONWARNINGS": None},
    )  # warnings shown
    assert result.returncode == 0, result.stderr[-3000:]
    warning_lines = [line for line in result.stderr.splitlines() if "warn" in line.lower()]
    assert warning_lines == []
    out = result.stdout
    for noise in (
        "GPU available",
        "TPU available",
        "litlogger",
        "LeafSpec",
        "FLOPs",
        "multiple `ModelCheckpoint`",
    ):
        assert noise not in out + result.stderr, noise
    assert out.count("] - data: 24 pairs used") == 1
    assert (
        out.count("] - model: SeedAutoencoder, 0.27 M parameters, on cpu, precision 32-true") == 1
    )
    assert "final val/* (last epoch, 1)" in out
    assert "final test/* (best.ckpt, epoch 1)" in out
    assert "TensorBoard: tensorboard --logdir" in out


@pytest.mark.slow
def test_the_progress_bar_is_on_a_terminal_only_and_its_flag_works(tmp_path, synthetic_dir):
    """Output to a file: no bar (tqdm's carriage returns), one line per epoch instead. On a
    terminal: the bar, unless trainer.enable_progress_bar=false, which Lightning used to refuse
    beside the bar the project adds."""
    tiny = [a for a in TINY if "progress_bar" not in a] + [f"data.data_dir={synthetic_dir}"]
    to_a_file = run_cli("s2p-train", *tiny, "hydra.run.dir=file", cwd=tmp_path)
    output = to_a_file.stdout + to_a_file.stderr
    assert to_a_file.returncode == 0, output[-2000:]
    assert "\r" not in output and "it/s]" not in output
    assert output.count("][sketch2photo.train][INFO] - epoch 1/2: train/loss=") == 1
    assert output.count("] - epoch 2/2: train/loss=") == 1
    assert "val/psnr=" in output

    status, output = run_on_a_terminal("s2p-train", *tiny, "hydra.run.dir=bar", cwd=tmp_path)
    assert status == 0, output[-2000:]
    assert "it/s" in output and "\r" in output  # tqdm's bar
    assert "] - epoch 1/2:" not in output

    status, output = run_on_a_terminal(
        "s2p-train", *tiny, "trainer.enable_progress_bar=false", "hydra.run.dir=off", cwd=tmp_path
    )
    assert status == 0, output[-2000:]
    assert "it/s" not in output
    assert "] - epoch 2/2: train/loss=" in output


@pytest.mark.slow
def test_fast_dev_run_is_a_dry_run_that_says_so(tmp_path, synthetic_dir):
    result = run_cli(
        "s2p-train",
        *TINY,
        f"data.data_dir={synthetic_dir}",
        "debug=fast_dev_run",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
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


@pytest.mark.slow
def test_a_multirun_ends_with_one_summary_line(tmp_path, synthetic_dir):
    result = run_cli(
        "s2p-train",
        "-m",
        *TINY,
        f"data.data_dir={synthetic_dir}",
        "trainer.max_epochs=1",
        "model.lr=1e-3,-1",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    best = json.loads((tmp_path / "sweep" / "0" / "metrics.json").read_text())["metrics"][
        "val/psnr"
    ]
    expected = f"sweep: 2 job(s) ran: 1 complete, 0 pruned, 1 failed; best by val/psnr: job 0 ({best:.4g}). Compare them: s2p-compare dir=sweep"
    assert expected in output, output[-2000:]
