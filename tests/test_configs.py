"""The configs as users type them: every argument of the Trainer, the data module, the model and
its network is a key (no `+`), and the defaults work on any dataset."""

import inspect
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch import Trainer
from omegaconf import read_write

from helpers import compose_config
from sketch2photo.checks import EVERY_ARGUMENT_IN_CONFIG
from sketch2photo.config import CONFIG_DIR
from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.gan import Pix2PixModule
from sketch2photo.module import ColorizationModule
from sketch2photo.nets.conditioning import ConditionedGenerator
from sketch2photo.nets.patchgan import PatchGAN
from sketch2photo.nets.unet import UNet
from sketch2photo.runs.run_dir import EXCLUDE_KEYS, name_runs_by_sweep

PASSED_BY_TRAIN = {
    "logger",
    "callbacks",
    "plugins",
    "default_root_dir",
}  # s2p-train passes these itself


def signature_names(callable_) -> set[str]:
    return {
        parameter.name
        for parameter in inspect.signature(callable_).parameters.values()
        if parameter.name != "self"
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    }


def test_every_trainer_data_model_and_network_argument_is_a_key(tmp_path):
    cfg = compose_config(tmp_path, ["model=unet"])
    assert set(cfg.trainer) - {"_target_"} == signature_names(Trainer.__init__) - PASSED_BY_TRAIN
    assert set(cfg.data) - {"_target_"} == signature_names(PairedSketchDataModule.__init__)
    assert set(cfg.model) - {"_target_"} == signature_names(ColorizationModule.__init__)
    generator = signature_names(UNet.__init__) - {
        "in_channels",
        "out_channels",
    }  # the conditioning sets these
    assert (
        set(cfg.model.net) - {"_target_"}
        == signature_names(ConditionedGenerator.__init__) | generator
    )
    gan = compose_config(tmp_path, ["model=pix2pix"]).model
    assert set(gan) - {"_target_"} == signature_names(Pix2PixModule.__init__)
    assert set(gan.discriminator) - {"_target_"} == signature_names(PatchGAN.__init__) - {
        "in_channels"  # the module sets it: the condition's channels and the image's
    }
    assert gan.net == cfg.model.net  # the same generator as model=unet
    # the classes checks.py refuses a `+` key for (it takes no argument but these keys): these
    checked = [cfg.trainer, cfg.data, cfg.model, cfg.model.net, gan, gan.discriminator]
    assert sorted(EVERY_ARGUMENT_IN_CONFIG) == sorted(node._target_ for node in checked)
    flags = [
        "trainer.fast_dev_run=true",
        "trainer.limit_train_batches=2",
        "trainer.overfit_batches=1",
        "trainer.gradient_clip_val=0.5",
        "trainer.accumulate_grad_batches=2",
        "trainer.profiler=simple",
        "trainer.detect_anomaly=true",
    ]
    cfg = compose_config(tmp_path, flags)  # no `+`
    assert cfg.trainer.limit_train_batches == 2
    assert cfg.trainer.profiler == "simple"


def test_dataset_default_is_a_batch_and_a_full_batch_on_a_large_set_is_warned(
    tmp_path, synthetic_dir, caplog, monkeypatch
):
    assert compose_config(tmp_path, ["data=sketch2photo"]).data.batch_size == 16
    assert compose_config(tmp_path, ["experiment=seed"]).data.batch_size is None
    monkeypatch.setattr("sketch2photo.data.datamodules.pairs.FULL_BATCH_WARNING", 8)
    PairedSketchDataModule(
        data_dir=str(synthetic_dir), image_size=32, batch_size=None, split="none"
    ).setup()
    warned = [
        r.message for r in caplog.records if "puts all 12 training pairs in one batch" in r.message
    ]
    assert warned
    assert "GB for the batch alone at 32 px" in warned[0]
    assert "data.batch_size" in warned[0]


@pytest.mark.parametrize(
    "experiment", sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))
)
def test_every_experiment_composes_and_builds_its_model(tmp_path, experiment):
    from hydra.utils import instantiate

    cfg = compose_config(tmp_path, [f"experiment={experiment}"])
    model = instantiate(cfg.model, _recursive_=False, _convert_="all")
    assert model.hparams.image_size == cfg.data.image_size
    if experiment == "demo":  # make demo: a hint model on OpenMoji, scored by s2p-eval instead
        assert cfg.data.train_glyphs == 1200 and cfg.test is False and model.takes_hints


def test_sweep_runs_are_named_by_what_the_sweep_varies(tmp_path):
    typed = [
        "model.lr=1e-3,3e-3",
        "data.image_size=32,64",
        "trainer.max_epochs=2",
        "data.data_dir=/a/b",
        "hydra.sweep.dir=s",
    ]
    *unchanged, excluded = name_runs_by_sweep(["-m", *typed])
    assert unchanged == ["-m", *typed]
    assert excluded == f"{EXCLUDE_KEYS}=[trainer.max_epochs,data.data_dir]"
    job = ["model.lr=0.001", "data.image_size=64", "trainer.max_epochs=2", "data.data_dir=/a/b"]
    cfg = compose_config(tmp_path, [*job, excluded])
    assert cfg.logger.tensorboard.version == ""  # a single run: its events in the run dir
    with read_write(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    assert cfg.logger.tensorboard.version == "data.image_size=64,model.lr=0.001"
    with read_write(cfg.hydra):
        cfg.hydra.job.override_dirname = "data.data_dir=/a/b"  # swept folders: one name each
    HydraConfig.instance().set_config(cfg)
    assert cfg.logger.tensorboard.version == "data.data_dir=\u2215a\u2215b"


def test_a_sweep_job_resumed_alone_keeps_its_tensorboard_run(tmp_path):
    from omegaconf import OmegaConf

    from sketch2photo.checkpoints.resume import keep_sweep_run_name

    def resumed(mode: str, override_dirname: str):
        (tmp_path / ".hydra").mkdir(exist_ok=True)
        job = {"hydra": {"mode": mode, "job": {"override_dirname": override_dirname}}}
        OmegaConf.save(OmegaConf.create(job), tmp_path / ".hydra" / "hydra.yaml")
        saved = OmegaConf.create({"logger": {"tensorboard": {"version": "${s2p_sweep_run:}"}}})
        keep_sweep_run_name(saved, tmp_path)
        return OmegaConf.to_container(saved.logger.tensorboard)["version"]

    assert resumed("MULTIRUN", "model.lr=0.001") == "model.lr=0.001"
    assert resumed("MULTIRUN", "data.data_dir=../x") == "data.data_dir=..\u2215x"  # one folder
    assert resumed("RUN", "model.lr=0.001") == "${s2p_sweep_run:}"  # a single run: unchanged
